"""The inbound ledger: one row per message taken from a mailbox, and what became of it.

Statuses: pending (stored, not yet processed), processed (handed to the workflow), ignored
(automatic replies, bounces, unrelated), duplicate, failed (parked for a caseworker, with
the error), dismissed (a caseworker closed it). Rows are claimed before processing, so two
workers never handle the same message.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core import workers
from core.addresses import parse_from
from core.db import rowcount
from core.errors import PcseError
from core.patterns import mask_tokens
from core.rowwrites import pending_may_wait, set_written
from core.timeutil import utcnow
from intake.charsets import storable, unsurrogate
from intake.mailparse import decode_header_text, message_id_of
from intake.models import InboundMessage

PENDING = "pending"
PROCESSED = "processed"
IGNORED = "ignored"
DUPLICATE = "duplicate"
FAILED = "failed"
DISMISSED = "dismissed"
STATUSES = (PENDING, PROCESSED, IGNORED, DUPLICATE, FAILED, DISMISSED)
# Rows a caseworker may put back in the queue, and rows a caseworker may close.
RETRYABLE = (FAILED, DISMISSED)
DISMISSABLE = (FAILED, PENDING)

# Rows for messages whose bytes could not be fetched carry the digest of no bytes.
UNREAD_SHA256 = hashlib.sha256(b"").hexdigest()
# Long enough for a claimed batch to be worked; a crashed worker's rows wait this long.
CLAIM_LEASE = timedelta(minutes=5)
_IN_CHUNK = 500


class LedgerError(PcseError):
    pass


@dataclass(frozen=True)
class HeaderFacts:
    message_id: str | None
    from_address: str | None  # the strict reading's one address (core.addresses)
    subject: str | None
    from_name: str | None = None
    sender_status: str | None = None  # "unverified" when From is not one clean mailbox
    body_sha256: str | None = None  # of the bytes after the header block


@dataclass(frozen=True)
class NewMessage:
    """A ledger row to insert for one fetched UID."""

    uid: int
    sha256: str
    size: int
    facts: HeaderFacts
    received_at: datetime
    error: str | None = None  # set when the message could not be read

    @property
    def unreadable(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class KnownUid:
    inbound_id: int
    unreadable: bool
    moved: bool


def _body_start(raw: bytes) -> int:
    """Where the body begins, as the email package's parser begins it: after the first
    empty line, or at the first line that is neither a header nor the continuation of one,
    whatever the line endings (CRLF, LF or CR alone); the end when there is none."""
    for line in _LINES.finditer(raw):
        if line.start() == len(raw):
            break
        content = line.group().rstrip(b"\r\n")
        if not content:
            return line.end()
        if not _HEADER_OR_FOLD.match(content):
            return line.start()
    return len(raw)


# As email.feedparser reads a header block: a line ends at CRLF, LF or CR; "Name:" opens a
# header, a space or tab continues one, and "From " opens an mbox envelope line.
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
_HEADER_OR_FOLD = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")


def _body_digest(body: bytes) -> str:
    # Routes differ in line endings and in what they add at the very end, never within.
    return hashlib.sha256(body.replace(b"\r\n", b"\n").rstrip()).hexdigest()


def header_facts(raw: bytes) -> HeaderFacts:
    """Message-ID, first From address and Subject, read from the header block only, and
    with a Message-ID the digest of the body (a copy by Message-ID has the same body)."""
    start = _body_start(raw)
    try:
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:start])
        message_id = message_id_of(msg.get("Message-ID"))
        sender = parse_from([unsurrogate(str(v)) for v in msg.get_all("From", [])])
        subject = mask_tokens(decode_header_text(str(msg.get("Subject", ""))))
    except Exception:  # facts are a convenience; processing reads properly
        return HeaderFacts(None, None, None)
    body = _body_digest(raw[start:]) if message_id else None
    # Every value as the database can store it, whatever the header held: one that could
    # not be stored would stop the poll for every message after it.
    return HeaderFacts(
        storable(message_id[:998]) if message_id else None,
        storable(sender.address) if sender.address else None,
        storable(subject[:300]) if subject else None,
        storable(sender.display_name) if sender.display_name else None,
        None if sender.parsed_cleanly else "unverified",
        body,
    )


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def insert_new(
    session: Session, mailbox: str, uidvalidity: int, messages: Sequence[NewMessage]
) -> None:
    """Insert rows; a UID another worker recorded first is left as it is."""
    if not messages:
        return
    rows = [
        {
            "mailbox": mailbox,
            "uidvalidity": uidvalidity,
            "uid": m.uid,
            "message_id": m.facts.message_id,
            "sha256": m.sha256,
            "body_sha256": m.facts.body_sha256,
            "size": m.size,
            "received_at": m.received_at,
            "from_address": m.facts.from_address,
            "from_name": m.facts.from_name,
            "sender_status": m.facts.sender_status,
            "subject": m.facts.subject,
            "status": FAILED if m.unreadable else PENDING,
            "error": m.error,
            "attempts": 0,
        }
        for m in messages
    ]
    stmt = _insert(session)(InboundMessage).on_conflict_do_nothing(
        index_elements=["mailbox", "uidvalidity", "uid"]
    )
    session.execute(stmt, rows)


def known_uids(
    session: Session, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, KnownUid]:
    found: dict[int, KnownUid] = {}
    for chunk in _chunks(list(uids)):
        rows = session.execute(
            select(
                InboundMessage.uid,
                InboundMessage.id,
                InboundMessage.sha256,
                InboundMessage.moved_at,
            ).where(
                InboundMessage.mailbox == mailbox,
                InboundMessage.uidvalidity == uidvalidity,
                InboundMessage.uid.in_(chunk),
            )
        )
        for uid, inbound_id, digest, moved_at in rows:
            found[uid] = KnownUid(inbound_id, digest == UNREAD_SHA256, moved_at is not None)
    return found


def has_unmoved_elsewhere(session: Session, mailbox: str, uidvalidity: int) -> bool:
    """Are there rows from another UIDVALIDITY whose message never left the inbox?"""
    return (
        session.scalar(
            select(InboundMessage.id)
            .where(
                InboundMessage.mailbox == mailbox,
                InboundMessage.uidvalidity != uidvalidity,
                InboundMessage.moved_at.is_(None),
            )
            .limit(1)
        )
        is not None
    )


def rekey_unmoved(
    session: Session, mailbox: str, uidvalidity: int, by_sha: dict[str, list[int]]
) -> set[int]:
    """After a UIDVALIDITY change, give unmoved rows of the old numbering their new UIDs.

    `by_sha` maps the digest of each newly fetched message to its new UIDs. A row from the
    old numbering with the same digest that never left the inbox is that same message:
    it keeps its row (and its processing) instead of being recorded a second time.
    Returns the new UIDs taken over this way.
    """
    taken: set[int] = set()
    if not by_sha:
        return taken
    rows = session.execute(
        select(InboundMessage.id, InboundMessage.sha256)
        .where(
            InboundMessage.mailbox == mailbox,
            InboundMessage.uidvalidity != uidvalidity,
            InboundMessage.moved_at.is_(None),
            InboundMessage.sha256.in_(list(by_sha)),
        )
        .order_by(InboundMessage.id)
    ).all()
    for inbound_id, digest in rows:
        free = [uid for uid in by_sha[digest] if uid not in taken]
        if not free:
            continue
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(uidvalidity=uidvalidity, uid=free[0])
        )
        taken.add(free[0])
    return taken


def mark_moved(
    session: Session,
    mailbox: str,
    uidvalidity: int,
    uids: Sequence[int],
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    for chunk in _chunks(list(uids)):
        session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.mailbox == mailbox,
                InboundMessage.uidvalidity == uidvalidity,
                InboundMessage.uid.in_(chunk),
                InboundMessage.moved_at.is_(None),
            )
            .values(moved_at=now)
        )


# --------------------------------------------------------------------------- claims


def _claimable(now: datetime):
    return and_(
        InboundMessage.status == PENDING,
        or_(InboundMessage.claimed_until.is_(None), InboundMessage.claimed_until < now),
    )


def claim_pending(
    session: Session, worker: str, limit: int, now: datetime | None = None
) -> list[int]:
    """Claim up to `limit` pending rows for `worker`, oldest first; safe with other workers.

    PostgreSQL skips rows another transaction holds (FOR UPDATE SKIP LOCKED); on SQLite the
    guarded UPDATE only takes rows still unclaimed when it runs. A row claimed before and
    not finished is claimed alone, and a batch ends before it.
    """
    now = now or utcnow()
    query = (
        select(InboundMessage.id, InboundMessage.attempts)
        .where(_claimable(now))
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = list(session.execute(query))
    if not found:
        return []
    before = next((n for n, row in enumerate(found) if row.attempts > 0), None)
    if before is not None:
        # A claim of it did not finish: the process may have died working this very
        # message, so it is worked alone, and a message that keeps killing its worker
        # takes none of the others with it; the rows before it make a batch of their own.
        found = found[: max(before, 1)]
    candidates = [row.id for row in found]
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id.in_(candidates), _claimable(now))
        .values(
            claimed_by=worker, claimed_until=now + CLAIM_LEASE, attempts=InboundMessage.attempts + 1
        )
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(InboundMessage.id)
            .where(
                InboundMessage.id.in_(candidates),
                InboundMessage.claimed_by == worker,
                InboundMessage.status == PENDING,
            )
            .order_by(InboundMessage.id)
        )
    )


def claimed_by(session: Session, worker: str) -> list[int]:
    """Pending rows `worker` holds a claim on."""
    return list(
        session.scalars(
            select(InboundMessage.id).where(
                InboundMessage.claimed_by == worker, InboundMessage.status == PENDING
            )
        )
    )


def upcoming(session: Session, after_id: int, limit: int) -> list[InboundMessage]:
    """The pending messages no one has claimed that come after `after_id`: most often
    those the next claim takes (it takes expired claims too, in order of id, and another
    worker may take them first); for reading ahead, where a wrong guess costs only work."""
    return list(session.scalars(_UPCOMING, {"after": after_id, "limit": limit}))


_UPCOMING = pending_may_wait(
    select(InboundMessage)
    .where(
        InboundMessage.status == PENDING,
        InboundMessage.claimed_by.is_(None),
        InboundMessage.id > bindparam("after"),
    )
    .order_by(InboundMessage.id)
    .limit(bindparam("limit"))
)


def others_at_work(session: Session, worker: str, window: int, now: datetime | None = None) -> bool:
    """Does another worker hold a live claim among the first `window` pending messages?
    Workers claim from the front of the queue, so one at work holds claims there."""
    found = session.execute(
        _OTHERS_AT_WORK, {"worker": worker, "now": now or utcnow(), "window": window}
    ).first()
    return found is not None


_FRONT = (
    select(InboundMessage.claimed_by, InboundMessage.claimed_until)
    .where(InboundMessage.status == PENDING)
    .order_by(InboundMessage.id)
    .limit(bindparam("window"))
    .subquery()
)
_OTHERS_AT_WORK = pending_may_wait(
    select(_FRONT.c.claimed_by)
    .where(
        _FRONT.c.claimed_by.is_not(None),
        _FRONT.c.claimed_by != bindparam("worker"),
        _FRONT.c.claimed_until > bindparam("now"),
    )
    .limit(1)
)


def release(session: Session, worker: str, ids: Sequence[int], *, unbegun: bool = False) -> None:
    """Give back claims not worked (the service is stopping). `unbegun`: no work on these
    rows was begun under this claim, so it does not count as a try (claim_pending works a
    row claimed before alone, and MOST_CLAIMS fails it at last)."""
    values: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
    if unbegun:
        values["attempts"] = case(
            (InboundMessage.attempts > 0, InboundMessage.attempts - 1), else_=0
        )
    for chunk in _chunks(list(ids)):
        session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.id.in_(chunk),
                InboundMessage.claimed_by == worker,
                InboundMessage.status == PENDING,
            )
            .values(values)
            .execution_options(synchronize_session=False)
        )


def release_abandoned(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Give back pending rows still claimed by workers on this host that have died.

    Without this, rows a killed worker had claimed wait out CLAIM_LEASE. Returns the
    number of rows released per dead worker.
    """
    now = now or utcnow()
    holders = session.scalars(
        select(InboundMessage.claimed_by)
        .distinct()
        .where(
            InboundMessage.status == PENDING,
            InboundMessage.claimed_by.is_not(None),
            InboundMessage.claimed_until >= now,
        )
    ).all()
    released: dict[str, int] = {}
    for holder in filter(None, holders):  # the query asks for claimed rows only
        if not workers.gone(holder):
            continue
        result = session.execute(
            update(InboundMessage)
            .where(InboundMessage.status == PENDING, InboundMessage.claimed_by == holder)
            .values(claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        released[holder] = rowcount(result)
    return released


def _storable(text: str | None) -> str | None:
    """Text any database accepts: PostgreSQL refuses NUL characters."""
    return text.replace("\x00", "") if text else text


_T = cast(Table, InboundMessage.__table__)
# Built once: this runs for every message, and Core statements skip the ORM's overhead.
_FINISH = pending_may_wait(
    update(_T)
    .where(
        _T.c.id == bindparam("b_id"),
        _T.c.claimed_by == bindparam("b_worker"),
        _T.c.status == PENDING,
    )
    .values(
        status=bindparam("b_status"),
        classification=bindparam("b_classification"),
        outcome=bindparam("b_outcome"),
        error=bindparam("b_error"),
        processed_at=bindparam("b_now"),
        claimed_by=None,
        claimed_until=None,
    )
)
# The sender's reading (intake.process) is written with the result, in the same UPDATE,
# and so is the case the message was linked to (see link_case).
SENDER_FACTS = ("from_address", "from_name", "sender_status", "sender_detail")
_FINISH_WITH_SENDER = _FINISH.values({name: bindparam(f"b_{name}") for name in SENDER_FACTS})
_FINISH_LINKED = _FINISH_WITH_SENDER.values(case_id=bindparam("b_case"))


def finish(
    session: Session,
    inbound_id: int,
    worker: str,
    *,
    status: str,
    classification: str | None,
    outcome: str | None,
    error: str | None = None,
    now: datetime | None = None,
    sender: dict[str, str | None] | None = None,
    case_id: int | None = None,
) -> bool:
    """Record the result for a row this worker holds; False when the claim was lost.

    `sender` holds SENDER_FACTS, the strict reading of From and the trust verdict;
    `case_id`, with `sender`, the case the message was linked to (None: leave it as it is).
    """
    session.flush()
    if case_id is not None and not sender:
        raise ValueError("a case link is written with the sender's facts, in one UPDATE")
    extra: dict[str, object] = {}
    statement = _FINISH
    if sender:
        extra = {f"b_{name}": sender.get(name) for name in SENDER_FACTS}
        statement = _FINISH_WITH_SENDER
    if case_id is not None:
        extra["b_case"] = case_id
        statement = _FINISH_LINKED
    result = session.connection().execute(
        statement,
        {
            **extra,
            "b_id": inbound_id,
            "b_worker": worker,
            "b_status": status,
            "b_classification": classification,
            "b_outcome": _storable(outcome),
            "b_error": _storable(error),
            "b_now": now or utcnow(),
        },
    )
    return rowcount(result) == 1


# session.info: set by a processor whose every message ends with `finish` or is rolled
# back; a case link is then written by `finish`, in the UPDATE that records the result.
RESULT_FOLLOWS = "intake.ledger.result_follows"


def link_case(session: Session, row: InboundMessage, case_id: int) -> None:
    """Show the message on its case.

    While messages are processed, the link is written with the message's result (one
    UPDATE for both, on every email's path); elsewhere it is written at once. Either way
    the statement is built once (the ORM's flush of the one changed column costs several
    times as much). Should the (sub)transaction roll back, the row reads its case afresh.
    """
    if not session.info.get(RESULT_FOLLOWS):
        session.connection().execute(_LINK_CASE, {"b_id": row.id, "b_case": case_id})
    set_written(session, row, {"case_id": case_id})


_LINK_CASE = pending_may_wait(
    update(_T).where(_T.c.id == bindparam("b_id")).values(case_id=bindparam("b_case"))
)


# --------------------------------------------------------------------------- caseworkers


def _get(session: Session, inbound_id: int) -> InboundMessage:
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise LedgerError(f"There is no inbound message {inbound_id}.")
    return row


def retry(session: Session, inbound_id: int, *, by: str) -> InboundMessage:
    """Put a failed or dismissed message back in the queue to be processed again."""
    row = _get(session, inbound_id)
    if row.status not in RETRYABLE:
        raise LedgerError(
            f"Inbound message {inbound_id} is {row.status}; only failed or dismissed "
            "messages can be retried."
        )
    note = f"Retried by {by} after: {row.error or row.outcome or row.status}"
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.status == row.status)
        .values(
            status=PENDING,
            error=None,
            outcome=note[:2000],
            claimed_by=None,
            claimed_until=None,
            processed_at=None,
            attempts=0,  # a fresh start: the tries before it are what was retried
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise LedgerError(f"Inbound message {inbound_id} changed meanwhile; look again.")
    session.refresh(row)
    return row


def dismiss(session: Session, inbound_id: int, *, by: str, reason: str) -> InboundMessage:
    """Close a failed or waiting message without processing it, saying why."""
    if not reason.strip():
        raise LedgerError("Say why the message is dismissed.")
    row = _get(session, inbound_id)
    now = utcnow()
    if row.status not in DISMISSABLE:
        raise LedgerError(
            f"Inbound message {inbound_id} is {row.status}; only failed or pending "
            "messages can be dismissed."
        )
    result = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == inbound_id,
            InboundMessage.status == row.status,
            or_(InboundMessage.claimed_until.is_(None), InboundMessage.claimed_until < now),
        )
        .values(
            status=DISMISSED,
            outcome=f"Dismissed by {by}: {reason.strip()}"[:2000],
            processed_at=now,
            claimed_by=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise LedgerError(
            f"Inbound message {inbound_id} is being processed right now; try again shortly."
        )
    session.refresh(row)
    return row


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
    )
    return {status: count for status, count in rows}
