"""`pcse poll --once`, `pcse status` and `pcse run` as real processes against a real Dovecot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from intake.models import InboundMessage
from service.config import Config, DatabaseConfig, ScheduleConfig, StorageConfig, to_toml
from service.runner import Service
from tests.fixtures.dovecot import ImapAccount, opening_handler, plain_request

pytestmark = pytest.mark.dovecot

PCSE = str(Path(sys.executable).with_name("pcse"))


def write_config(
    path: Path, db: Database, account: ImapAccount, *, poll_seconds: float = 300, idle: bool = True
) -> Path:
    box = account.mailbox_config()
    path.write_text(
        to_toml(
            {
                "database": {"url": db.url},
                "mailboxes": [
                    {
                        "name": "enquiries",
                        "address": "pcse.portalenquiries@nhs.net",
                        "imap_host": "127.0.0.1",
                        "imap_port": box.imap_port,
                        "imap_ssl": False,
                        "username": box.username,
                        "password_env": "TEST_IMAP_PASSWORD",
                    }
                ],
                "smtp": {"host": "127.0.0.1", "port": 9},
                "schedule": {
                    "poll_seconds": poll_seconds,
                    "idle": idle,
                    "outbox_seconds": 3600,
                    "housekeeping_seconds": 3600,
                },
                "storage": {"raw_dir": path.parent / "raw"},
            }
        )
    )
    return path


def pcse(config: Path, account: ImapAccount, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    env["TEST_IMAP_PASSWORD"] = account.password
    return subprocess.run(
        [PCSE, "--config", str(config), *args], capture_output=True, text=True, timeout=120, env=env
    )


def inbound(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_poll_once_json_and_status(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pcse.toml", sqlite_database, imap_account)
    imap_account.append(
        [plain_request(i) for i in range(5)]
        + [
            plain_request(
                9,
                subject="Automatic reply: PL admin request",
                body="I am out of the office until Monday.",
            ),
        ]
    )

    done = pcse(config, imap_account, "poll", "--once", "--json")

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {
        k: document[k] for k in ("fetched", "processed", "duplicates", "ignored", "failed")
    } == {"fetched": 6, "processed": 5, "duplicates": 0, "ignored": 1, "failed": 0}
    assert imap_account.password not in done.stderr
    rows = inbound(sqlite_database)
    assert {r.status for r in rows} == {"processed", "ignored"}
    assert all(r.outcome for r in rows)

    shown = pcse(config, imap_account, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["mailboxes"][0]["name"] == "enquiries"
    assert status["mailboxes"][0]["last_poll_at"] and not status["mailboxes"][0]["last_error"]
    # UTC, and saying so, whichever database kept it (SQLite keeps no zone).
    polled = datetime.fromisoformat(status["mailboxes"][0]["last_poll_at"])
    assert polled.utcoffset() == timedelta(0)
    assert status["mailboxes"][0]["last_fetched"] == 6
    assert status["messages_pending"] == 0 and status["messages_failed"] == 0
    assert sum(status["cases"].values()) == 5
    text = pcse(config, imap_account, "status")
    assert "enquiries" in text.stdout and "0 waiting" in text.stdout
    assert "+00:00" in text.stdout.splitlines()[2], text.stdout  # the mailbox's row


def test_poll_once_reports_an_unreachable_mailbox(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pcse.toml", sqlite_database, imap_account)
    imap_account.password = "not-the-password"
    done = pcse(config, imap_account, "poll", "--once", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["errors"]
    assert "refused the sign-in" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    status = json.loads(pcse(config, imap_account, "status", "--json").stdout)
    assert "refused the sign-in" in status["mailboxes"][0]["last_error"]


def test_poll_without_once_says_what_to_use(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pcse.toml", sqlite_database, imap_account)
    done = pcse(config, imap_account, "poll")
    assert done.returncode != 0
    assert "--once" in done.stderr and "Traceback" not in done.stderr


def wait_until(probe, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_run_picks_up_new_mail_by_idle_and_stops_on_sigterm(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pcse.toml", sqlite_database, imap_account, poll_seconds=600)
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    env["TEST_IMAP_PASSWORD"] = imap_account.password
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [PCSE, "--config", str(config), "run"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_until(lambda: "IDLE on 1" in log_path.read_text(), 20)
            time.sleep(0.5)  # the watcher is in IDLE
            imap_account.append([plain_request(1)])
            # Polling is every 10 minutes: only IDLE can explain a pick-up this quick.
            took = wait_until(
                lambda: [r for r in inbound(sqlite_database) if r.status != "pending"], 10
            )
            assert took < 5
            # Mail arriving while a round runs is taken by that round's next turn, without
            # asking the scheduler for a second instance of the job.
            for n in range(2, 8):
                imap_account.append([plain_request(n)])
            wait_until(
                lambda: len([r for r in inbound(sqlite_database) if r.status != "pending"]) == 7, 10
            )
            service.send_signal(signal.SIGTERM)
            assert service.wait(20) == 0
        finally:
            if service.poll() is None:
                service.kill()
                service.wait(5)
    text = log_path.read_text()
    assert "stopped" in text
    assert "inbound 1 [enquiries uid 1] new_request ->" in text
    handled = [line for line in text.splitlines() if " inbound " in line]
    assert handled and not [line for line in handled if "@" in line], "no address in the log"
    assert imap_account.password not in text
    assert "Please set up Jane Doe" not in text
    assert "maximum number of running instances" not in text


def test_idle_is_renewed_and_still_sees_new_mail(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    box = imap_account.mailbox_config()
    config = Config(
        database=DatabaseConfig(sqlite_database.url),
        mailboxes=[box],
        storage=StorageConfig(str(tmp_path / "raw")),
        schedule=ScheduleConfig(poll_seconds=600, idle=True),
    )
    service = Service(sqlite_database, config, opening_handler, jobs=[], idle_renew_seconds=1.0)
    service.start()
    try:
        watcher = service.watchers[0]
        wait_until(watcher.connected.is_set, 10)
        wait_until(lambda: watcher.renewals >= 2, 10)
        imap_account.append([plain_request(2)])
        took = wait_until(
            lambda: [r for r in inbound(sqlite_database) if r.status == "processed"], 10
        )
        assert took < 5
    finally:
        service.shutdown()
    assert not watcher.is_alive()


def test_stop_finishes_the_message_in_hand(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    box = imap_account.mailbox_config()
    config = Config(
        database=DatabaseConfig(sqlite_database.url),
        mailboxes=[box],
        storage=StorageConfig(str(tmp_path / "raw")),
        schedule=ScheduleConfig(poll_seconds=600, idle=False),
    )
    imap_account.append([plain_request(i) for i in range(40)])
    in_hand = threading.Event()
    stop = threading.Event()

    def slow_handler(session, row, mail, classification) -> str:
        in_hand.set()
        stop.wait(5)  # the stop request arrives while this message is being handled
        return opening_handler(session, row, mail, classification)

    service = Service(sqlite_database, config, slow_handler, jobs=[], stop=stop)
    service.start()
    try:
        assert in_hand.wait(20)
        stop.set()
    finally:
        service.shutdown()
    rows = inbound(sqlite_database)
    assert len(rows) == 40
    processed = [r for r in rows if r.status == "processed"]
    assert len(processed) == 1  # the one in hand was finished and committed
    assert all(
        r.status == "pending" and r.claimed_by is None for r in rows if r.status != "processed"
    )
