"""The `pcse` command loads each command's module on first use, and every command is there."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from service.cli import cli, commands


def test_every_listed_command_loads_under_its_own_name() -> None:
    ctx = click.Context(cli)
    for name in commands():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {
        line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()
    }
    assert listed == set(commands()) and "demo" in listed


def test_case_group_carries_the_caseworker_actions() -> None:
    case = cli.get_command(click.Context(cli), "case")
    assert isinstance(case, click.Group)
    assert {
        "show",
        "approve",
        "reject",
        "request-info",
        "reopen",
        "withdraw",
        "ask-approver",
    } <= set(case.commands)


def loaded_by(command: str, modules: tuple[str, ...]) -> dict[str, bool]:
    """Which of `modules` a fresh interpreter has loaded once `pcse` has found `command`,
    and (as "entry points") whether it read the installed packages' entry points."""
    probe = (
        "import sys; from service.cli import cli, commands; import click; "
        f"cli.get_command(click.Context(cli), {command!r}); "
        f"print(*(m in sys.modules for m in {modules!r}), commands.cache_info().misses > 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    said = [word == "True" for word in done.stdout.split()]
    return dict(zip((*modules, "entry points"), said, strict=True))


def test_a_quick_command_does_not_load_the_web_pages() -> None:
    # Nor the service's scheduler, which only `pcse run` needs.
    loaded = loaded_by("status", ("caseworker.app", "demo.cli", "service.runner", "apscheduler"))
    assert loaded == dict.fromkeys(loaded, False)


def test_sending_the_outbox_loads_neither_the_workflow_nor_the_form_readers() -> None:
    # `pcse outbox send` runs every minute from cron in some set-ups: it starts quickly,
    # and does not read the installed packages' entry points either.
    loaded = loaded_by("outbox", ("workflow.mail", "forms.pdf_reader", "forms.email_request"))
    assert loaded == dict.fromkeys(loaded, False)


def test_a_command_from_another_package_is_found_through_its_entry_point() -> None:
    loaded = loaded_by("demo", ("demo.cli",))
    assert loaded == {"demo.cli": True, "entry points": True}
