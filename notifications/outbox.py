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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.addresses import is_own_address
from core.clock import Clock
from core.db import rowcount
from core.errors import PcseError
from core.rowwrites import add_inserted
from core.timeutil import as_utc
from notifications import hourly_cap, wakeup
from notifications.claims import is_unconfirmed, unconfirmed_clause
from notifications.headers import (
    clean_address,
    new_message_id,
    one_line,
    with_case_ref,
)
from notifications.models import OutboxMessage
from notifications.purposes import check_context
from notifications.rendering import render, site_context

log = logging.getLogger(__name__)

AUTO_SUBMITTED_VALUES = ("auto-replied", "auto-generated", "no")
STATUSES = ("pending", "sending", "sent", "failed", "held", "dismissed")
# Rows a caseworker may send again, and rows a caseworker may drop. A sent row whose
# delivery is unconfirmed (notifications.claims.is_unconfirmed) may be sent again too.
RETRYABLE = ("failed", "held")
DISMISSABLE = ("pending", "failed", "held")


class MailSettings(Protocol):
    """What the outbox needs of its surroundings (workflow.env.WorkflowEnv provides it)."""

    @property
    def clock(self) -> Clock: ...
    @property
    def from_address(self) -> str: ...
    @property
    def our_addresses(self) -> frozenset[str]: ...
    @property
    def templates_dir(self) -> str | None: ...
    @property
    def max_replies_per_hour(self) -> int: ...
    @property
    def reminder_after_days(self) -> float: ...
    @property
    def expire_after_days(self) -> float: ...


@dataclass(frozen=True)
class CaseMail:
    """What the outbox is told about the case an email belongs to: its id and reference
    (for the row and the subject), the message that opened it (for threading), and the
    `case` variable the templates receive (built by the workflow, workflow.mail)."""

    id: int
    ref: str
    source_message_id: int | None
    context: dict[str, Any]


@dataclass(frozen=True)
class Handled:
    """A caseworker's action on one row, and the sentence for its case's history (the
    workflow writes it: notifications never writes case history)."""

    row: OutboxMessage
    note: str
    by: str


def retryable(status: str, last_error: str | None) -> bool:
    return status in RETRYABLE or is_unconfirmed(status, last_error)


def _retryable_clause() -> ColumnElement[bool]:
    return or_(OutboxMessage.status.in_(RETRYABLE), unconfirmed_clause())


class OutboxNotFound(PcseError, LookupError):
    def __init__(self, outbox_id: int) -> None:
        super().__init__(f"There is no outgoing email with id {outbox_id}.")


class OutboxActionRefused(PcseError):
    """A caseworker action that the row's status does not allow."""


def enqueue(
    session: Session,
    env: MailSettings,
    *,
    purpose: str,
    to_address: str,
    to_name: str | None,
    context: dict[str, Any],
    case: CaseMail | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
) -> OutboxMessage:
    """Render `purpose` for one recipient and add it to the outbox in `session` (no commit).

    Returns the row it wrote; a row that will not be sent as it is (not `pending`) says
    why in `last_error`, and the caller notes that in the case's history."""
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
            "case": case.context if case is not None else None,
            "recipient_name": name,
            "recipient_address": address or one_line(to_address, 254),
            "pcse": site_context(env),
        },
        env.templates_dir,
    )
    row = OutboxMessage(
        case_id=case.id if case is not None else None,
        purpose=purpose,
        message_id=new_message_id(env.from_address),
        in_reply_to=in_reply_to,
        references=references,
        to_address=address or one_line(to_address, 254),
        to_name=name,
        cap_key=hourly_cap.cap_key(address or one_line(to_address, 254)),
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
    add_inserted(session, row)
    if row.status == "pending":
        if auto_submitted != "no":
            hourly_cap.counted(session, row.to_address)
        wakeup.queued(session)
    else:
        # Not last_error: it names the address. The row id leads to it.
        log.warning(
            "outbox %s (%s) %s: %s",
            row.id,
            purpose,
            row.status,
            NOT_SENT_BECAUSE.get(row.status, "see the outbox row"),
        )
    return row


# Why a row was not queued, in the log's words (last_error says it with the address).
NOT_SENT_BECAUSE = {
    "failed": "the address is not one valid address",
    "dismissed": "the address is one of ours (loop protection)",
    "held": "the hourly cap on automatic emails to the mailbox was reached",
}


def _check_attachment_names(names: Sequence[str]) -> None:
    """Attachments are names of shipped files, never paths."""
    for name in names:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"attachment must be a blank form's file name, not {name!r}")


def _gate(
    session: Session,
    env: MailSettings,
    address: str | None,
    raw_address: str,
    auto_submitted: str,
    now: datetime,
) -> tuple[str, str | None]:
    """The row's first status and, when it will not be sent as it is, why."""
    if address is None:
        return "failed", f"Not sent: {one_line(raw_address, 100)!r} is not a valid email address."
    if is_own_address(address, env.our_addresses):
        return "dismissed", (f"Not sent: {address} is one of our own addresses (loop protection).")
    if auto_submitted != "no":
        already = hourly_cap.replies_last_hour(session, address, now)
        if already >= env.max_replies_per_hour:
            return "held", (
                f"Held: {already} automatic emails went to {address} or another address of "
                f"its mailbox in the last hour "
                f"(limit {env.max_replies_per_hour}); a caseworker may send or dismiss it."
            )
    return "pending", None


def retry(session: Session, outbox_id: int, *, by: str) -> Handled:
    """Send a held, failed or unconfirmed email again, now (a caseworker's decision
    overrides the cap)."""
    row = _change(
        session,
        outbox_id,
        _retryable_clause(),
        # Due at once, and ahead of newer mail: it has waited longest.
        {
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": OutboxMessage.created_at,
            "last_error": None,
            "claimed_by": None,
            "claimed_until": None,
        },
        refused="only held, failed or unconfirmed emails can be sent again.",
    )
    wakeup.queued(session)
    log.info("outbox %s: %s by a caseworker", row.id, row.status)
    return Handled(
        row, f"Email '{row.purpose}' to {row.to_address} released for sending.", one_line(by, 254)
    )


def dismiss(session: Session, outbox_id: int, *, by: str, reason: str) -> Handled:
    """Decide not to send an email that is pending, held or failed; the reason is kept."""
    reason = _reason(reason, "Please give a reason for not sending the email.")
    row = _change(
        session,
        outbox_id,
        OutboxMessage.status.in_(DISMISSABLE),
        {
            "status": "dismissed",
            "last_error": f"Dismissed by {one_line(by, 254)}: {reason}",
            "claimed_by": None,
            "claimed_until": None,
        },
        refused="only pending, held or failed emails can be dismissed.",
    )
    log.info("outbox %s: %s by a caseworker", row.id, row.status)
    return Handled(
        row, f"Email '{row.purpose}' to {row.to_address} dismissed: {reason}", one_line(by, 254)
    )


def accept_as_sent(session: Session, outbox_id: int, *, by: str, reason: str) -> Handled:
    """Leave an unconfirmed email as sent (the recipient has it, or it no longer matters)."""
    reason = _reason(reason, "Please say why the email can be left as sent.")
    row = _change(
        session,
        outbox_id,
        unconfirmed_clause(),
        {"last_error": f"Delivery unconfirmed; left as sent by {one_line(by, 254)}: {reason}"},
        refused="only an email whose delivery is unconfirmed can be left as sent.",
    )
    log.info("outbox %s: %s by a caseworker", row.id, row.status)
    return Handled(
        row, f"Email '{row.purpose}' to {row.to_address} left as sent: {reason}", one_line(by, 254)
    )


def _reason(reason: str, missing: str) -> str:
    reason = one_line(reason, 500)
    if not reason:
        raise OutboxActionRefused(missing)
    return reason


def _change(
    session: Session, outbox_id: int, allowed: Any, values: dict[str, Any], *, refused: str
) -> OutboxMessage:
    """A caseworker's change of one row, made only where `allowed` holds at that moment
    (a sender may be taking the row); refused with the row's status otherwise."""
    row = _get(session, outbox_id)
    done = rowcount(
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, allowed)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(row)
    if done != 1:
        raise OutboxActionRefused(f"Email {outbox_id} is {row.status}; {refused}")
    return row


def _get(session: Session, outbox_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        raise OutboxNotFound(outbox_id)
    return row
