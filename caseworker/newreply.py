"""What the case page shows of a reply no person has read yet (workflow.new_replies), and
the case's history with the automatic checks folded under the step they belong to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.patterns import mask_tokens
from core.states import FINAL_STATES, CaseState
from core.timeutil import as_utc
from workflow.models import Case, CaseEvent
from workflow.new_replies import reply_of

# History entries written as a step is checked and carried out; folded under that step.
AUTOMATIC = frozenset({"check", "decision", "read", "note", "email_queued", "rules_at_apply"})


def new_reply_view(session: Session, case: Case) -> dict[str, Any] | None:
    """The marker, the reply's sender and subject, and its own words as the history kept them."""
    if case.new_reply_at is None:
        return None
    reply = reply_of(session, case)
    said = ""
    if reply is not None:
        for event in reversed(case.events):
            if event.event == "message" and (event.data or {}).get("inbound_id") == reply.id:
                said = str((event.data or {}).get("said") or "")
                break
    return {
        "since": as_utc(case.new_reply_at),
        "message_id": reply.id if reply else None,
        "from": reply.from_address if reply else None,
        "from_name": reply.from_name if reply else None,
        "sender_status": reply.sender_status if reply else None,
        "sender_detail": reply.sender_detail if reply else None,
        "subject": mask_tokens(reply.subject) if reply and reply.subject else None,
        "received_at": as_utc(reply.received_at) if reply else None,
        "said": said,
        "closed": CaseState(case.state) in FINAL_STATES,
    }


def _entry(event: CaseEvent) -> dict[str, Any]:
    return {
        "at": as_utc(event.at),
        "actor": event.actor,
        "event": event.event,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "detail": event.detail,
    }


def history_steps(events: list[CaseEvent]) -> list[dict[str, Any]]:
    """Each step a person or the workflow took, with the automatic entries written after it
    (checks, decisions, what was read, emails queued) folded beneath it, so a case's thirty
    automatic checks do not bury what happened. Nothing is left out: each is a click away."""
    steps: list[dict[str, Any]] = []
    for event in events:
        if event.event in AUTOMATIC and steps:
            steps[-1]["checks"].append(_entry(event))
        else:
            steps.append({**_entry(event), "checks": []})
    return steps
