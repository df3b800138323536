"""`pcse report`: volumes, outcomes, times, and what reached a person (caseworker.report)."""

from __future__ import annotations

import csv
import sys
from datetime import date

import click

from caseworker.report import (
    CSV_HEADER,
    MEASURES,
    Report,
    as_json,
    build_report,
    csv_rows,
    default_since,
    duration,
    percent,
)
from core.csvcells import text_rows
from core.timeutil import utcnow
from service.clitools import emit_json, table, with_app
from service.context import AppContext


def register(cli: click.Group) -> None:
    cli.add_command(report)


def _since(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not a date; write it as YYYY-MM-DD.", param_hint="--since"
        ) from exc


@click.command()
@click.option("--since", "since_text", metavar="DATE", help="First day (default: 13 weeks ago).")
@click.option("--csv", "csv_output", is_flag=True, help="Print the report as CSV on stdout.")
@with_app(json_flag=True)
def report(app: AppContext, since_text: str | None, csv_output: bool, json_output: bool) -> None:
    """Requests by week and kind, outcomes, times to acknowledgement, approval and outcome,
    the share finished with no caseworker, why cases reached one, approvals outstanding."""
    if csv_output and json_output:
        raise click.UsageError("Choose one of --json and --csv.")
    now = utcnow()
    since = _since(since_text) or default_since(now)
    with app.db().transaction() as session:
        built = build_report(session, since, now)
    if json_output:
        emit_json(as_json(built))
    elif csv_output:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(text_rows(csv_rows(built)))
    else:
        click.echo(describe(built))


def describe(built: Report) -> str:
    lines = [f"Cases opened from {built.since.isoformat()}: {built.cases}", ""]
    kinds = built.kinds
    weeks = [
        [week.isoformat(), *(str(counts.get(k, 0)) for k in kinds), str(sum(counts.values()))]
        for week, counts in built.by_week.items()
    ]
    if weeks:
        lines += [table(weeks, ["week of", *kinds, "total"]), ""]
    outcomes = ", ".join(f"{state} {n}" for state, n in built.outcomes.items())
    lines.append(f"Outcomes: {outcomes or 'none'}")
    lines.append("")
    times = [
        [
            f"to {m}",
            str(built.times[m].count),
            duration(built.times[m].median_seconds),
            duration(built.times[m].p90_seconds),
        ]
        for m in MEASURES
    ]
    lines += [table(times, ["time", "cases", "median", "90th percentile"]), ""]
    lines.append(
        f"Finished with no caseworker: {built.finished_without_person} of {built.finished} "
        f"({percent(built.share_without_person)})"
    )
    lines.append(f"Reached a caseworker: {built.reached_person}")
    lines += [f"  {n:>5}  {reason}" for reason, n in built.reasons]
    lines.append("")
    outstanding = [
        [o.icb_code or "-", o.organisation_code or "-", str(o.open), o.oldest.date().isoformat()]
        for o in built.outstanding
    ]
    lines.append("Approvals outstanding:" if outstanding else "Approvals outstanding: none")
    if outstanding:
        lines.append(table(outstanding, ["ICB", "organisation", "open", "oldest"]))
    return "\n".join(lines).rstrip()
