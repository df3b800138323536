"""The "new reply" marker: a message on a case that no person has read yet.

Every reply that is not the answer a case was waiting for marks the case: any message on a
closed case (completed, answered, rejected, expired, withdrawn), and a requester writing
again on an open one. A marked case is listed under "Needs a person" whatever its state. The
workflow only ever sets the marker; a caseworker clears it, with a reason, or reopens the
closed case into triage. Both are written to the case's history with who and why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import PcseError
from core.states import FINAL_STATES, CaseState
from intake.models import InboundMessage
from workflow import actions
from workflow.cases import get_case, hold_case, move, record
from workflow.env import WorkflowEnv
from workflow.models import Case


class MarkerRefused(PcseError):
    """Clearing or reopening that the case does not allow."""


def mark(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage, why: str) -> str:
    """Mark the case: a person must read this reply. The first unread reply's time stays,
    so the queue's age counts from when someone first waited; the latest message is shown."""
    now = env.clock.now()
    if case.new_reply_at is None:
        case.new_reply_at = now
    case.new_reply_message_id = inbound.id
    record(
        session,
        case,
        "new_reply",
        f"Marked with a new reply: {why}",
        at=now,
        data={"inbound_id": inbound.id, "state": case.state},
    )
    return f"{case.ref}: {why}; marked with a new reply for a person."


def _require(case: Case, by: str, reason: str) -> None:
    if not by.strip():
        raise MarkerRefused("Say who is acting (--by).")
    if not reason.strip():
        raise MarkerRefused("Give a reason for the case history.")
    if case.new_reply_at is None:
        raise MarkerRefused(f"Case {case.ref} has no new reply.")


def _unmark(session: Session, case: Case, *, by: str, reason: str, now: datetime) -> None:
    inbound_id = case.new_reply_message_id
    case.new_reply_at = None
    case.new_reply_message_id = None
    record(
        session,
        case,
        "new_reply_cleared",
        f"{by} read the new reply: {reason}",
        actor=by,
        at=now,
        data={"by": by, "reason": reason, "inbound_id": inbound_id},
    )


def clear(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """A caseworker read the reply and nothing more is needed; the case keeps its state."""
    case = hold_case(session, ref)
    _require(case, by, reason)
    _unmark(session, case, by=by, reason=reason, now=env.clock.now())
    return case


def reopen(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """Bring a closed case with a new reply back to triage, so that it can be acted on."""
    case = hold_case(session, ref)
    _require(case, by, reason)
    state = CaseState(case.state)
    if state not in FINAL_STATES:
        raise MarkerRefused(
            f"Case {case.ref} is {case.state}, not closed; clear the new reply instead."
        )
    # Anyone may write in with the case's reference: a reply does not lift the rule that
    # only a supervisor brings an expired case back (workflow.actions.reopen).
    if state is CaseState.EXPIRED and not env.is_supervisor(session, by):
        raise MarkerRefused(
            f"Only a supervisor may reopen an expired case; {by} is not one "
            f"({actions.ADD_ACCOUNTS})."
        )
    now = env.clock.now()
    _unmark(session, case, by=by, reason=reason, now=now)
    move(
        session,
        case,
        CaseState.TRIAGE,
        actor=by,
        now=now,
        reason=f"Reopened by {by} after a reply on the {state.value} case: {reason}",
    )
    return case


def reopen_case(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """`pcse case reopen`: a closed case with a new reply is reopened by any caseworker; any
    other goes through the supervisor's reopen (workflow.actions)."""
    case = get_case(session, ref)
    if case.new_reply_at is not None and CaseState(case.state) in FINAL_STATES:
        return reopen(session, env, ref, by=by, reason=reason)
    return actions.reopen(session, env, ref, by=by, reason=reason)


def reply_of(session: Session, case: Case) -> InboundMessage | None:
    """The latest unread reply, for the case page and the queue."""
    if case.new_reply_message_id is None:
        return None
    return session.get(InboundMessage, case.new_reply_message_id)
