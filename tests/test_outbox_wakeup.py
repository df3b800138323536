"""Replies leave as soon as they are committed, not at the next outbox sweep.

Each test sets the sweep to a minute, so only the wake-up can explain an email reaching
the SMTP server within seconds: in the process that committed it (every database), and
from another process through LISTEN/NOTIFY (PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from core.db import Database
from notifications import wakeup
from notifications.samples import SAMPLE_CONTEXTS
from notifications.sink import SmtpSink
from service.config import (
    Config,
    DatabaseConfig,
    ScheduleConfig,
    SmtpConfig,
    StorageConfig,
    to_toml,
)
from service.jobs import build_handler, outbox_job
from service.runner import Service
from tests.fixtures.databases import empty_postgres
from tests.fixtures.dovecot import ImapAccount, plain_request
from tests.test_workflow_helpers import make_env
from workflow.mail import enqueue

PCSE = str(Path(sys.executable).with_name("pcse"))
SWEEP = 60.0  # the safety net: far longer than any wait below
PURPOSE = "redirect_performer_registration"  # an email about no case
CONTEXT = SAMPLE_CONTEXTS[PURPOSE]


def wait_until(check: Callable[[], object], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def config_for(db: Database, sink: SmtpSink, tmp_path: Path, **extra: object) -> Config:
    return Config(
        database=DatabaseConfig(db.url),
        smtp=SmtpConfig(host=sink.host, port=sink.port, timeout_seconds=5),
        storage=StorageConfig(str(tmp_path / "raw")),
        schedule=ScheduleConfig(poll_seconds=600, idle=True, outbox_seconds=SWEEP),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


def started(service: Service) -> None:
    """The service is up and its first (start-up) sweep has run."""
    service.start()
    wait_until(lambda: all(loop.runs >= 1 for loop in service.loops), 10)


@pytest.mark.dovecot
def test_acknowledgement_leaves_as_soon_as_the_request_is_handled(
    imap_account: ImapAccount, database: Database, sink: SmtpSink, tmp_path: Path
) -> None:
    config = config_for(database, sink, tmp_path, mailboxes=[imap_account.mailbox_config()])
    service = Service(database, config, build_handler(config))
    started(service)
    try:
        wait_until(service.watchers[0].connected.is_set, 10)
        time.sleep(0.3)  # the watcher is in IDLE
        imap_account.append([plain_request(1)])
        took = wait_until(lambda: sink.messages, 10)
    finally:
        service.shutdown()
    assert took < 5, f"the acknowledgement took {took:.1f} s"
    assert sink.messages[0].rcpt_tos == ("practice1@example.nhs.uk",)
    assert all(loop.runs < 10 for loop in service.loops), "woken, not spinning"


def queue_reply(session, env, to_address: str) -> None:
    """An email about no case, queued in `session`."""
    enqueue(session, env, purpose=PURPOSE, to_address=to_address, to_name=None, context=CONTEXT)


def test_a_rolled_back_reply_wakes_no_one(database: Database) -> None:
    env = make_env()
    wakeup.WAKE.clear()
    with pytest.raises(RuntimeError), database.transaction() as session:
        queue_reply(session, env, "someone@example.org")
        raise RuntimeError("the change that caused it failed")
    assert not wakeup.WAKE.is_set()
    with database.transaction() as session:
        queue_reply(session, env, "someone@example.org")
        assert not wakeup.WAKE.is_set(), "not before the commit"
    assert wakeup.WAKE.is_set()


def test_a_released_savepoint_wakes_no_one_before_the_commit(database: Database) -> None:
    """Intake works each message of a batch in a savepoint; the batch commits once."""
    env = make_env()
    wakeup.WAKE.clear()
    notifies: list[str] = []

    def seen(_conn, _cursor, statement, *_: object) -> None:
        if statement.startswith("NOTIFY"):
            notifies.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        with database.transaction() as session:
            for number in range(2):
                with session.begin_nested():
                    queue_reply(session, env, f"someone{number}@example.org")
                assert not wakeup.WAKE.is_set(), "not as the savepoint is released"
            # A later message that fails takes only its own work back.
            with pytest.raises(RuntimeError), session.begin_nested():
                session.connection()
                raise RuntimeError("this message failed")
            assert not notifies, "NOTIFY goes with the commit"
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)
    assert wakeup.WAKE.is_set()
    # One notification for the transaction, however many emails it queued.
    assert len(notifies) == (1 if database.engine.dialect.name == "postgresql" else 0)


@pytest.mark.postgres
def test_a_reply_released_by_another_process_is_sent_at_once(
    pg_url: str, sink: SmtpSink, tmp_path: Path
) -> None:
    """A caseworker's `pcse outbox retry` in its own process wakes `pcse run`'s sender."""
    empty_postgres(pg_url)
    db = Database(pg_url)
    capped = dataclasses.replace(make_env(), max_replies_per_hour=0)
    with db.transaction() as session:
        held = enqueue(
            session,
            capped,
            purpose=PURPOSE,
            to_address="held@example.org",
            to_name=None,
            context=CONTEXT,
        )
    assert held.status == "held"
    config = config_for(db, sink, tmp_path)
    path = tmp_path / "pcse.toml"
    path.write_text(
        to_toml(
            {
                "database": {"url": pg_url},
                "smtp": {"host": sink.host, "port": sink.port},
                "storage": {"raw_dir": tmp_path / "raw"},
            }
        )
    )
    service = Service(db, config, build_handler(config), jobs=[outbox_job(db, config)])
    started(service)
    try:
        assert service.listener is not None
        wait_until(service.listener.listening.is_set, 10)  # type: ignore[attr-defined]
        wakeup.WAKE.clear()
        env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
        retried = subprocess.run(
            [PCSE, "--config", str(path), "outbox", "retry", str(held.id), "--by", "cw@nhs.net"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert retried.returncode == 0, retried.stderr
        took = wait_until(lambda: sink.messages, 10)
    finally:
        service.shutdown()
        db.dispose()
    assert took < 5, f"the released email took {took:.1f} s"
    assert sink.messages[0].rcpt_tos == ("held@example.org",)
    assert service.listener.heard >= 1  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_the_listener_hears_only_committed_replies(pg_url: str) -> None:
    empty_postgres(pg_url)
    db = Database(pg_url)  # an engine of its own, as another process would have
    stop, heard = threading.Event(), threading.Event()
    listener = wakeup.Listener(pg_url, stop, heard, check_seconds=0.2)
    listener.start()
    try:
        wait_until(listener.listening.is_set, 10)
        heard.clear()
        with pytest.raises(RuntimeError), db.transaction() as session:
            wakeup.queued(session)
            raise RuntimeError("rolled back")
        time.sleep(0.5)
        assert not heard.is_set()
        with db.transaction() as session:
            wakeup.queued(session)
        wait_until(heard.is_set, 5)
    finally:
        stop.set()
        listener.join(5)
        db.dispose()
    assert not listener.is_alive()
