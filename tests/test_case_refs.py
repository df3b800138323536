"""Case references on PostgreSQL: taken like a sequence's numbers, never held by a batch.

A worker's transaction (a batch of messages) that has opened a case does not make another
worker wait for its own next reference; a transaction that rolls back leaves a gap, and
no number is ever given twice.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.db import Database
from tests.fixtures.databases import empty_postgres
from workflow.cases import create_case

pytestmark = pytest.mark.postgres


def open_case(session, n: int) -> str:
    case = create_case(session, kind="gpp_admin_form", requester=f"r{n}@example.org")
    return case.ref


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
        assert held != meanwhile
        assert {held[-6:], meanwhile[-6:]} == {"000001", "000002"}
    finally:
        first.dispose()
        second.dispose()


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
