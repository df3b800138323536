"""The workflow's side of the outbox (notifications.outbox).

The outbox renders and queues an email and returns the row it wrote; it knows a case
only as a `CaseMail`. Here the workflow says what the templates are told about a case,
works out the threading headers from the ledger and the outbox, and writes the case's
history: the emails the outbox would not send, and a caseworker's action on an email.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from core.db import Timestamp
from core.kinds import kind_title
from core.rowwrites import flush_pending, pending_may_wait
from core.senderauth import Status
from core.timeutil import as_utc, utcnow
from forms.normalise import name_problem
from intake.models import InboundMessage
from notifications import outbox
from notifications.headers import message_ids, references_chain
from notifications.models import OutboxMessage
from workflow.cases import OPENED, record
from workflow.directory import organisation_name_in
from workflow.models import Case


def organisation_name(session: Session, case: Case, *, echo: bool = True) -> str | None:
    """The directory's name for the case's organisation, else (with `echo`) the name read
    from the request."""
    if case.organisation_code:
        name = organisation_name_in(session, case.organisation_code)
        if name:
            return name
    read = (case.fields or {}).get("organisation_name") if echo else None
    return read if isinstance(read, str) and read.strip() else None


def case_context(
    session: Session, case: Case | None, *, echo: bool = True
) -> dict[str, Any] | None:
    """The `case` variable every template receives; without `echo`, nothing the sender wrote
    (their name, the organisation name they gave)."""
    if case is None:
        return None
    return {
        "ref": case.ref,
        "kind": case.kind,
        "kind_title": kind_title(case.kind),
        "organisation_code": case.organisation_code,
        "organisation_name": organisation_name(session, case, echo=echo),
        "requester": case.requester,
        "requester_name": case.requester_name if echo else None,
    }


def case_mail(session: Session, case: Case, *, echo: bool = True) -> outbox.CaseMail:
    context = case_context(session, case, echo=echo)
    assert context is not None
    return outbox.CaseMail(case.id, case.ref, case.source_message_id, context)


def enqueue(
    session: Session,
    env: outbox.MailSettings,
    *,
    purpose: str,
    to_address: str,
    to_name: str | None,
    context: dict[str, Any],
    case: Case | None = None,
    reply_to: InboundMessage | None = None,
    attachments: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
    echo: bool = True,
) -> OutboxMessage:
    """Queue one email (notifications.outbox.enqueue) in `session`, threaded under
    `reply_to`; an email that will not be sent as it is goes into the case's history.
    Without `echo` the email repeats nothing the sender wrote: not their name, nor the
    organisation name they gave (the caller leaves the rest out of `context`)."""
    in_reply_to, references = thread_headers(session, reply_to, case)
    if echo and case is not None and opened_unvouched(session, case):
        echo = False
    row = outbox.enqueue(
        session,
        env,
        purpose=purpose,
        to_address=to_address,
        # A display name the sender typed is written back only when it reads as a name: it
        # heads the email ("Dear Colleague. Action needed,") and names them in its To.
        to_name=to_name if echo and to_name and not name_problem(to_name) else None,
        context=context,
        case=case_mail(session, case, echo=echo) if case is not None else None,
        in_reply_to=in_reply_to,
        references=references,
        attachments=attachments,
        auto_submitted=auto_submitted,
    )
    if case is not None:
        session.info.setdefault(MAILED, []).append(case)
    if row.status != "pending" and case is not None:
        record(
            session,
            case,
            "message",
            f"Email '{purpose}' not sent: {row.last_error}",
            data={"outbox_id": row.id, "status": row.status},
            at=row.created_at,
        )
    return row


# The verdicts (core.senderauth.Status, as the ledger keeps them) on a sender nobody vouched
# for: their words are repeated to no one, and their request never reaches an approver
# without a person.
UNVOUCHED = frozenset({str(Status.NOT_AUTHENTICATED), str(Status.UNVERIFIED)})


def opened_unvouched(session: Session, case: Case) -> bool:
    """Was the case opened by a message the receiving server did not vouch for? Then no
    email on it repeats anything its sender wrote, to them or to anyone, then or later (a
    reminder, an expiry, a caseworker's answer, a merge): anyone can write any From. The
    opening message is in the session already wherever it has just been read."""
    if case.source_message_id is None:
        return False
    source = session.get(InboundMessage, case.source_message_id)
    return source is not None and source.sender_status in UNVOUCHED


def thread_headers(
    session: Session, reply_to: InboundMessage | None, case: Case | None
) -> tuple[str | None, str | None]:
    """In-Reply-To and References for a reply to `reply_to`.

    References are the answered message's own References when the ledger has them, or
    else the case's earlier messages (ours and theirs) in order, then its Message-ID.
    """
    if reply_to is None:
        return None, None
    parent_ids = message_ids(reply_to.message_id)
    if not parent_ids:
        return None, None
    parent = parent_ids[0]
    ancestors = message_ids(getattr(reply_to, "references", None))
    if not ancestors and case is not None and not _first_answer(session, case, reply_to):
        ancestors = case_thread(session, case, before=reply_to)
    return parent, references_chain(ancestors, parent)


# session.info key: the cases this session has queued an email on.
MAILED = "workflow.mail.mailed"


def _first_answer(session: Session, case: Case, reply_to: InboundMessage) -> bool:
    """Is this the first email on a case opened in this session by `reply_to`? Then the
    thread before it is empty, and is not looked up (this is every acknowledgement).
    It relies on every email about a case being queued through this module's `enqueue`,
    which notes the case in MAILED: an email queued with notifications.outbox.enqueue
    directly would be left out of the next email's References."""
    return (
        reply_to.id == case.source_message_id
        and any(opened is case for opened in session.info.get(OPENED, ()))
        and not any(mailed is case for mailed in session.info.get(MAILED, ()))
    )


def case_thread(session: Session, case: Case, *, before: InboundMessage) -> list[str]:
    """Message-IDs of the case's messages up to `before`, oldest first."""
    flush_pending(session)  # as the ORM would before a query: rows added, not yet written
    rows = session.connection().execute(
        _THREAD,
        {
            "case_id": case.id,
            "source_id": case.source_message_id,
            "before_id": before.id,
            "cutoff": before.received_at or utcnow(),
        },
    )
    ordered = sorted((as_utc(at), side, row_id, msgid) for at, side, row_id, msgid in rows)
    return [found for *_, msgid in ordered for found in message_ids(msgid)[:1]]


def _thread_query() -> CompoundSelect:
    """Both sides of a case's thread in one round trip; `side` orders what we received,
    at the same moment, before what we wrote in answer. Built once: it runs for every
    reply queued."""
    inbound, sent = InboundMessage.__table__.c, OutboxMessage.__table__.c
    cutoff = bindparam("cutoff", type_=Timestamp)
    received = select(
        inbound.received_at.label("at"), literal(0).label("side"), inbound.id, inbound.message_id
    ).where(
        (inbound.case_id == bindparam("case_id")) | (inbound.id == bindparam("source_id")),
        inbound.id != bindparam("before_id"),
        inbound.received_at <= cutoff,
    )
    written = select(sent.created_at, literal(1), sent.id, sent.message_id).where(
        sent.case_id == bindparam("case_id"),
        sent.created_at <= cutoff,
        sent.status.in_(("pending", "sending", "sent")),
    )
    return pending_may_wait(union_all(received, written))


_THREAD = _thread_query()


def retry(session: Session, outbox_id: int, *, by: str) -> OutboxMessage:
    """A caseworker sends a held, failed or unconfirmed email again (outbox.retry)."""
    return _noted(session, outbox.retry(session, outbox_id, by=by))


def dismiss(session: Session, outbox_id: int, *, by: str, reason: str) -> OutboxMessage:
    """A caseworker decides not to send an email (outbox.dismiss)."""
    return _noted(session, outbox.dismiss(session, outbox_id, by=by, reason=reason))


def accept_as_sent(session: Session, outbox_id: int, *, by: str, reason: str) -> OutboxMessage:
    """A caseworker leaves an unconfirmed email as sent (outbox.accept_as_sent)."""
    return _noted(session, outbox.accept_as_sent(session, outbox_id, by=by, reason=reason))


def _noted(session: Session, handled: outbox.Handled) -> OutboxMessage:
    """Write a caseworker's action on an email into its case's history."""
    row = handled.row
    if row.case_id is not None:
        case = session.get(Case, row.case_id)
        if case is not None:
            record(
                session,
                case,
                "message",
                handled.note,
                actor=handled.by,
                data={"outbox_id": row.id, "status": row.status},
            )
    return row
