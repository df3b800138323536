"""Carrying a decision out (workflow.decisions decides; this is the one step that persists).

The history gets the decision and its checks, the case moves, its emails are queued and
its approval tokens opened (workflow.persist); an approval is applied (workflow.apply).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.kinds import kind_title
from intake.models import InboundMessage
from workflow.apply import approve_and_apply
from workflow.cases import move, record
from workflow.correct_values import PATHS, label_for
from workflow.decisions import BLANK_FORMS, Action, Decision
from workflow.env import WorkflowEnv
from workflow.models import Case
from workflow.persist import SYSTEM, ask_approver, notify, record_checks


def persist_decision(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    decision: Decision,
    *,
    actor: str = SYSTEM,
    reply_to: InboundMessage | None = None,
    echo: bool = True,
) -> Case:
    """Record the decision and its checks, move the case, queue its emails, open its tokens.
    Without `echo` (nobody vouched for the sender) the emails to the requester repeat
    nothing the sender wrote (workflow.mail.enqueue)."""
    now = env.clock.now()
    record_checks(session, case, decision.checks, actor=actor, now=now)
    record(
        session,
        case,
        "decision",
        decision.reason,
        actor=actor,
        at=now,
        data={
            "action": str(decision.action),
            "approvers": [a.as_dict() for a in decision.approvers],
            "changes": [c.as_dict() for c in decision.changes],
            "findings": decision.finding_messages,
            "reply": decision.reply,
        },
    )
    if decision.action is Action.APPROVE:
        return approve_and_apply(
            session,
            env,
            case,
            by=actor,
            basis=decision.reason,
            data={"approvers": [a.as_dict() for a in decision.approvers], "by": "sender"},
        )
    move(session, case, decision.target_state, actor=actor, reason=decision.reason, now=now)
    requester: dict[str, Any] = {
        "to": case.requester,
        "name": case.requester_name,
        "reply_to": reply_to,
        "echo": echo,
    }
    if decision.action is Action.NEEDS_INFO:
        form = BLANK_FORMS.get(case.kind)
        # The case keeps every finding (with its field), for merging the reply and reminding.
        case.findings = [f.as_dict() for f in decision.findings]
        context = {
            "findings": (
                decision.finding_messages
                if echo
                else [in_our_words(f.code, f.field) for f in decision.findings]
            ),
            "form_name": kind_title(case.kind) if form else None,
        }
        notify(
            session,
            env,
            case,
            "needs_info",
            context=context,
            attachments=[form] if form else [],
            **requester,
        )
    elif decision.action is Action.ASK_APPROVERS:
        for approver in decision.approvers:
            ask_approver(session, env, case, approver, actor=actor)
    elif decision.reply is not None:
        notify(
            session, env, case, decision.reply, context=dict(decision.reply_context), **requester
        )
    return case


# Findings that a value, or the form's signature or declaration, is not there.
_ABSENT = frozenset({"missing_field", "not_signed", "declaration_unticked"})


def in_our_words(code: str, field: str | None) -> str:
    """What a finding (its code, and the value's path) asks for, naming the value but
    repeating none of the sender's words: most findings quote what was read ("'…' is not a
    valid address"), and from our address to a From nobody vouched for a quote would carry
    whatever the sender put there."""
    if not PATHS.match(field or ""):
        return "The request as sent could not be read in full: please send it again."
    what = "missing" if code in _ABSENT else "not valid, or not clear"
    return f"{label_for(field or '')}: {what}."
