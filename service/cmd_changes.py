"""`pcse directory changes`: the role changes applied, in order, each once, from a cursor."""

from __future__ import annotations

import csv
import io

import click

from service.clitools import emit_json, fail, table, with_app
from service.context import AppContext
from workflow.changefeed import COLUMNS, change_document, changes_since, publish


def register(cli: click.Group) -> None:
    group = cli.commands["directory"]
    assert isinstance(group, click.Group)
    group.add_command(changes)


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
        writer.writerows(documents)
        click.echo(out.getvalue(), nl=False)
        return
    if not documents:
        click.echo(f"No changes after cursor {cursor}.")
        return
    rows = [[str(d[c] if d[c] is not None else "-") for c in COLUMNS] for d in documents]
    click.echo(table(rows, COLUMNS))
    click.echo(f"\nNext time: --since {last}")
