"""`pcse outbox send|list|retry|dismiss`: in this process through the CLI's entry point, and
once through the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.db import Database
from notifications.purposes import PURPOSES
from notifications.sink import SmtpSink
from service.cli import main
from workflow.env import WorkflowEnv
from workflow.mail import enqueue

PCSE = Path(sys.executable).parent / "pcse"
ROOT = Path(__file__).parent.parent


def write_config(path: Path, db_url: str, smtp: str) -> Path:
    path.write_text(f'[database]\nurl = "{db_url}"\n\n[smtp]\n{smtp}\n', encoding="utf-8")
    return path


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """SQLite: the outbox itself is tested on both databases elsewhere."""
    return sqlite_database


@pytest.fixture
def config(database: Database, tmp_path: Path, smtp_sink: SmtpSink) -> Path:
    return write_config(
        tmp_path / "pcse.toml",
        database.url,
        f'host = "127.0.0.1"\nport = {smtp_sink.port}\ntimeout_seconds = 5',
    )


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def pcse(capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """Run `pcse --config CONFIG ARGS…` through the entry point, as the shell would."""

    def run(config: Path, *args: str) -> Done:
        capsys.readouterr()
        try:
            main(["--config", str(config), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


def queue(database: Database, to: str, n: int) -> list[int]:
    with database.transaction() as session:
        return [
            enqueue(
                session,
                WorkflowEnv(),
                purpose="redirect_performer_registration",
                to_address=to,
                to_name=None,
                context={},
            ).id
            for _ in range(n)
        ]


def test_send_and_list(config: Path, database: Database, smtp_sink: SmtpSink, pcse) -> None:
    queue(database, "gp@example.org", 6)  # the sixth is held by the hourly cap
    done = pcse(config, "outbox", "send", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sent": 5, "failed": 0, "pending": 0}
    assert len(smtp_sink.messages) == 5

    listed = pcse(config, "outbox", "list", "--status", "held", "--json")
    assert listed.returncode == 0, listed.stderr
    [held] = json.loads(listed.stdout)
    assert held["status"] == "held" and held["to"] == "gp@example.org"
    assert "limit 5" in held["last_error"]

    table = pcse(config, "outbox", "list")
    assert table.returncode == 0
    assert len(table.stdout.splitlines()) == 2 + 6 and "held" in table.stdout

    released = pcse(config, "outbox", "retry", str(held["id"]), "--by", "cw@pcse.nhs.uk")
    assert released.returncode == 0, released.stderr
    again = pcse(config, "outbox", "send", "--json")
    assert json.loads(again.stdout) == {"sent": 1, "failed": 0, "pending": 0}
    assert len(smtp_sink.messages) == 6


def test_dismiss_and_mistakes_are_one_sentence(config: Path, database: Database, pcse) -> None:
    [row_id] = queue(database, "gp@example.org", 1)
    done = pcse(
        config,
        "outbox",
        "dismiss",
        str(row_id),
        "--by",
        "cw@pcse.nhs.uk",
        "--reason",
        "Answered by phone.",
    )
    assert done.returncode == 0, done.stderr
    [row] = json.loads(pcse(config, "outbox", "list", "--json").stdout)
    assert row["status"] == "dismissed"
    assert row["last_error"] == "Dismissed by cw@pcse.nhs.uk: Answered by phone."
    for args, sentence in [
        (("retry", str(row_id), "--by", "cw@pcse.nhs.uk"), "only held, failed or unconfirmed"),
        (
            ("accept", str(row_id), "--by", "cw@pcse.nhs.uk", "--reason", "x"),
            "only an email whose delivery is unconfirmed",
        ),
        (("retry", "424242", "--by", "cw@pcse.nhs.uk"), "There is no outgoing email"),
    ]:
        refused = pcse(config, "outbox", *args)
        assert refused.returncode == 1
        assert sentence in refused.stderr and "Traceback" not in refused.stderr


def test_an_unconfirmed_email_can_be_left_as_sent(config: Path, database: Database, pcse) -> None:
    from sqlalchemy import update

    from notifications.claims import UNCONFIRMED
    from notifications.models import OutboxMessage

    [row_id] = queue(database, "gp@example.org", 1)
    with database.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(status="sent", last_error=UNCONFIRMED)
        )
    done = pcse(
        config,
        "outbox",
        "accept",
        str(row_id),
        "--by",
        "cw@pcse.nhs.uk",
        "--reason",
        "The practice has it.",
    )
    assert done.returncode == 0, done.stderr
    [row] = json.loads(pcse(config, "outbox", "list", "--json").stdout)
    assert row["status"] == "sent"
    assert row["last_error"] == (
        "Delivery unconfirmed; left as sent by cw@pcse.nhs.uk: The practice has it."
    )


def test_send_with_the_server_down_reports_it_and_fails(
    config: Path, database: Database, smtp_sink: SmtpSink, pcse
) -> None:
    queue(database, "gp@example.org", 2)
    smtp_sink.stop()
    done = pcse(config, "outbox", "send", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"sent": 0, "failed": 0, "pending": 2}
    assert "Could not connect to or sign in at the mail server" in done.stderr
    assert "Traceback" not in done.stderr


# A plain connection keeps the test short; TLS with XOAUTH2 is covered in test_smtp_auth.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_installed_command_signs_in_with_the_intakes_oauth2_provider(
    database: Database, tmp_path: Path
) -> None:
    with SmtpSink(tokens={"token-from-command"}, auth_require_tls=False) as sink:
        config = write_config(
            tmp_path / "oauth.toml",
            database.url,
            f'host = "127.0.0.1"\nport = {sink.port}\nauth = "oauth2"\n'
            'username = "pcse.portalenquiries@nhs.net"\n\n'
            '[[mailboxes]]\nname = "enquiries"\nmaildir = "var/maildir"\nauth = "oauth2"\n'
            'oauth2_provider = "command"\noauth2_token_command = "echo token-from-command"',
        )
        queue(database, "gp@example.org", 1)
        done = subprocess.run(
            [str(PCSE), "--config", str(config), "outbox", "send", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sent"] == 1
        assert sink.wait_for(1)[0].login == "pcse.portalenquiries@nhs.net"


def test_check_templates_reports_an_override_that_does_not_render(
    config: Path, tmp_path: Path, pcse
) -> None:
    good = pcse(config, "outbox", "check-templates")
    assert good.returncode == 0 and f"All {len(PURPOSES)} purposes render" in good.stdout
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "outcome_expired.txt").write_text("Hello {{ nobody_passed_this }}\n")
    bad = pcse(config, "outbox", "check-templates", "--dir", str(folder))
    assert bad.returncode == 1
    assert "outcome_expired: UndefinedError" in bad.stderr
    assert "1 template(s) in" in bad.stderr and "Traceback" not in bad.stderr


def test_list_marks_a_message_whose_acceptance_was_never_read(
    config: Path, database: Database, pcse
) -> None:
    from sqlalchemy import update

    from notifications.claims import UNCONFIRMED
    from notifications.models import OutboxMessage

    first, second, third = queue(database, "gp@example.org", 3)
    with database.transaction() as session:  # as a sender killed after the hand-over leaves it
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == first)
            .values(status="sent", claimed_by="host:1:dead")
        )
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == second).values(status="sent")
        )
        # and as it is once a later sender has taken the dead one's claims back
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == third)
            .values(status="sent", last_error=UNCONFIRMED)
        )
    rows = {r["id"]: r for r in json.loads(pcse(config, "outbox", "list", "--json").stdout)}
    assert rows[first]["unconfirmed"] is True and rows[second]["unconfirmed"] is False
    assert rows[third]["unconfirmed"] is True
    assert "sent (unconfirmed)" in pcse(config, "outbox", "list").stdout
