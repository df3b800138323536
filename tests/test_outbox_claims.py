"""The per-message record of a hand-over (claims.mark_handed_over), on both databases.

It is one UPDATE on a connection in autocommit: these tests check that it is committed
when the call returns (another connection sees it), that it changes only the two rows
it names and only while they are the sender's, and what it does to each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from core.db import Database
from core.timeutil import as_utc
from notifications import claims
from notifications.models import OutboxMessage
from notifications.samples import SAMPLE_CONTEXTS
from workflow.cases import create_case
from workflow.env import WorkflowEnv
from workflow.mail import enqueue
from workflow.models import Organisation

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
WORKER = "host:1:aaaa"


def queue(database: Database, n: int) -> list[int]:
    env = WorkflowEnv(max_replies_per_hour=1000)
    with database.transaction() as session:
        session.add(
            Organisation(code="A81001", name="Riverside", type="gp_practice", icb_code="QHM")
        )
        case = create_case(
            session,
            kind="gpp_admin_form",
            requester="pat@example.org",
            requester_name="Pat",
            organisation_code="A81001",
        )
        rows = [
            enqueue(
                session,
                env,
                purpose="acknowledgement",
                to_address=f"p{i}@example.org",
                to_name=None,
                context=SAMPLE_CONTEXTS["acknowledgement"],
                case=case,
            )
            for i in range(n)
        ]
        return [row.id for row in rows]


def state(database: Database, row_id: int) -> tuple:
    """What another connection sees of a row."""
    with database.transaction() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        sent_at = as_utc(row.sent_at) if row.sent_at else None
        return row.status, row.claimed_by, row.attempts, row.last_error, sent_at


def claim_all(database: Database, n: int) -> list[int]:
    queue(database, n)
    claimed = claims.claim_due(
        database, worker=WORKER, now=datetime.now(UTC), limit=n, lease=timedelta(minutes=10)
    )
    return [row.id for row in claimed]


def test_a_hand_over_is_committed_when_it_returns_and_confirms_the_one_before(
    database: Database,
) -> None:
    first, second = claim_all(database, 2)
    conn = claims.keep_for_hand_overs(database)
    try:
        handed = claims.mark_handed_over(conn, first, worker=WORKER, now=NOW, confirm=None)
        assert handed == (True, False)
        # Seen from another connection at once: sent, the claim kept, no attempt counted.
        assert state(database, first) == ("sent", WORKER, 0, None, NOW)

        handed = claims.mark_handed_over(conn, second, worker=WORKER, now=LATER, confirm=first)
        assert handed == (True, True)
        # The one before: its claim cleared, its attempt counted, its time of sending kept.
        assert state(database, first) == ("sent", None, 1, None, NOW)
        assert state(database, second) == ("sent", WORKER, 0, None, LATER)
    finally:
        conn.close()


def test_rows_that_are_not_the_senders_are_left_alone(database: Database) -> None:
    taken, pending, mine = claim_all(database, 3)
    with database.transaction() as session:
        # One taken over by another sender (this one outlived its lease), one given back.
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == taken).values(claimed_by="other")
        )
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == pending)
            .values(status="pending", claimed_by=None)
        )
    before = {row_id: state(database, row_id) for row_id in (taken, pending)}
    conn = claims.keep_for_hand_overs(database)
    try:
        assert claims.mark_handed_over(conn, taken, worker=WORKER, now=NOW, confirm=None) == (
            False,
            False,
        )
        assert claims.mark_handed_over(conn, pending, worker=WORKER, now=NOW, confirm=taken) == (
            False,
            False,
        )
        # The sender's own row goes ahead; the one it would confirm is not its own.
        assert claims.mark_handed_over(conn, mine, worker=WORKER, now=NOW, confirm=taken) == (
            True,
            False,
        )
    finally:
        conn.close()
    assert {row_id: state(database, row_id) for row_id in (taken, pending)} == before
    with database.transaction() as session:
        statuses = dict(session.execute(select(OutboxMessage.id, OutboxMessage.status)).all())
    assert statuses == {taken: "sending", pending: "pending", mine: "sent"}
