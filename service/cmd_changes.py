"""`pcse directory changes`: the role changes applied, in order, each once, from a cursor;
`pcse directory webhooks`: their signed POSTs to the configured receivers."""

from __future__ import annotations

import csv
import io

import click

from core.csvcells import text_records
from core.timeutil import utcnow
from core.workers import worker_id
from service.clitools import emit_json, fail, table, with_app
from service.context import AppContext
from service.webhooks import deliver_all, retry_failed, status
from workflow.changefeed import COLUMNS, change_document, changes_since, publish


def register(cli: click.Group) -> None:
    group = cli.commands["directory"]
    assert isinstance(group, click.Group)
    group.add_command(changes)
    group.add_command(webhooks)


@click.command()
@click.option(
    "--since",
    "cursor",
    type=int,
    default=0,
    show_default=True,
    help="The last cursor already taken: only changes after it are printed.",
)
@click.option("--limit", type=int, default=None, help="At most this many changes.")
@click.option("--csv", "csv_output", is_flag=True, help="Print CSV with a header row.")
@with_app(json_flag=True)
def changes(
    app: AppContext, cursor: int, limit: int | None, csv_output: bool, json_output: bool
) -> None:
    """The role changes applied after CURSOR, oldest first; resume from the last cursor."""
    if cursor < 0:
        fail("--since must be a cursor of 0 or more.", 2)
    if limit is not None and limit < 1:
        fail("--limit must be 1 or more.", 2)
    if json_output and csv_output:
        fail("Choose one of --json and --csv.", 2)
    db = app.db()
    with db.transaction() as session:
        publish(session)
    with db.transaction() as session:
        documents = [change_document(row) for row in changes_since(session, cursor, limit=limit)]
    last = documents[-1]["cursor"] if documents else cursor
    if json_output:
        emit_json({"changes": documents, "cursor": last})
        return
    if csv_output:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(text_records(documents))
        click.echo(out.getvalue(), nl=False)
        return
    if not documents:
        click.echo(f"No changes after cursor {cursor}.")
        return
    rows = [[str(d[c] if d[c] is not None else "-") for c in COLUMNS] for d in documents]
    click.echo(table(rows, COLUMNS))
    click.echo(f"\nNext time: --since {last}")


@click.group()
def webhooks() -> None:
    """The change feed's signed POSTs to the [[webhooks]] receivers."""


@webhooks.command("status")
@with_app(json_flag=True)
def webhooks_status(app: AppContext, json_output: bool) -> None:
    """Per receiver: pending, sent and failed deliveries, and what the next one waits on."""
    documents = status(app.db(), app.config.webhooks)
    if json_output:
        emit_json(documents)
        return
    if not documents:
        click.echo("No [[webhooks]] receivers are configured.")
        return
    for d in documents:
        click.echo(
            f"{d['name']}: delivered up to cursor {d['delivered_cursor']}, "
            f"{d['pending']} pending, {d['failed']} failed"
        )
        if d["next_cursor"] is not None and d["last_error"]:
            click.echo(
                f"  cursor {d['next_cursor']} after {d['next_attempts']} tries: {d['last_error']}"
            )
        if d["failed"]:
            click.echo(f"  later changes wait: pcse directory webhooks retry {d['name']}")


@webhooks.command("send")
@with_app(json_flag=True)
def webhooks_send(app: AppContext, json_output: bool) -> None:
    """Queue new changes and deliver what is due now (the service does this on its own)."""
    report = deliver_all(app.db(), app.config.webhooks, worker=worker_id())
    if json_output:
        emit_json(report.as_json())
    else:
        click.echo(
            f"{report.queued} queued, {report.sent} sent, {report.retrying} to retry, "
            f"{report.failed} failed."
        )
    for error in report.errors:
        click.echo(error, err=True)


@webhooks.command("retry")
@click.argument("name")
@with_app()
def webhooks_retry(app: AppContext, name: str) -> None:
    """Make a receiver's failed deliveries due again (the receiver is fixed)."""
    if name not in {w.name for w in app.config.webhooks}:
        fail(f"There is no [[webhooks]] receiver named {name!r}.")
    count = retry_failed(app.db(), name, utcnow())
    click.echo(f"{count} failed deliveries to {name} are due again.")
