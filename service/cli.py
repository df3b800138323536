"""The `pcse` command. Each group of commands lives in a module of its own."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from workflow.errors import PcseError

# Each top-level command and the modules that build it. A module is imported only when one
# of its commands runs, so `pcse status` does not pay for the web pages or the demo.
COMMANDS: dict[str, tuple[str, ...]] = {
    "ael": ("cmd_directory",),
    "approvers": ("cmd_directory",),
    "case": ("cmd_cases", "cmd_actions"),
    "caseworker": ("cmd_web",),
    "db": ("cmd_db",),
    "demo": ("cmd_demo",),
    "directory": ("cmd_directory",),
    "outbox": ("cmd_outbox",),
    "poll": ("cmd_poll",),
    "queue": ("cmd_cases",),
    "run": ("cmd_poll",),
    "security": ("cmd_security",),
    "serve": ("cmd_web",),
    "status": ("cmd_poll",),
}


QUIET_LIBRARIES = ("imapclient", "mail.log", "aiosmtpd", "msal", "urllib3",
                   "httpx", "httpcore", "asyncio", "apscheduler", "pdfminer")


class LazyGroup(click.Group):
    """A group whose commands are loaded from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            loaded = click.Group()
            for module in COMMANDS[cmd_name]:
                importlib.import_module(f"service.{module}").register(loaded)
            self.add_command(loaded.commands[cmd_name])
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    # Their debugging lines carry what was exchanged (mail, SQL values, SMTP envelopes),
    # which names people: -v is for this project's detail only.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO)
    # SQLAlchemy logs every statement at INFO: warnings only, -v or not.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


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
