"""Case states and the one table of allowed moves between them."""

from __future__ import annotations

from enum import StrEnum

from core.errors import PcseError


class CaseState(StrEnum):
    RECEIVED = "received"
    NEEDS_INFO = "needs_info"
    AWAITING_APPROVAL = "awaiting_approval"
    TRIAGE = "triage"
    APPROVED = "approved"
    COMPLETED = "completed"
    ANSWERED = "answered"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class CaseKind(StrEnum):
    GPP_ADMIN_FORM = "gpp_admin_form"
    USER_ADMIN_FORM = "user_admin_form"
    PCN_ADMIN_FORM = "pcn_admin_form"
    PL_ADMIN = "pl_admin"
    OPH_ADMIN = "oph_admin"
    MAIN_CONTACT = "main_contact"
    PERFORMER_REGISTRATION = "performer_registration"
    MARKET_ENTRY = "market_entry"
    OTHER = "other"


S = CaseState

TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    S.RECEIVED: frozenset(
        {S.NEEDS_INFO, S.AWAITING_APPROVAL, S.TRIAGE, S.APPROVED, S.REJECTED, S.ANSWERED}
    ),
    S.NEEDS_INFO: frozenset({S.RECEIVED, S.TRIAGE, S.EXPIRED, S.WITHDRAWN}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.TRIAGE, S.EXPIRED}),
    S.TRIAGE: frozenset(
        {S.NEEDS_INFO, S.AWAITING_APPROVAL, S.APPROVED, S.REJECTED, S.ANSWERED, S.WITHDRAWN}
    ),
    S.APPROVED: frozenset({S.COMPLETED, S.TRIAGE}),
    # A final case is reopened into triage only by a person: a supervisor, or a caseworker
    # reading a reply that came in after it closed (workflow.actions, workflow.new_replies).
    S.COMPLETED: frozenset({S.TRIAGE}),
    S.ANSWERED: frozenset({S.TRIAGE}),
    S.REJECTED: frozenset({S.TRIAGE}),
    S.EXPIRED: frozenset({S.TRIAGE}),
    S.WITHDRAWN: frozenset({S.TRIAGE}),
}

FINAL_STATES: frozenset[CaseState] = frozenset(
    {S.COMPLETED, S.ANSWERED, S.REJECTED, S.EXPIRED, S.WITHDRAWN}
)

# States a person is waiting on; reminders and expiry apply to these.
WAITING_STATES: frozenset[CaseState] = frozenset({S.NEEDS_INFO, S.AWAITING_APPROVAL})


class IllegalTransition(PcseError, ValueError):
    def __init__(self, source: CaseState, target: CaseState) -> None:
        super().__init__(f"A case in state {source} cannot move to {target}.")
        self.source = source
        self.target = target


def can_move(source: CaseState, target: CaseState) -> bool:
    return target in TRANSITIONS[source]


def check_move(source: CaseState, target: CaseState) -> None:
    if not can_move(source, target):
        raise IllegalTransition(source, target)


def _check_table() -> None:
    """Fail at import if the table and the enum drift apart."""
    missing = set(CaseState) - set(TRANSITIONS)
    if missing:
        raise RuntimeError(f"states without a row in TRANSITIONS: {sorted(missing)}")
    for source, targets in TRANSITIONS.items():
        if source in targets:
            raise RuntimeError(f"{source} may not move to itself")
    for final in FINAL_STATES:
        if TRANSITIONS[final] - {S.TRIAGE}:
            raise RuntimeError(f"final state {final} moves elsewhere than back to triage")


_check_table()
