"""`pcse purge`, `pcse person export` and `pcse person erase`: personal data on schedule,
subject access and erasure (docs/retention.md)."""

from __future__ import annotations

import click

import service.schema  # noqa: F401 (every table on the metadata: erasure scans them all)
from core.timeutil import utcnow
from service.clitools import emit_json, fail, with_app
from service.context import AppContext
from service.webhooks import undelivered_naming
from workflow.privacy import erase_person, export_person
from workflow.retention import purge as run_purge


def register(cli: click.Group) -> None:
    cli.add_command(purge)
    cli.add_command(person)


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@with_app(json_flag=True)
def purge(app: AppContext, dry_run: bool, json_output: bool) -> None:
    """Remove personal data past its retention period, keeping each case's skeleton."""
    report = run_purge(
        app.db(),
        app.config.retention,
        raw_dir=app.config.storage.raw_dir,
        now=utcnow(),
        dry_run=dry_run,
    )
    if json_output:
        emit_json(report.as_json())
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb}: the original emails of {report.cases_raw} closed case(s), the personal "
        f"values of {report.cases_personal}; {report.unlinked_messages} message(s) on no "
        f"case, {report.failed_messages} failed message(s), {report.unlinked_sent} email(s) "
        "sent on no case."
    )
    if not dry_run:
        click.echo(
            f"Raw messages removed: {report.raw_messages}; texts of emails sent removed: "
            f"{report.sent_bodies}."
        )


@click.group()
def person() -> None:
    """Subject access and erasure for one person, by email address."""


@person.command("export")
@click.argument("email")
@with_app()
def person_export(app: AppContext, email: str) -> None:
    """Every case, message and role that names EMAIL, as one JSON document."""
    with app.db().transaction() as session:
        document = export_person(session, email, raw_dir=app.config.storage.raw_dir)
    emit_json(document)


@person.command("erase")
@click.argument("email")
@click.option("--by", "by", required=True, help="Who erases (recorded in the history).")
@click.option("--reason", required=True, help="Why (e.g. the request's reference).")
@with_app(json_flag=True)
def person_erase(app: AppContext, email: str, by: str, reason: str, json_output: bool) -> None:
    """Erase EMAIL and the name beside it everywhere, keeping the audit skeleton."""
    if not reason.strip():
        raise click.UsageError("--reason must say why.")
    waiting = undelivered_naming(app.db(), app.config.webhooks, email)
    if waiting:
        fail(
            f"{waiting} role change(s) naming this person have not yet reached every webhook "
            "receiver (pcse directory webhooks status); erase once they have, so that "
            "PCSE Online is told who they were about."
        )
    with app.db().transaction() as session:
        report = erase_person(
            session, email, by=by, reason=reason, raw_dir=app.config.storage.raw_dir, now=utcnow()
        )
    if json_output:
        emit_json(report.as_json())
        return
    click.echo(
        f"Erased: {sum(report.rows.values())} value(s) in {len(report.rows)} table(s), "
        f"{len(report.cases)} case(s), {report.raw_messages} original email(s). "
        f"The history now says {report.marker}."
    )
