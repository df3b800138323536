"""Faults while `pcse run` drains a backlog: short versions of bench/faults.py.

Dovecot stopped and started again, the SMTP server refusing, a private PostgreSQL
cluster restarted under the service (cleanly, then as after a crash), and the raw store's
disk full. In each the service stays up, `pcse status` says what is wrong, and once the
fault is over everything is done, nothing lost and nothing twice (bench/audit.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bench import faults
from bench.pgcluster import ClusterUnavailable, running_cluster
from bench.stack import stack
from tests.fixtures.databases import empty_postgres

ROOT = Path(__file__).resolve().parents[1]


def require_ok(report: faults.FaultReport) -> None:
    assert (report.audit.lost, report.audit.duplicated_cases, report.audit.duplicated_emails) == (
        0,
        0,
        0,
    )
    assert report.audit.ok, report.audit.details()
    assert report.restarts == 0, "the service should ride out the fault, not exit"
    assert report.leftovers == 0


# --------------------------------------------------------------------------- the raw store

WRITE_TOO_MUCH = textwrap.dedent("""
    import resource, signal, sys
    from intake.rawstore import RawStore, RawStoreError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    store = RawStore(sys.argv[1])
    store.put(b"small message")  # fits
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        store.put_many([b"a" * 5_000, b"b" * 50_000])
    except RawStoreError as exc:
        print(exc)
""")


def test_a_store_that_cannot_write_leaves_no_partial_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_TOO_MUCH, str(tmp_path / "raw")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot take new mail (File too large)" in done.stdout, done.stderr
    files = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
    assert len(files) == 1 and not files[0].name.startswith(".")


# --------------------------------------------------------------------------- the database


def dies_with_its_connection(calls: list[int]):
    """A handler whose database connection is cut under it, once, as in a restart."""
    from sqlalchemy import text

    from tests.fixtures.dovecot import opening_handler

    def handler(session, inbound, mail, classification) -> str:
        calls.append(inbound.id)
        if len(calls) == 1:
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return opening_handler(session, inbound, mail, classification)

    return handler


@pytest.mark.postgres
def test_a_connection_lost_mid_message_parks_nothing(pg_url: str, tmp_path: Path) -> None:
    import mailbox

    from core.db import Database
    from intake.models import InboundMessage
    from intake.pipeline import poll_all, process_pending
    from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
    from tests.fixtures.dovecot import plain_request

    empty_postgres(pg_url)
    db = Database(pg_url)
    box = MailboxConfig(name="enquiries", maildir=str(tmp_path / "inbox"))
    config = Config(
        database=DatabaseConfig(pg_url),
        mailboxes=[box],
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
    )
    inbox = mailbox.Maildir(box.maildir, create=True)
    for n in range(3):
        inbox.add(plain_request(n))
    poll_all(db, config)
    calls: list[int] = []

    first = process_pending(db, config, dies_with_its_connection(calls))
    second = process_pending(db, config, dies_with_its_connection(calls))

    with db.transaction() as session:
        statuses = session.scalars(select(InboundMessage.status)).all()
    db.dispose()
    assert first.failed == 0, "a lost connection is not the message's fault"
    assert first.processed + second.processed == 3
    assert statuses == ["processed"] * 3


def cut_connections_when(sink, received: int, db_url: str) -> threading.Thread:
    """In the background: once the sink has `received` messages, terminate every other
    connection to the database, as a restart of the server would."""
    from sqlalchemy import text

    from core.db import make_engine

    def cut() -> None:
        sink.wait_for(received, timeout=60)
        engine = make_engine(db_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        engine.dispose()

    thread = threading.Thread(target=cut)
    thread.start()
    return thread


@pytest.mark.postgres
def test_a_connection_lost_mid_batch_holds_no_email_back(pg_url: str, smtp_sink) -> None:
    from collections import Counter

    from core.db import Database
    from notifications.sender import send_pending
    from service.config import Config, SmtpConfig
    from tests.test_crash_recovery import queue_replies

    empty_postgres(pg_url)
    db = Database(pg_url)
    queue_replies(db, 150)
    config = Config(
        smtp=SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, timeout_seconds=5, batch_size=50)
    )
    cutter = cut_connections_when(smtp_sink, 5, pg_url)
    try:
        with pytest.raises(OperationalError):
            send_pending(db, config)
    finally:
        cutter.join(60)

    report = send_pending(db, config)  # at once, not after the claims' lease

    db.dispose()
    assert report.pending == 0 and report.error is None
    received = Counter(m.message()["Message-ID"] for m in smtp_sink.messages)
    assert len(received) == 150 and set(received.values()) == {1}


# --------------------------------------------------------------------------- the service


@pytest.fixture
def fresh_pg(pg_url: str) -> str:
    empty_postgres(pg_url)
    return pg_url


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_dovecot_stopped_mid_drain_and_started_again(fresh_pg: str, tmp_path: Path) -> None:
    with stack(tmp_path, fresh_pg, organisations_count=30) as s:
        report = faults.dovecot_restart(s, 60, outage=4, timeout=180)
    require_ok(report)
    error = report.status_during["mailboxes"][0]["last_error"]
    assert "Could not reach mailbox" in error or "Lost mailbox" in error
    assert report.log_lines, "the log should say the mailbox was unreachable"


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_smtp_server_refusing_for_a_while(fresh_pg: str, tmp_path: Path) -> None:
    """Four seconds of 421s. The rows they sent into backoff (a minute at least, tested in
    test_smtp_delivery.py) are then made due at once; bench/faults.py waits them out."""
    with stack(tmp_path, fresh_pg, organisations_count=30) as s:
        report = faults.smtp_refusing(s, 40, outage=4, timeout=240, skip_backoff=True)
    require_ok(report)
    assert "421" in report.status_during["outbox_last_error"]
    assert any("will retry at" in line for line in report.log_lines)


@pytest.mark.dovecot
@pytest.mark.slow
def test_postgres_restarted_mid_drain(tmp_path: Path) -> None:
    try:
        with running_cluster() as cluster:
            url = cluster.create_database("pcse")
            with stack(tmp_path, url, organisations_count=30) as s:
                report = faults.postgres_restart(s, cluster, 80, outage=2, timeout=240)
    except ClusterUnavailable as exc:
        pytest.skip(f"no private PostgreSQL cluster here: {exc}")
    require_ok(report)
    assert report.audit.failed == 0, "a database restart must not park messages as failed"


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_raw_store_disk_full(fresh_pg: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the raw store needs root")
    with stack(tmp_path, fresh_pg, organisations_count=30) as s:
        try:
            report = faults.disk_full(s, 80, outage=3, size_kb=300, timeout=180)
        except faults.FaultUnavailable as exc:
            pytest.skip(str(exc))
    require_ok(report)
    error = report.status_during["mailboxes"][0]["last_error"]
    assert "cannot take new mail" in error and "No space left" in error
