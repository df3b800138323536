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


def test_a_quick_command_does_not_load_the_web_pages() -> None:
    probe = (
        "import sys; from service.cli import cli; import click; "
        "cli.get_command(click.Context(cli), 'status'); "
        "print(*(m in sys.modules for m in ('caseworker.app', 'demo.cli', 'service.runner', "
        "'apscheduler')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # Nor the service's scheduler, which only `pcse run` needs.
    assert done.stdout.split() == ["False", "False", "False", "False"]


def test_sending_the_outbox_loads_neither_the_workflow_nor_the_form_readers() -> None:
    # `pcse outbox send` runs every minute from cron in some set-ups: it starts quickly.
    probe = (
        "import sys; from service.cli import cli, commands; import click; "
        "cli.get_command(click.Context(cli), 'outbox'); "
        "print(*(m in sys.modules for m in ('workflow.mail', 'forms.pdf_reader', "
        "'forms.email_request')), commands.cache_info().misses)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # Nor does it read the installed packages' entry points.
    assert done.stdout.split() == ["False", "False", "False", "0"]
