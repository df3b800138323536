"""The outbox: replies written in the caller's transaction, sent later by the sender.

`enqueue` renders the purpose's templates and adds one row to the caller's session
without committing, so the reply exists if and only if the change that caused it does.
Loop and flood protection are decided here, once, when the row is written:

- never to one of our own addresses (the row is kept, dismissed, with the reason);
- an address that is not one plain valid address is never handed to SMTP (failed);
- more than `max_replies_per_hour` automatic replies to one address in an hour: the
  extra rows are `held` for a caseworker, who may `retry` (send) or `dismiss` them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from notifications.case_context import case_context
from notifications.claims import is_unconfirmed, unconfirmed_clause
from notifications.headers import (
    clean_address,
    is_own_address,
    message_ids,
    new_message_id,
    one_line,
    references_chain,
    with_case_ref,
)
from notifications.purposes import check_context
from notifications.rendering import render, site_context
from workflow.cases import record
from workflow.db import is_postgres
from workflow.env import WorkflowEnv
from workflow.errors import PcseError
from workflow.models import Case, InboundMessage, OutboxMessage, utcnow

log = logging.getLogger(__name__)

AUTO_SUBMITTED_VALUES = ("auto-replied", "auto-generated", "no")
STATUSES = ("pending", "sending", "sent", "failed", "held", "dismissed")
# Rows a caseworker may send again, and rows a caseworker may drop. A sent row whose
# delivery is unconfirmed (notifications.claims.is_unconfirmed) may be sent again too.
RETRYABLE = ("failed", "held")
DISMISSABLE = ("pending", "failed", "held")


def retryable(status: str, last_error: str | None) -> bool:
    return status in RETRYABLE or is_unconfirmed(status, last_error)


def _retryable_clause() -> ColumnElement[bool]:
    return or_(OutboxMessage.status.in_(RETRYABLE), unconfirmed_clause())


class OutboxNotFound(PcseError, LookupError):
    def __init__(self, outbox_id: int) -> None:
        super().__init__(f"There is no outgoing email with id {outbox_id}.")


class OutboxActionRefused(PcseError):
    """A caseworker action that the row's status does not allow."""


def as_utc(moment: datetime) -> datetime:
    """Aware UTC: SQLite keeps only the clock time, so every stored time must be UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def enqueue(
    session: Session,
    env: WorkflowEnv,
    *,
    purpose: str,
    to_address: str,
    to_name: str | None,
    context: dict[str, Any],
    case: Case | None = None,
    reply_to: InboundMessage | None = None,
    attachments: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
) -> OutboxMessage:
    """Render `purpose` for one recipient and add it to the outbox in `session` (no commit)."""
    check_context(purpose, context, case is not None)
    if auto_submitted not in AUTO_SUBMITTED_VALUES:
        raise ValueError(f"auto_submitted must be one of {AUTO_SUBMITTED_VALUES}")
    _check_attachment_names(attachments)
    now = as_utc(env.clock.now())
    address = clean_address(to_address)
    name = one_line(to_name) or None
    rendered = render(
        purpose,
        {
            **context,
            "case": case_context(session, case),
            "recipient_name": name,
            "recipient_address": address or one_line(to_address, 254),
            "pcse": site_context(env),
        },
        env.templates_dir,
    )
    in_reply_to, references = thread_headers(session, reply_to, case)
    row = OutboxMessage(
        case_id=case.id if case is not None else None,
        purpose=purpose,
        message_id=new_message_id(env.from_address),
        in_reply_to=in_reply_to,
        references=references,
        to_address=address or one_line(to_address, 254),
        to_name=name,
        subject=with_case_ref(rendered.subject, case.ref if case is not None else None),
        body_text=rendered.text,
        body_html=rendered.html,
        attachments=list(attachments),
        auto_submitted=auto_submitted,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    row.status, row.last_error = _gate(session, env, address, to_address, auto_submitted, now)
    session.add(row)
    session.flush()
    if row.status != "pending":
        # Not last_error: it names the address. The row id leads to it.
        log.warning("outbox %s (%s) %s: %s", row.id, purpose, row.status,
                    NOT_SENT_BECAUSE.get(row.status, "see the outbox row"))
        if case is not None:
            record(session, case, "message", f"Email '{purpose}' not sent: {row.last_error}",
                   data={"outbox_id": row.id, "status": row.status}, at=now)
    return row


# Why a row was not queued, in the log's words (last_error says it with the address).
NOT_SENT_BECAUSE = {
    "failed": "the address is not one valid address",
    "dismissed": "the address is one of ours (loop protection)",
    "held": "the hourly cap on automatic emails to the address was reached",
}


def _check_attachment_names(names: Sequence[str]) -> None:
    """Attachments are names of shipped files, never paths."""
    for name in names:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"attachment must be a blank form's file name, not {name!r}")


def _gate(
    session: Session,
    env: WorkflowEnv,
    address: str | None,
    raw_address: str,
    auto_submitted: str,
    now: datetime,
) -> tuple[str, str | None]:
    """The row's first status and, when it will not be sent as it is, why."""
    if address is None:
        return "failed", f"Not sent: {one_line(raw_address, 100)!r} is not a valid email address."
    if is_own_address(address, env.our_addresses):
        return "dismissed", (
            f"Not sent: {address} is one of our own addresses (loop protection)."
        )
    if auto_submitted != "no":
        already = automatic_replies_last_hour(session, address, now)
        if already >= env.max_replies_per_hour:
            return "held", (
                f"Held: {already} automatic emails went to {address} in the last hour "
                f"(limit {env.max_replies_per_hour}); a caseworker may send or dismiss it."
            )
    return "pending", None


def automatic_replies_last_hour(session: Session, address: str, now: datetime) -> int:
    """Automatic emails to `address` written in the hour before `now`, not held or dismissed."""
    if is_postgres(session):
        # Serialise the count-then-insert per address across concurrent transactions.
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"outbox:{address}"}
        )
    return session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.to_address == address,
            OutboxMessage.created_at > now - timedelta(hours=1),
            OutboxMessage.auto_submitted != "no",
            OutboxMessage.status.not_in(("held", "dismissed")),
        )
    ) or 0


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
    if not ancestors and case is not None:
        ancestors = case_thread(session, case, before=reply_to)
    return parent, references_chain(ancestors, parent)


def case_thread(session: Session, case: Case, *, before: InboundMessage) -> list[str]:
    """Message-IDs of the case's messages up to `before`, oldest first."""
    cutoff = before.received_at or utcnow()
    received = session.execute(
        select(InboundMessage.received_at, InboundMessage.id, InboundMessage.message_id).where(
            (InboundMessage.case_id == case.id) | (InboundMessage.id == case.source_message_id),
            InboundMessage.id != before.id,
            InboundMessage.received_at <= cutoff,
        )
    ).all()
    sent = session.execute(
        select(OutboxMessage.created_at, OutboxMessage.id, OutboxMessage.message_id).where(
            OutboxMessage.case_id == case.id,
            OutboxMessage.created_at <= cutoff,
            OutboxMessage.status.in_(("pending", "sending", "sent")),
        )
    ).all()
    # At the same moment, what we received comes before what we wrote in answer.
    ordered = sorted(
        [(as_utc(at), 0, row_id, msgid) for at, row_id, msgid in received]
        + [(as_utc(at), 1, row_id, msgid) for at, row_id, msgid in sent]
    )
    return [found for *_, msgid in ordered for found in message_ids(msgid)[:1]]


def retry(session: Session, outbox_id: int, *, by: str) -> OutboxMessage:
    """Send a held, failed or unconfirmed email again, now (a caseworker's decision
    overrides the cap)."""
    row = _change(
        session, outbox_id, _retryable_clause(),
        # Due at once, and ahead of newer mail: it has waited longest.
        {"status": "pending", "attempts": 0, "next_attempt_at": OutboxMessage.created_at,
         "last_error": None, "claimed_by": None, "claimed_until": None},
        refused="only held, failed or unconfirmed emails can be sent again.")
    _note(session, row, f"Email '{row.purpose}' to {row.to_address} released for sending.", by)
    return row


def dismiss(session: Session, outbox_id: int, *, by: str, reason: str) -> OutboxMessage:
    """Decide not to send an email that is pending, held or failed; the reason is kept."""
    reason = _reason(reason, "Please give a reason for not sending the email.")
    row = _change(
        session, outbox_id, OutboxMessage.status.in_(DISMISSABLE),
        {"status": "dismissed", "last_error": f"Dismissed by {one_line(by, 254)}: {reason}",
         "claimed_by": None, "claimed_until": None},
        refused="only pending, held or failed emails can be dismissed.")
    _note(session, row, f"Email '{row.purpose}' to {row.to_address} dismissed: {reason}", by)
    return row


def accept_as_sent(session: Session, outbox_id: int, *, by: str, reason: str) -> OutboxMessage:
    """Leave an unconfirmed email as sent (the recipient has it, or it no longer matters)."""
    reason = _reason(reason, "Please say why the email can be left as sent.")
    row = _change(
        session, outbox_id, unconfirmed_clause(),
        {"last_error": f"Delivery unconfirmed; left as sent by {one_line(by, 254)}: {reason}"},
        refused="only an email whose delivery is unconfirmed can be left as sent.")
    _note(session, row, f"Email '{row.purpose}' to {row.to_address} left as sent: {reason}", by)
    return row


def _reason(reason: str, missing: str) -> str:
    reason = one_line(reason, 500)
    if not reason:
        raise OutboxActionRefused(missing)
    return reason


def _change(session: Session, outbox_id: int, allowed: Any, values: dict[str, Any], *,
            refused: str) -> OutboxMessage:
    """A caseworker's change of one row, made only where `allowed` holds at that moment
    (a sender may be taking the row); refused with the row's status otherwise."""
    row = _get(session, outbox_id)
    done = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, allowed)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(row)
    if done != 1:
        raise OutboxActionRefused(f"Email {outbox_id} is {row.status}; {refused}")
    return row


def _get(session: Session, outbox_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        raise OutboxNotFound(outbox_id)
    return row


def _note(session: Session, row: OutboxMessage, detail: str, by: str) -> None:
    """Write a caseworker's action on an email into its case's history."""
    log.info("outbox %s: %s by a caseworker", row.id, row.status)
    if row.case_id is not None:
        case = session.get(Case, row.case_id)
        if case is not None:
            record(session, case, "message", detail, actor=one_line(by, 254),
                   data={"outbox_id": row.id, "status": row.status})
