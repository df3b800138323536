"""Carry a decision out: the case's move, its history, its emails and its approval tokens.

This is the one place a `workflow.decisions.Decision` touches the database. It runs inside
the caller's transaction, so the move, the history rows and the outbox rows commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.catalogue import capacity_title
from core.timeutil import as_utc
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow import approvals
from workflow.approval_mail import approval_context, change_context
from workflow.cases import record
from workflow.decisions import (
    Approver,
    Check,
)
from workflow.env import WorkflowEnv
from workflow.mail import enqueue
from workflow.models import ApprovalRequest, Case

SYSTEM = "system"
# Messages that answer nobody's email are marked auto-generated rather than auto-replied.
GENERATED = "auto-generated"


def notify(
    session: Session,
    env: WorkflowEnv,
    case: Case | None,
    purpose: str,
    *,
    to: str,
    name: str | None,
    context: dict[str, Any] | None = None,
    reply_to: InboundMessage | None = None,
    attachments: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
    echo: bool = True,
) -> OutboxMessage:
    """Queue one email, and note it in the case's history (`echo`: workflow.mail.enqueue)."""
    message = enqueue(
        session,
        env,
        purpose=purpose,
        to_address=to,
        to_name=name,
        context=dict(context or {}),
        case=case,
        reply_to=reply_to,
        attachments=list(attachments),
        auto_submitted=auto_submitted,
        echo=echo,
    )
    if case is not None:
        record(
            session,
            case,
            "email_queued",
            f"{purpose} queued for {to}.",
            data={"purpose": purpose, "to": to, "outbox_id": message.id, "status": message.status},
            at=env.clock.now(),
        )
    return message


def source_message(session: Session, case: Case) -> InboundMessage | None:
    """The message that opened the case: later replies to the requester thread under it."""
    if case.source_message_id is None:
        return None
    return session.get(InboundMessage, case.source_message_id)


def record_checks(
    session: Session,
    case: Case,
    checks: Iterable[Check],
    *,
    actor: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    """One history row per check, with its outcome."""
    for check in checks:
        record(
            session,
            case,
            "check",
            check.detail,
            actor=actor,
            at=now,
            data={**check.as_dict(), **(data or {})},
        )


# --------------------------------------------------------------------------- contexts


def summary_lines(case: Case) -> list[str]:
    """What was read from the request, in a few lines for the acknowledgement."""
    fields = case.fields or {}
    lines: list[str] = []
    if fields.get("organisation_code"):
        code, name = fields["organisation_code"], fields.get("organisation_name")
        lines.append(f"Organisation: {name} ({code})" if name else f"Organisation: {code}")
    nominees, contact = change_context(case)
    for nominee in nominees:
        lines.append(f"{', '.join(nominee['roles'])}: {nominee['name']} ({nominee['email']})")
    if contact:
        lines.append(f"Main Contact: {contact['name']} ({contact['email']})")
    signer = fields.get("signer")
    if isinstance(signer, dict) and signer.get("name"):
        capacity = capacity_title(signer.get("capacity"))
        lines.append(f"Signed by {signer['name']}" + (f", {capacity}" if capacity else ""))
    return lines


# --------------------------------------------------------------------------- approvers


def ask_approver(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    approver: Approver,
    *,
    actor: str,
) -> ApprovalRequest:
    """Open a token for this approver and queue the approval request to their recorded address."""
    now = env.clock.now()
    approval = approvals.open_request(session, env, case, approver, now=now)
    record(
        session,
        case,
        "approval_requested",
        f"Approval requested from {approver.describe()} with "
        f"{approvals.masked(approval.token)}, open until "
        f"{as_utc(approval.expires_at).isoformat(timespec='minutes')}.",
        actor=actor,
        at=now,
        data={
            "approver": approver.as_dict(),
            "token": approvals.masked(approval.token),
            "approval_id": approval.id,
        },
    )
    notify(
        session,
        env,
        case,
        "approval_request",
        to=approver.email,
        name=approver.name,
        context=approval_context(session, case, approval, env.from_address),
        auto_submitted=GENERATED,
    )
    return approval


def void_open_requests(
    session: Session, env: WorkflowEnv, case: Case, *, reason: str, actor: str
) -> list[str]:
    """Close every open approval request of the case because what it asked about changed
    (or a caseworker took the request back), and tell each approver the email no longer
    counts. A fresh request, with a fresh code, follows when the case asks again."""
    now = env.clock.now()
    voided = [
        a
        for a in approvals.open_requests(session, case)
        if approvals.close(session, a, "void", now=now)
    ]
    if not voided:
        return []
    tokens = [approvals.masked(a.token) for a in voided]
    record(
        session,
        case,
        "approval",
        f"Open approval requests withdrawn ({', '.join(tokens)}): {reason}",
        actor=actor,
        at=now,
        data={"void": tokens, "reason": reason},
    )
    for approval in voided:
        notify(
            session,
            env,
            case,
            "approval_void",
            to=approval.approver_email,
            name=approval.approver_name,
            auto_submitted=GENERATED,
            context={"approver_name": approval.approver_name, "reason": reason},
        )
    return tokens


# --------------------------------------------------------------------------- decisions
