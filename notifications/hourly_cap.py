"""The hourly cap's count: automatic emails to an address in the hour before now.

Before an automatic email is queued, notifications.outbox counts those written to the same
address in the last hour, not held or dismissed. The count and the INSERT that follows are
taken in turns with the other transactions replying to that address: on PostgreSQL under a
transaction-level lock per address (`pcse_automatic_replies_since`, migration 0009); on
SQLite under the database's write lock.

A batch of intake answers about one sender a message, most of them strangers, so counting
each address on its own cost a statement (on PostgreSQL a round trip and a lock) for every
reply. Intake names the batch's senders in its transaction (`core.inbound.BATCH_SENDERS`);
the first count asked for one of them counts them all in one statement, under the same
locks (`pcse_automatic_replies_since_each`, migration 0010, taking them in address order),
and each email this transaction then queues to one of them adds one to what it holds. What
it holds is forgotten when the transaction or a savepoint in it ends, whether committed or
rolled back, and the count is taken afresh.

It cannot count too few: no other transaction can write to these addresses while the
locks are held, every automatic row goes through `counted`, and a count from a little
earlier covers a window that starts a little earlier, so it can only count more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core.db import Timestamp, holds_write_lock, is_postgres
from core.inbound import BATCH_SENDERS
from core.rowwrites import pending_may_wait
from notifications.models import OutboxMessage

# session.info key: the counts taken for the batch's senders (_Counted).
_COUNTED = "notifications.hourly_cap.counted"


@dataclass
class _Counted:
    since: datetime  # the start of the hour they were counted over
    counts: dict[str, int] = field(default_factory=dict)  # every batch sender, 0 included


def replies_last_hour(session: Session, address: str, now: datetime) -> int:
    """Automatic emails to `address` written in the hour before `now`, not held or
    dismissed; the caller writes its own row in the same transaction."""
    since = now - timedelta(hours=1)
    held = _held_count(session, address, since)
    if held is not None:
        return held
    conn = session.connection()
    if is_postgres(session):
        return conn.execute(_SINCE_POSTGRESQL, {"address": address, "since": since}).scalar_one()
    _hold_write_lock(session)
    return conn.execute(_SINCE, {"address": address, "since": since}).scalar() or 0


def counted(session: Session, address: str) -> None:
    """An automatic email to `address` was queued in this transaction (status pending)."""
    held: _Counted | None = session.info.get(_COUNTED)
    if held is not None and address in held.counts:
        held.counts[address] += 1


def _held_count(session: Session, address: str, since: datetime) -> int | None:
    """The count this transaction holds for a batch sender, counting them all first if it
    holds none yet; None for an address that is not one of the batch's senders."""
    senders: frozenset[str] = session.info.get(BATCH_SENDERS, frozenset())
    if address not in senders:
        return None
    held: _Counted | None = session.info.get(_COUNTED)
    # A clock set back would leave out rows written since the held count's hour began.
    if held is None or since < held.since:
        held = _count_each(session, sorted(senders), since)
        session.info[_COUNTED] = held
    return held.counts[address]


def _count_each(session: Session, addresses: list[str], since: datetime) -> _Counted:
    conn = session.connection()
    if is_postgres(session):
        rows = conn.execute(_EACH_SINCE_POSTGRESQL, {"addresses": addresses, "since": since})
    else:
        _hold_write_lock(session)
        rows = conn.execute(_EACH_SINCE, {"addresses": addresses, "since": since})
    found = dict.fromkeys(addresses, 0)
    found.update((address, int(n)) for address, n in rows)
    return _Counted(since, found)


def _hold_write_lock(session: Session) -> None:
    # SQLite's driver would take the write lock only at the INSERT, after a count made
    # outside any transaction; intake's batches took it as they began.
    if not holds_write_lock(session):
        session.connection().execute(_WRITE_LOCK_SQLITE)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_: object) -> None:
    # after_commit also fires as a savepoint is released: the next count is taken afresh.
    session.info.pop(_COUNTED, None)


# Built once: these run for every automatic email queued, or once a batch.
_SINCE_POSTGRESQL = pending_may_wait(
    select(
        func.pcse_automatic_replies_since(
            bindparam("address", type_=String), bindparam("since", type_=Timestamp), type_=Integer
        )
    )
)
_EACH = func.pcse_automatic_replies_since_each(
    bindparam("addresses", type_=ARRAY(String)), bindparam("since", type_=Timestamp)
).table_valued("address", "found")
_EACH_SINCE_POSTGRESQL = pending_may_wait(select(_EACH.c.address, _EACH.c.found))
# A write that changes nothing still begins the transaction and takes the write lock.
_WRITE_LOCK_SQLITE = pending_may_wait(text("UPDATE outbox SET id = id WHERE 0"))
_T = OutboxMessage.__table__
_COUNTS = (
    _T.c.created_at > bindparam("since"),
    _T.c.auto_submitted != "no",
    _T.c.status.not_in(("held", "dismissed")),
)
_SINCE = pending_may_wait(
    select(func.count()).select_from(_T).where(_T.c.to_address == bindparam("address"), *_COUNTS)
)
_EACH_SINCE = pending_may_wait(
    select(_T.c.to_address, func.count())
    .where(_T.c.to_address.in_(bindparam("addresses", expanding=True)), *_COUNTS)
    .group_by(_T.c.to_address)
)
