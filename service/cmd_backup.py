"""`pcse backup FOLDER` and `pcse restore FOLDER` (service.backup; docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import click

from service.backup import backup, restore, secret_instruction
from service.clitools import with_app
from service.context import AppContext


def register(cli: click.Group) -> None:
    cli.add_command(backup_command)
    cli.add_command(restore_command)


@click.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@with_app()
def backup_command(app: AppContext, folder: Path) -> None:
    """Back up the database, the raw store and the web secret into FOLDER (new or empty)."""
    click.echo(backup(app.config, folder).sentence("Backed up"))


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@with_app()
def restore_command(app: AppContext, folder: Path) -> None:
    """Restore a backup from FOLDER into an empty database and an empty raw store."""
    summary = restore(app.config, folder)
    click.echo(summary.sentence("Restored"))
    click.echo(secret_instruction(app.config, folder))
    click.echo("Then run `pcse db upgrade`: it brings a backup from an earlier release up to date.")
