"""The `pcse` command loads each command's module on first use, every command is there, and
a database it cannot use is told in a sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from service.cli import cli, commands, main
from tests.fixtures.browser import free_port


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


@pytest.mark.parametrize("command", [["status"], ["queue"]])
def test_a_database_that_cannot_be_reached_is_one_sentence(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a traceback: the operator reads why, with the host and port and no password."""
    port = free_port()  # nothing listens there
    config = tmp_path / "pcse.toml"
    config.write_text(
        f'[database]\nurl = "postgresql+psycopg://pcse:s3cret@127.0.0.1:{port}/pcse"\n'
    )
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(config), *command])
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    assert err.startswith("The database cannot be used: ") and f"port {port}" in err, err
    assert "s3cret" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_command_run_where_there_is_no_database_says_so_and_makes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from the wrong folder, with no configuration: the missing database is named, with
    where the configuration came from, and no empty one is made in its place."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PCSE_CONFIG", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["status"])
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    assert err.startswith("There is no database at var/pcse.sqlite3 (configuration: built-in")
    assert not (tmp_path / "var").exists()
