"""`pcse demo`: the whole pipeline on the local defaults, printed as it goes."""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import TYPE_CHECKING

import click

from service.clitools import table

if TYPE_CHECKING:
    from demo.run import DemoReport


def register(cli: click.Group) -> None:
    cli.add_command(demo)


@click.command()
def demo() -> None:
    """Run the whole pipeline on sample mail, with no server to install.

    Uses the built-in local defaults only (SQLite, Maildir inbox and an SMTP sink, all
    under ./var); it clears what an earlier demo left there first.
    """
    root = click.get_current_context().find_root()
    if root.params.get("config_path") or os.environ.get("PCSE_CONFIG"):
        click.echo(
            "Note: the demo ignores --config and $PCSE_CONFIG; it always runs on the "
            "built-in local defaults under ./var."
        )
    if not root.params.get("verbose"):
        # The demo prints its own progress; the service's log lines would repeat it.
        logging.getLogger().setLevel(logging.WARNING)
    # Imported here: the demo pulls in the SMTP sink and the PDF tools, which other
    # commands do not need at start-up.
    from demo.run import run_demo

    report = run_demo(click.echo)
    click.echo(summary(report))


def summary(report: DemoReport) -> str:
    """The final table of cases and their emails, and where to look next."""
    rows = [
        [line.ref, line.story, line.organisation or "-", line.state, _emails(line.sent)]
        for line in report.cases
    ]
    parts = [
        "",
        f"Cases ({len(report.cases)}), each with the emails sent about it:",
        "",
        table(rows, ["case", "sample", "org", "state", "emails sent"]),
    ]
    if report.ignored:
        parts += ["", "Messages that opened no case:"]
        parts += [f"  {line}" for line in report.ignored]
    # The richest story to look at: a form, its approval by email, the role set up.
    shown = next(
        (c.ref for c in report.cases if c.key == "gpp_form"),
        report.cases[0].ref if report.cases else "REF",
    )
    parts += [
        "",
        f"{report.sent_total} emails are in {report.sent_dir}/ (a Maildir: one file per email, "
        f"in {report.sent_dir}/new/). Done in {report.seconds:.1f} s.",
        "",
        "Where to look next (the pcse command is in .venv/bin):",
        *_aligned(
            [
                (f"ls {report.sent_dir}/new/", "every email sent, as the SMTP server received it"),
                ("pcse queue", "every case, newest first"),
                ("pcse queue --needs-person", "what a caseworker takes first"),
                (f"pcse case show {shown}", "what was read, decided and sent, and why"),
                ("pcse directory show A81005", "the roles the demo set up"),
                ("pcse caseworker add EMAIL --name NAME", "an account for the caseworker pages,"),
                ("pcse serve", "then the pages at http://127.0.0.1:8000/"),
            ]
        ),
    ]
    return "\n".join(parts)


def _aligned(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(command) for command, _ in pairs)
    return [f"  {command.ljust(width)}   {what}" for command, what in pairs]


def _emails(purposes: Counter[str]) -> str:
    if not purposes:
        return "0"
    listed = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in sorted(purposes.items()))
    return f"{sum(purposes.values())}: {listed}"
