"""The hourly cap's count: automatic emails to a mailbox in the hour before now.

Before an automatic email is queued, notifications.outbox counts those written to the same
mailbox in the last hour, not held or dismissed. A mailbox is what `cap_key` makes of an
address: jane+1@example.org and jane+2@example.org reach one mailbox, and so do
j.ane@gmail.com and jane@googlemail.com, so writing from each by turns would otherwise get
a reply from each. The row keeps the exact address; only the count goes by the key, which
each row keeps beside it (`outbox.cap_key`, written by notifications.outbox.enqueue, read
with created_at from one index: migration 0012), so a count costs the same whatever the
hour's mail. The count and the INSERT that follows are taken
in turns with the other transactions replying to that mailbox: on PostgreSQL under a
transaction-level lock per key (`pcse_automatic_replies_since`, migrations 0009 and 0011);
on SQLite under the database's write lock.

A batch of intake answers about one sender a message, most of them strangers, so counting
each mailbox on its own cost a statement (on PostgreSQL a round trip and a lock) for every
reply. Intake names the batch's senders in its transaction (`core.inbound.BATCH_SENDERS`);
the first count asked for one of them counts all their mailboxes in one statement, under
the same locks (`pcse_automatic_replies_since_each`, migrations 0010 and 0011, taking them
in key order), and each email this transaction then queues to one of them adds one to what
it holds. What it holds is forgotten when the transaction or a savepoint in it ends,
whether committed or rolled back, and the count is taken afresh.

It cannot count too few: no other transaction can write to these mailboxes while the
locks are held, every automatic row goes through `counted`, and a count from a little
earlier covers a window that starts a little earlier, so it can only count more.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Integer, String, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core.addresses import mailbox_key
from core.db import Timestamp, holds_write_lock, is_postgres
from core.inbound import BATCH_SENDERS
from core.rowwrites import pending_may_wait
from notifications.models import OutboxMessage

# session.info key: the counts taken for the batch's senders (_Counted).
_COUNTED = "notifications.hourly_cap.counted"


# Gmail ignores dots in the local part and delivers googlemail.com to gmail.com.
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


@dataclass
class _Counted:
    since: datetime  # the start of the hour they were counted over
    counts: dict[str, int] = field(default_factory=dict)  # every batch sender's key, 0 too


@lru_cache(maxsize=4096)  # asked for each batch sender with every reply the batch queues
def cap_key(address: str) -> str:
    """The mailbox `address` reaches, as the cap counts it: lower case, no "+tag", the
    domain in IDNA form, and for Gmail no dots and gmail.com."""
    local, _, domain = mailbox_key(address).rpartition("@")
    if not domain.isascii():
        with suppress(UnicodeError):  # no such domain: the key is still this mailbox's alone
            domain = domain.encode("idna").decode("ascii")
    if domain in GMAIL_DOMAINS:
        return f"{local.replace('.', '')}@gmail.com"
    return f"{local}@{domain}"


def replies_last_hour(session: Session, address: str, now: datetime) -> int:
    """Automatic emails to the mailbox of `address` written in the hour before `now`, not
    held or dismissed; the caller writes its own row in the same transaction."""
    since = now - timedelta(hours=1)
    key = cap_key(address)
    held = _held_count(session, key, since)
    if held is not None:
        return held
    conn = session.connection()
    if is_postgres(session):
        return conn.execute(_SINCE_POSTGRESQL, {"key": key, "since": since}).scalar_one()
    _hold_write_lock(session)
    return conn.execute(_SINCE, {"key": key, "since": since}).scalar() or 0


def counted(session: Session, address: str) -> None:
    """An automatic email to `address` was queued in this transaction (status pending)."""
    held: _Counted | None = session.info.get(_COUNTED)
    key = cap_key(address)
    if held is not None and key in held.counts:
        held.counts[key] += 1


def _held_count(session: Session, key: str, since: datetime) -> int | None:
    """The count this transaction holds for a batch sender's mailbox, counting them all
    first if it holds none yet; None for a key that is not one of the batch's senders'."""
    senders: frozenset[str] = session.info.get(BATCH_SENDERS, frozenset())
    keys = {cap_key(sender) for sender in senders}
    if key not in keys:
        return None
    held: _Counted | None = session.info.get(_COUNTED)
    # A clock set back would leave out rows written since the held count's hour began.
    if held is None or since < held.since:
        held = _count_each(session, sorted(keys), since)
        session.info[_COUNTED] = held
    return held.counts[key]


def _count_each(session: Session, keys: list[str], since: datetime) -> _Counted:
    conn = session.connection()
    if is_postgres(session):
        rows = conn.execute(_EACH_SINCE_POSTGRESQL, {"keys": keys, "since": since})
    else:
        _hold_write_lock(session)
        rows = conn.execute(_EACH_SINCE, {"keys": keys, "since": since})
    found = dict.fromkeys(keys, 0)
    found.update((key, int(n)) for key, n in rows)
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
            bindparam("key", type_=String), bindparam("since", type_=Timestamp), type_=Integer
        )
    )
)
_EACH = func.pcse_automatic_replies_since_each(
    bindparam("keys", type_=ARRAY(String)), bindparam("since", type_=Timestamp)
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
    select(func.count()).select_from(_T).where(*_COUNTS, _T.c.cap_key == bindparam("key"))
)
_EACH_SINCE = pending_may_wait(
    select(_T.c.cap_key, func.count())
    .where(*_COUNTS, _T.c.cap_key.in_(bindparam("keys", expanding=True)))
    .group_by(_T.c.cap_key)
)
