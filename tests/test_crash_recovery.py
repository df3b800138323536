"""Crash recovery: a worker killed outright loses nothing and leaves nothing done twice.

The first tests kill a real process that holds claims (inbound messages, outbox rows) and
check that the next worker takes them back at once instead of waiting out the lease. The
last one is a short run of bench/crash.py: `pcse run` on PostgreSQL, killed with SIGKILL
at random moments while it drains a mixed backlog from Dovecot, then audited.
"""

from __future__ import annotations

import mailbox
import os
import random
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.workers import this_host, worker_id
from intake.models import InboundMessage
from intake.pipeline import poll_all, process_pending
from notifications.claims import UNCONFIRMED
from notifications.models import OutboxMessage
from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
from tests.fixtures.dovecot import opening_handler, plain_request

ROOT = Path(__file__).resolve().parents[1]


def maildir_config(db: Database, tmp_path: Path) -> Config:
    box = MailboxConfig(name="enquiries", maildir=str(tmp_path / "inbox"))
    return Config(
        database=DatabaseConfig(db.url),
        mailboxes=[box],
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
    )


def deliver(config: Config, messages: list[bytes]) -> None:
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    for data in messages:
        box.add(mailbox.MaildirMessage(data))
    box.close()


def claims(db: Database) -> list[tuple[str, str | None]]:
    with db.transaction() as session:
        return list(
            session.execute(
                select(InboundMessage.status, InboundMessage.claimed_by).order_by(InboundMessage.id)
            ).all()
        )


CLAIM_AND_HANG = textwrap.dedent("""
    import sys, time
    from intake import ledger
    from core.db import Database
    from core.workers import worker_id
    db = Database(sys.argv[1])
    with db.transaction() as session:
        claimed = ledger.claim_pending(session, worker_id(), 100)
    print(len(claimed), flush=True)
    time.sleep(600)
""")


def claimed_by_a_killed_process(db: Database) -> int:
    """A real worker process claims every pending row, then dies by SIGKILL."""
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, db.url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        claimed = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    return claimed


def test_messages_claimed_by_a_killed_worker_are_taken_back_at_once(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, [plain_request(n) for n in range(6)])
    poll_all(database, config)
    assert claimed_by_a_killed_process(database) == 6
    assert all(status == "pending" and holder for status, holder in claims(database))

    report = process_pending(database, config, opening_handler)

    assert report.processed == 6
    assert all(status == "processed" and holder is None for status, holder in claims(database))


def test_claims_of_a_live_worker_are_left_alone(database: Database, tmp_path: Path) -> None:
    from intake import ledger

    config = maildir_config(database, tmp_path)
    deliver(config, [plain_request(n) for n in range(3)])
    poll_all(database, config)
    alive = worker_id()  # this very process: alive
    with database.transaction() as session:
        assert len(ledger.claim_pending(session, alive, 10)) == 3

    report = process_pending(database, config, opening_handler)

    assert report.total == 0
    assert claims(database) == [("pending", alive)] * 3


def test_a_claim_from_another_host_waits_for_its_lease(database: Database, tmp_path: Path) -> None:
    from intake import ledger

    config = maildir_config(database, tmp_path)
    deliver(config, [plain_request(1)])
    poll_all(database, config)
    elsewhere = "some-other-host:1:abcdef12"
    with database.transaction() as session:
        ledger.claim_pending(session, elsewhere, 10)

    assert process_pending(database, config, opening_handler).total == 0
    assert claims(database) == [("pending", elsewhere)]


# --------------------------------------------------------------------------- the outbox


SEND_THEN_DIE = textwrap.dedent("""
    import sys
    from notifications.sender import send_pending
    from service.config import Config, SmtpConfig
    from core.db import Database
    config = Config(smtp=SmtpConfig(host="127.0.0.1", port=int(sys.argv[2]), timeout_seconds=5,
                                    batch_size=25))
    send_pending(Database(sys.argv[1]), config)
""")


def queue_replies(database: Database, count: int) -> None:
    from notifications.samples import SAMPLE_CONTEXTS
    from workflow.cases import create_case
    from workflow.env import WorkflowEnv
    from workflow.mail import enqueue

    env = WorkflowEnv(max_replies_per_hour=10_000)
    with database.transaction() as session:
        case = create_case(session, kind="other", requester="pat@example.org")
        for n in range(count):
            enqueue(
                session,
                env,
                purpose="acknowledgement",
                to_address=f"p{n}@example.org",
                to_name=f"Person {n}",
                context=SAMPLE_CONTEXTS["acknowledgement"],
                case=case,
            )


def test_a_sender_killed_mid_batch_sends_no_email_twice(database: Database, smtp_sink) -> None:
    from collections import Counter

    from core.clock import FixedClock
    from notifications.sender import LEASE, send_pending
    from service.config import Config, SmtpConfig

    queue_replies(database, 40)
    child = subprocess.Popen(
        [sys.executable, "-c", SEND_THEN_DIE, database.url, str(smtp_sink.port)], cwd=ROOT
    )
    try:
        assert len(smtp_sink.wait_for(3, timeout=30)) >= 3
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    config = Config(smtp=SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, timeout_seconds=5))

    # At once (no lease to wait out), the dead sender's claims come back and go out.
    report = send_pending(database, config)
    assert report.pending == 0
    # Long after its lease would have run out, nothing is left to send again.
    later = FixedClock(datetime.now(UTC) + LEASE + timedelta(minutes=1))
    assert send_pending(database, config, clock=later).sent == 0

    received = Counter(m.message()["Message-ID"] for m in smtp_sink.messages)
    assert set(received.values()) == {1}, "an email reached the server twice"
    # At most the one handed over in the instant of the kill is recorded as sent without
    # having reached the server, and that one is flagged for a person to see.
    with database.transaction() as session:
        sent = session.execute(
            select(OutboxMessage.message_id, OutboxMessage.last_error).where(
                OutboxMessage.status == "sent"
            )
        ).all()
    assert len(sent) == 40
    missing = [error for message_id, error in sent if message_id not in received]
    assert len(missing) <= 1 and all(error == UNCONFIRMED for error in missing)


def test_an_email_handed_over_by_a_killed_sender_is_flagged_not_resent(
    database: Database, smtp_sink
) -> None:
    from notifications.sender import send_pending
    from service.cmd_poll import status_document
    from service.config import Config, SmtpConfig

    queue_replies(database, 3)
    dead = f"{this_host()}:{dead_pid()}:abcdef12"
    with database.transaction() as session:
        first = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).first()
        first.status, first.claimed_by = "sent", dead  # handed over, answer never read
    config = Config(smtp=SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, timeout_seconds=5))

    assert send_pending(database, config).sent == 2

    with database.transaction() as session:
        row = session.get(OutboxMessage, first.id)
        assert (row.status, row.claimed_by, row.last_error) == ("sent", None, UNCONFIRMED)
        assert status_document(session, config)["outbox_unconfirmed"] == 1
    assert len(smtp_sink.messages) == 2


def dead_pid() -> int:
    """The pid of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- pcse run, killed


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_pcse_run_killed_at_random_loses_nothing_and_does_nothing_twice(
    pg_url: str, tmp_path: Path
) -> None:
    from bench.crash import kill_repeatedly, start_and_wait
    from bench.mailmix import build
    from bench.stack import stack
    from tests.fixtures.databases import empty_postgres

    empty_postgres(pg_url)
    with stack(tmp_path, pg_url, organisations_count=40) as s:
        backlog = build(360, seed=3)  # batches of 20: enough for each kill to land in work
        s.deliver(backlog)
        kills = kill_repeatedly(s, 8, random.Random(3), 0.3, 30, say=lambda _: None, share=12)
        last = s.service("pcse-run-final")
        start_and_wait(last)
        s.wait_done(120, run=last)
        assert last.stop() == 0
        result = s.audit()

    assert kills >= 5, "most kills should land while there is work in hand"
    assert (result.lost, result.duplicated_cases, result.duplicated_emails) == (0, 0, 0)
    assert result.ok, result.details()
    assert result.ledger_rows == 360
    assert result.cases > 0 and result.emails > 0
