"""`pcse db upgrade`."""

from __future__ import annotations

import click

from service.clitools import with_app
from service.context import AppContext, shown_url
from service.schema import upgrade


def register(cli: click.Group) -> None:
    cli.add_command(db)


@click.group()
def db() -> None:
    """Create or migrate the database."""


@db.command("upgrade")
@with_app()
def db_upgrade(app: AppContext) -> None:
    """Create the schema, or migrate it to the newest version."""
    upgrade(app.database.engine)
    click.echo(f"The database is up to date ({shown_url(app.config.database.url)}).")
