"""Case references: never given twice, never held by a batch.

On PostgreSQL each number is taken in a short transaction of its own, like a sequence's:
a worker's transaction (a batch of messages) that has opened a case does not make another
worker wait for its own next reference; a transaction that rolls back leaves a gap. On
SQLite the counter is raised once per transaction and its last value written at commit.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from core.db import Database
from tests.fixtures.databases import empty_postgres
from workflow.cases import create_case
from workflow.models import RefCounter


def open_case(session, n: int) -> str:
    case = create_case(session, kind="gpp_admin_form", requester=f"r{n}@example.org")
    return case.ref


@pytest.mark.postgres
def test_a_transaction_holding_a_new_case_does_not_hold_up_the_next_reference(
    pg_url: str,
) -> None:
    empty_postgres(pg_url)
    first, second = Database(pg_url), Database(pg_url)  # two workers
    try:
        with first.transaction() as batch:
            held = open_case(batch, 1)  # the batch goes on; its transaction stays open
            with second.transaction() as other:
                # Waiting for the first transaction's row lock would fail at once.
                other.execute(text("SET LOCAL lock_timeout = '1s'"))
                meanwhile = open_case(other, 2)
        assert {held[-6:], meanwhile[-6:]} == {"000001", "000002"}
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.postgres
def test_a_rolled_back_case_leaves_a_gap_and_no_number_twice(pg_url: str) -> None:
    empty_postgres(pg_url)
    db = Database(pg_url)
    try:
        with pytest.raises(RuntimeError), db.transaction() as session:
            open_case(session, 1)
            raise RuntimeError("the message failed")
        with db.transaction() as session:
            kept = [open_case(session, n) for n in (2, 3)]
    finally:
        db.dispose()
    assert [ref[-6:] for ref in kept] == ["000002", "000003"]


@pytest.mark.postgres
def test_two_workers_taking_turns_never_share_a_number(pg_url: str) -> None:
    empty_postgres(pg_url)
    workers = [Database(pg_url), Database(pg_url)]
    try:
        refs = []
        for n in range(30):
            with workers[n % 2].transaction() as session:
                refs.append(open_case(session, n))
    finally:
        for db in workers:
            db.dispose()
    assert len(set(refs)) == len(refs)
    assert [int(ref[-6:]) for ref in refs] == list(range(1, 31))


def counter(db: Database) -> int | None:
    with db.transaction() as session:
        return session.scalar(select(RefCounter.last))


def test_sqlite_counts_in_the_transaction_and_writes_the_last_number(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    with db.transaction() as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")  # as intake's batches do
        # The year's first case, in a savepoint that rolls back with the counter's row.
        with pytest.raises(RuntimeError), session.begin_nested():
            open_case(session, 1)
            raise RuntimeError("this message failed")
        kept = [open_case(session, n) for n in (2, 3, 4)]
        assert counter_in(session) is None  # written only as the transaction commits
    assert [ref[-6:] for ref in kept] == ["000002", "000003", "000004"]
    assert counter(db) == 4
    with pytest.raises(RuntimeError), db.transaction() as session:
        open_case(session, 5)
        raise RuntimeError("the whole batch failed")
    assert counter(db) == 4
    with db.transaction() as session:
        assert open_case(session, 6)[-6:] == "000005"  # a rolled-back transaction's number
    assert counter(db) == 5


def counter_in(session) -> int | None:
    return session.connection().exec_driver_sql("SELECT last FROM ref_counters").scalar()


@pytest.mark.postgres
def test_a_counter_set_back_under_a_running_worker_never_gives_a_number_twice(
    pg_url: str,
) -> None:
    """As a restore, or a test resetting its database, would: nothing held in memory."""
    empty_postgres(pg_url)
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            first = open_case(session, 1)
        empty_postgres(pg_url)
        with db.transaction() as session:
            again = [open_case(session, n) for n in (2, 3)]
    finally:
        db.dispose()
    assert first[-6:] == "000001" and [ref[-6:] for ref in again] == ["000001", "000002"]
