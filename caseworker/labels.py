"""Words for states and kinds as caseworkers read them."""

from __future__ import annotations

from core.kinds import KIND_TITLES, kind_title
from core.states import CaseState

STATE_LABELS: dict[str, str] = {
    CaseState.RECEIVED: "Received",
    CaseState.NEEDS_INFO: "Needs information",
    CaseState.AWAITING_APPROVAL: "Awaiting approval",
    CaseState.TRIAGE: "Triage",
    CaseState.APPROVED: "Approved",
    CaseState.COMPLETED: "Completed",
    CaseState.ANSWERED: "Answered",
    CaseState.REJECTED: "Rejected",
    CaseState.EXPIRED: "Expired",
    CaseState.WITHDRAWN: "Withdrawn",
}

# NHS.UK tag colours; each has text contrast of at least 4.5:1 on its background.
STATE_COLOURS: dict[str, str] = {
    CaseState.RECEIVED: "blue",
    CaseState.NEEDS_INFO: "yellow",
    CaseState.AWAITING_APPROVAL: "purple",
    CaseState.TRIAGE: "red",
    CaseState.APPROVED: "aqua-green",
    CaseState.COMPLETED: "green",
    CaseState.ANSWERED: "green",
    CaseState.REJECTED: "orange",
    CaseState.EXPIRED: "grey",
    CaseState.WITHDRAWN: "grey",
}

KIND_LABELS = KIND_TITLES

ACTION_LABELS: dict[str, str] = {
    "approve": "Approve",
    "reject": "Reject",
    "request_info": "Request information",
    "send_approval_request": "Send an approval request",
    "reopen": "Reopen",
    "withdraw": "Withdraw",
}


def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "", state or "")


def kind_label(kind: str | None) -> str:
    return kind_title(kind)


# What each action's text box asks for, and where its words go.
ACTION_PROMPTS: dict[str, str] = {
    "approve": "Why is it approved?",
    "reject": "Reason for rejecting",
    "request_info": "Message to the requester",
    "reopen": "Why reopen it?",
    "withdraw": "Why withdraw it?",
}

ACTION_HINTS: dict[str, str] = {
    "approve": "Recorded in the case history. You see the role changes before they are applied.",
    "reject": "Sent to the requester and recorded in the case history.",
    "request_info": "Say exactly what is missing. Sent to the requester, who can reply.",
    "reopen": "Recorded in the case history. The case goes back to triage.",
    "withdraw": "Recorded in the case history. Nothing is sent.",
}
