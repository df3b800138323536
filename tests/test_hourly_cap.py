"""The hourly cap counted once for a batch's senders (notifications.hourly_cap), on SQLite and
PostgreSQL: the same answers as counting each address, in one statement."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from core.clock import FixedClock
from core.db import Database, begin_writing
from core.inbound import BATCH_SENDERS
from notifications.models import OutboxMessage
from service.schema import alembic_config
from tests.fixtures.databases import empty_postgres
from tests.test_outbox import START, ack, new_case
from workflow.env import WorkflowEnv
from workflow.models import Case

A, B, C, D = (f"{who}@riverside.nhs.net" for who in ("ann", "bob", "cat", "dan"))
SENDERS = frozenset({A, B, C})


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def env(clock: FixedClock) -> WorkflowEnv:
    return WorkflowEnv(clock=clock, max_replies_per_hour=5)


@contextmanager
def counting(database: Database) -> Iterator[list[str]]:
    """The cap's count statements sent meanwhile: one per address, or one for a batch."""
    sent: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "pcse_automatic_replies_since" in statement or "count(" in statement.lower():
            sent.append("each" if "_each" in statement or "GROUP BY" in statement else "one")

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(database.engine, "before_cursor_execute", note)


@contextmanager
def batch(database: Database, senders: frozenset[str] = SENDERS) -> Iterator[Session]:
    """A transaction as intake's batches open theirs, naming their senders."""
    with database.transaction() as session:
        begin_writing(session)
        session.info[BATCH_SENDERS] = senders
        yield session


def earlier_replies(database: Database, env: WorkflowEnv, **per_address: int) -> int:
    """Automatic replies already written to each address; the case they are on."""
    with database.transaction() as session:
        case = new_case(session)
        for address, n in per_address.items():
            for _ in range(n):
                ack(session, env, case, to_address=address)
        return case.id


def statuses(session: Session, env: WorkflowEnv, case: Case, *addresses: str) -> list[str]:
    return [ack(session, env, case, to_address=address).status for address in addresses]


def test_a_batch_counts_its_senders_once_and_keeps_to_the_cap(
    database: Database, env: WorkflowEnv
) -> None:
    case_id = earlier_replies(database, env, **{A: 5, B: 2})
    with counting(database) as sent, batch(database) as session:
        case = session.get(Case, case_id)
        got = statuses(session, env, case, A, B, B, B, B, C, D, D)
    # Ann had her five; Bob had two and gets three more; Cat none; Dan, not a sender of the
    # batch, is counted on his own each time.
    assert got == ["held", "pending", "pending", "pending", "held", "pending", "pending", "pending"]
    assert sent == ["each", "one", "one"]


def test_a_batch_counts_the_same_as_each_address_alone(
    database: Database, env: WorkflowEnv
) -> None:
    case_id = earlier_replies(database, env, **{A: 4, B: 1})
    order = (A, A, B, C, B, B, A, B, B, C)
    with batch(database, frozenset()) as session:
        alone = statuses(session, env, session.get(Case, case_id), *order)
        session.rollback()
    with batch(database) as session:
        together = statuses(session, env, session.get(Case, case_id), *order)
    assert together == alone
    assert alone.count("held") == 3


def test_a_reply_undone_with_its_savepoint_is_not_counted(
    database: Database, env: WorkflowEnv
) -> None:
    case_id = earlier_replies(database, env, **{A: 3})
    with counting(database) as sent, batch(database) as session:
        case = session.get(Case, case_id)
        assert statuses(session, env, case, B) == ["pending"]
        savepoint = session.begin_nested()
        assert statuses(session, env, case, A, A) == ["pending", "pending"]
        savepoint.rollback()
        # Counted afresh: the two undone are not there, so Ann may have two more.
        assert statuses(session, env, case, A, A, A) == ["pending", "pending", "held"]
    assert sent == ["each", "each"]


def test_a_clock_set_back_counts_afresh(
    database: Database, env: WorkflowEnv, clock: FixedClock
) -> None:
    case_id = earlier_replies(database, env, **{A: 5})  # at 09:00
    clock.advance(minutes=65)  # 10:05: those five are out of the hour
    with counting(database) as sent, batch(database) as session:
        case = session.get(Case, case_id)
        assert statuses(session, env, case, A) == ["pending"]
        clock.advance(minutes=-10)  # 09:55: they are in it again
        assert statuses(session, env, case, A) == ["held"]
    assert sent == ["each", "each"]


def test_outside_a_batch_each_address_is_counted_alone(
    database: Database, env: WorkflowEnv
) -> None:
    with counting(database) as sent, database.transaction() as session:
        statuses(session, env, new_case(session), A, B)
    assert sent == ["one", "one"]


@pytest.mark.postgres
def test_batches_racing_to_reply_to_their_senders_keep_to_the_cap(pg_url: str) -> None:
    """Each batch locks all its senders as it counts them, in address order: two batches
    naming the same senders in either order take turns, neither waiting on the other."""
    empty_postgres(pg_url)
    database = Database(pg_url)
    env = WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=5)
    try:
        with database.transaction() as session:
            case_id = new_case(session).id
        workers = 6
        barrier = threading.Barrier(workers)
        got: list[str] = []
        failures: list[BaseException] = []

        def reply(first: str, second: str) -> None:
            try:
                barrier.wait()
                with batch(database, frozenset({A, B})) as session:
                    case = session.get(Case, case_id)
                    mine = statuses(session, env, case, first)
                    time.sleep(0.1)  # the others count meanwhile
                    got.extend(mine + statuses(session, env, case, second))
            except BaseException as exc:  # raised again below, in the test
                failures.append(exc)

        threads = [
            threading.Thread(target=reply, args=(A, B) if n % 2 else (B, A)) for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures, failures
        assert sorted(got) == ["held"] * 2 + ["pending"] * 10
        with database.transaction() as session:
            pending = session.execute(
                text("SELECT to_address, count(*) FROM outbox WHERE status = 'pending' GROUP BY 1")
            ).all()
        assert dict(pending) == {A: 5, B: 5}
    finally:
        database.dispose()


@pytest.mark.postgres
def test_the_batch_count_goes_with_its_migration_and_comes_back(pg_url: str) -> None:
    empty_postgres(pg_url)
    database = Database(pg_url)
    env = WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=5)
    called = "SELECT to_regprocedure('pcse_automatic_replies_since_each(text[], timestamptz)')"
    try:
        case_id = earlier_replies(database, env, **{A: 5})
        command.downgrade(alembic_config(pg_url), "0009")
        try:
            with database.engine.begin() as conn:
                assert conn.execute(text(called)).scalar() is None
        finally:
            command.upgrade(alembic_config(pg_url), "head")
        with batch(database) as session:
            assert statuses(session, env, session.get(Case, case_id), A, B) == ["held", "pending"]
            assert session.query(OutboxMessage).count() == 7
    finally:
        database.dispose()
