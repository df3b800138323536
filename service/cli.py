"""The `pcse` command. Each group of commands lives in a module of its own."""

from __future__ import annotations

import functools
import importlib
import logging
import sys

import click

from core.errors import PcseError
from core.redact import RedactingFormatter

# Each top-level command and the modules that build it. A module is imported only when one
# of its commands runs, so `pcse status` does not pay for the web pages or the demo.
# Packages above the service add commands through the `pcse.commands` entry point group
# (pyproject.toml): `pcse demo` comes from the demo package that way.
COMMANDS: dict[str, tuple[str, ...]] = {
    "ael": ("service.cmd_directory",),
    "approvers": ("service.cmd_directory",),
    "backup": ("service.cmd_backup",),
    "case": (
        "service.cmd_cases",
        "service.cmd_actions",
        "service.cmd_helpdesk",
        "service.cmd_case_plan",
    ),
    "caseworker": ("service.cmd_web",),
    "db": ("service.cmd_db",),
    "directory": ("service.cmd_directory", "service.cmd_changes", "service.cmd_directory_edits"),
    "outbox": ("service.cmd_outbox",),
    "person": ("service.cmd_privacy",),
    "poll": ("service.cmd_poll",),
    "purge": ("service.cmd_privacy",),
    "queue": ("service.cmd_cases",),
    "report": ("service.cmd_report",),
    "restore": ("service.cmd_backup",),
    "run": ("service.cmd_poll",),
    "security": ("service.cmd_security",),
    "serve": ("service.cmd_web",),
    "status": ("service.cmd_poll",),
}


@functools.cache
def commands() -> dict[str, tuple[str, ...]]:
    """Every command: COMMANDS and those other packages add. The entry points are read only
    when a command is not one of COMMANDS, or all are listed: reading every installed
    package's metadata takes longer than a command like `pcse status` itself."""
    import importlib.metadata

    added = importlib.metadata.entry_points(group="pcse.commands")
    # A package's command never hides a built-in one, in the listing as when it runs.
    return {**{entry.name: (entry.value,) for entry in added}, **COMMANDS}


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LIBRARIES = (
    "imapclient",
    "mail.log",
    "aiosmtpd",
    "msal",
    "urllib3",
    "asyncio",
    "apscheduler",
    "pdfminer",
)


class LazyGroup(click.Group):
    """A group whose commands are loaded from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        modules = COMMANDS.get(cmd_name) or commands().get(cmd_name)
        if cmd_name not in self.commands and modules:
            loaded = click.Group()
            for module in modules:
                importlib.import_module(module).register(loaded)
            self.add_command(loaded.commands[cmd_name])
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PCSE_CONFIG",
    help="Configuration file (default: $PCSE_CONFIG, else the local defaults under ./var).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail to stderr.")
def cli(config_path: str | None, verbose: bool) -> None:
    """PCSE Online user management: read the enquiries inbox, route, approve, apply, reply."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:  # tracebacks without people's details
        handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    # Their debugging lines carry what was exchanged (mail, SQL values, SMTP envelopes),
    # which names people: -v is for this project's detail only.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO)
    # SQLAlchemy logs every statement at INFO, aiosmtpd (the demo's and the tests' SMTP
    # sink) every envelope with its recipients, and httpx every request's URL, whose query
    # may hold a webhook receiver's key: warnings only, -v or not.
    for name in ("sqlalchemy", "mail.log", "aiosmtpd", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _database_unusable(exc: Exception) -> str | None:
    """Why the database refused the command (down, unreachable, no such database), in the
    driver's own first line (host and port, never the password); None for anything else.
    Read from sqlalchemy only if a command loaded it, so that start-up does not."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.OperationalError):
        return None
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc.orig or exc).__name__


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
    except Exception as exc:
        why = _database_unusable(exc)
        if why is None:
            raise
        click.echo(f"The database cannot be used: {why}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
