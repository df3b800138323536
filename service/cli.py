"""The `pcse` command. Each group of commands lives in a module of its own."""

from __future__ import annotations

import logging
import sys

import click

from service import (
    cmd_actions,
    cmd_cases,
    cmd_db,
    cmd_demo,
    cmd_directory,
    cmd_outbox,
    cmd_poll,
    cmd_web,
)
from workflow.errors import PcseError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="PCSE_CONFIG",
    help="Configuration file (default: $PCSE_CONFIG, else the local defaults under ./var).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail to stderr.")
def cli(config_path: str | None, verbose: bool) -> None:
    """PCSE Online user management: read the enquiries inbox, route, approve, apply, reply."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for module in (cmd_db, cmd_cases, cmd_actions, cmd_web, cmd_directory, cmd_outbox, cmd_demo,
               cmd_poll):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one sentence on stderr and a non-zero status."""
    try:
        cli.main(args=argv, prog_name="pcse", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PcseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
