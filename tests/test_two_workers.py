"""Two workers on one PostgreSQL database and one mailbox never do anything twice.

The scheduler's jobs first: reminders and expiry run from two schedulers at the same
moment remind and expire each case once (workflow/reminders.py claims each with a
guarded UPDATE). Then two `pcse run` processes drain a mixed backlog from one Dovecot
mailbox, with reminders and expiry due within seconds and both schedulers running them
every second, and one of the two killed and restarted on the way: each message handled
once, each email sent once, each reminder and expiry done once. bench/workers.py runs
the same at a larger size and prints the throughput of one and of two workers.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.stack import stack
from bench.workers import FAST_CLOCK, drain
from core.clock import FixedClock
from core.db import Database
from core.states import CaseState
from core.timeutil import utcnow
from notifications.models import OutboxMessage
from tests.fixtures.databases import empty_postgres
from workflow.cases import create_case, move
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, CaseEvent
from workflow.reminders import run_due

CASES = 40


def waiting_cases(db: Database, now) -> None:
    """Half the cases wait on an approver, half on the requester, all long enough ago."""
    long_ago = now - timedelta(days=5)
    with db.transaction() as session:
        for n in range(CASES):
            case = create_case(
                session,
                kind="other",
                requester=f"r{n}@example.org",
                requester_name=f"R {n}",
                now=long_ago,
            )
            if n % 2:
                move(
                    session,
                    case,
                    CaseState.NEEDS_INFO,
                    actor="test",
                    reason="missing",
                    now=long_ago,
                )
                continue
            move(
                session,
                case,
                CaseState.AWAITING_APPROVAL,
                actor="test",
                reason="asked",
                now=long_ago,
            )
            session.add(
                ApprovalRequest(
                    case_id=case.id,
                    token=f"{n:020x}",
                    approver_email=f"a{n}@example.org",
                    approver_name=f"A {n}",
                    approver_source="signer",
                    created_at=long_ago,
                    expires_at=long_ago + timedelta(days=10),
                )
            )


def twice_at_once(db_url: str, env: WorkflowEnv) -> list[dict[str, int]]:
    """run_due in two threads with engines of their own, started at the same instant."""
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        db = Database(db_url)
        try:
            start.wait()
            results.append(run_due(db, env))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


@pytest.mark.postgres
def test_two_schedulers_remind_once(pg_url: str) -> None:
    empty_postgres(pg_url)
    now = utcnow()
    db = Database(pg_url)
    waiting_cases(db, now)
    env = WorkflowEnv(clock=FixedClock(now), max_replies_per_hour=10_000)

    results = twice_at_once(pg_url, env)

    assert sum(r["reminders"] for r in results) == CASES
    with db.transaction() as session:
        reminded = Counter(
            session.scalars(select(CaseEvent.case_id).where(CaseEvent.event == "reminder"))
        )
        purposes = Counter(session.scalars(select(OutboxMessage.purpose)))
    assert len(reminded) == CASES and set(reminded.values()) == {1}
    assert purposes == {"approval_reminder": CASES // 2, "requester_reminder": CASES // 2}
    db.dispose()


@pytest.mark.postgres
def test_two_schedulers_expire_once(pg_url: str) -> None:
    empty_postgres(pg_url)
    now = utcnow()
    db = Database(pg_url)
    waiting_cases(db, now)
    later = FixedClock(now + timedelta(days=20))
    env = WorkflowEnv(clock=later, max_replies_per_hour=10_000)

    results = twice_at_once(pg_url, env)

    assert sum(r["expired"] for r in results) == CASES
    with db.transaction() as session:
        expired = Counter(
            session.scalars(select(CaseEvent.case_id).where(CaseEvent.to_state == "expired"))
        )
        told = session.scalars(
            select(OutboxMessage.purpose).where(OutboxMessage.purpose == "outcome_expired")
        ).all()
    assert len(expired) == CASES and set(expired.values()) == {1}
    assert len(told) == CASES
    db.dispose()


@pytest.mark.dovecot
@pytest.mark.postgres
@pytest.mark.slow
def test_two_pcse_run_workers_share_one_mailbox(pg_url: str, tmp_path: Path) -> None:
    empty_postgres(pg_url)
    with stack(tmp_path, pg_url, organisations_count=30, **FAST_CLOCK) as s:
        report = drain(s, 2, 120, seed=4, timeout=300, settle=12, kill_second_after=4)

    assert (report.audit.lost, report.audit.duplicated_cases, report.audit.duplicated_emails) == (
        0,
        0,
        0,
    )
    assert report.audit.ok, report.audit.details()
    assert report.handled_twice == 0
    assert all(n > 0 for n in report.share), f"both workers should take a share: {report.share}"
    assert report.reminders > 0 and report.reminders_twice == 0
    assert report.expiries > 0 and report.expiries_twice == 0


@pytest.mark.dovecot
@pytest.mark.parametrize("step", ["stored", "committed"])
def test_two_pollers_on_one_folder_record_and_move_each_message_once(
    imap_account, database: Database, tmp_path: Path, step: str
) -> None:
    """The second poller runs whole while the first is paused after `step`: the ledger's
    unique (mailbox, UIDVALIDITY, UID) and the moves make the double fetch harmless."""
    from intake.models import InboundMessage
    from intake.pipeline import make_poller
    from service.config import Config, DatabaseConfig, StorageConfig
    from tests.fixtures.dovecot import plain_request

    box = imap_account.mailbox_config(batch_size=10)
    config = Config(
        database=DatabaseConfig(database.url),
        mailboxes=[box],
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
    )
    imap_account.append([plain_request(n) for n in range(25)])
    second_ran: list[int] = []

    def pause(name: str) -> None:
        if name == step and not second_ran:
            second_ran.append(make_poller(database, config, box).poll().fetched)

    first = make_poller(database, config, box, hook=pause).poll()

    assert first.error is None
    # Paused after its commit, the first poller's batch is known to the second, which
    # only moves it; paused before, the second records all 25 first.
    assert second_ran == [15 if step == "committed" else 25]
    with database.transaction() as session:
        rows = session.execute(select(InboundMessage.uid, InboundMessage.moved_at)).all()
    assert len(rows) == 25 and len({uid for uid, _ in rows}) == 25
    assert all(moved for _, moved in rows)
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 25
