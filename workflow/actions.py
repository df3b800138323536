"""Caseworker actions: the same operations for the command line and the web pages.

Each runs in the caller's transaction, checks that the case's state allows it, writes a
history row naming the caseworker and their reason, and refuses with a PcseError sentence
when it is not allowed (nothing is changed then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import PcseError
from core.kinds import kind_title
from core.states import CaseState
from workflow import approvals, directory, directory_edits
from workflow.apply import approve_and_apply
from workflow.approval_plan import PROPOSED, Plan, open_proposal, plan_for, same_person
from workflow.cases import hold_case, move, record
from workflow.decisions import BLANK_FORMS, CASEWORKER_REQUEST, Approver
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case
from workflow.persist import ask_approver, notify, source_message, void_open_requests

S = CaseState

# The states in which each action may be taken (within the one table of moves).
ALLOWED: dict[str, frozenset[CaseState]] = {
    "approve": frozenset({S.TRIAGE, S.AWAITING_APPROVAL}),
    "reject": frozenset({S.RECEIVED, S.TRIAGE, S.AWAITING_APPROVAL}),
    "request_info": frozenset({S.RECEIVED, S.TRIAGE}),
    "send_approval_request": frozenset({S.TRIAGE, S.AWAITING_APPROVAL}),
    "reopen": frozenset({S.EXPIRED}),
    "withdraw": frozenset({S.NEEDS_INFO, S.TRIAGE}),
}


class ActionRefused(PcseError):
    """A caseworker action the case's state, the rules or the directory do not allow."""


# Where to look when `--by` names no account, or none that may do this.
ADD_ACCOUNTS = (
    "`pcse caseworker list` shows the accounts; `pcse caseworker add EMAIL --name NAME "
    "[--supervisor]` adds one"
)


def allowed_actions(case: Case) -> list[str]:
    state = CaseState(case.state)
    return [name for name, states in ALLOWED.items() if state in states]


def _require(case: Case, action: str, *, by: str, why: str, what: str = "a reason") -> None:
    if not by.strip():
        raise ActionRefused("Say who is acting (--by).")
    if not why.strip():
        raise ActionRefused(f"Give {what} for the case history.")
    require_allowed(case, action)


def require_allowed(case: Case, action: str) -> None:
    """Refuse, in words, an action the case's state does not allow."""
    if CaseState(case.state) not in ALLOWED[action]:
        states = " or ".join(sorted(str(s) for s in ALLOWED[action]))
        raise ActionRefused(
            f"Case {case.ref} is {case.state}; {action.replace('_', ' ')} is "
            f"allowed only when it is {states}."
        )


def _note(session: Session, env: WorkflowEnv, case: Case, action: str, by: str, why: str) -> None:
    record(
        session,
        case,
        "caseworker_action",
        f"{by}: {action.replace('_', ' ')}: {why}",
        actor=by,
        at=env.clock.now(),
        data={"action": action, "by": by, "reason": why},
    )


def _cancel_tokens(session: Session, env: WorkflowEnv, case: Case, by: str) -> None:
    closed = approvals.close_all_open(session, case, "cancelled", now=env.clock.now())
    if closed:
        record(
            session,
            case,
            "approval",
            f"Open approval requests cancelled: {', '.join(closed)}.",
            actor=by,
            at=env.clock.now(),
            data={"cancelled": closed},
        )


class StalePlan(ActionRefused):
    """What was confirmed is no longer what approving would apply; `plan` is the new one."""

    def __init__(self, ref: str, plan: Plan) -> None:
        super().__init__(
            f"The changes for case {ref} are no longer the ones that were confirmed: the "
            "case or the directory changed since. Nothing was applied; check the new plan "
            "and confirm again."
        )
        self.plan = plan


@dataclass(frozen=True)
class Approval:
    case: Case
    plan: Plan
    # True when the case had open findings and this was a first caseworker's approval:
    # nothing is applied until a supervisor or a second caseworker confirms the same plan.
    proposed: bool = False


def approve_plan(
    session: Session,
    env: WorkflowEnv,
    ref: str,
    *,
    by: str,
    reason: str,
    plan_digest: str | None = None,
) -> Approval:
    """Approve on PCSE's authority and apply the plan (the rules still apply). With
    `plan_digest`, only if the plan is still the one confirmed. With open findings, a
    supervisor applies at once; anyone else proposes, and a second caseworker confirms."""
    case = hold_case(session, ref)
    _require(case, "approve", by=by, why=reason)
    plan = plan_for(session, env, case, actor=by)
    if plan_digest is not None and plan_digest.strip().lower() != plan.digest:
        raise StalePlan(case.ref, plan)
    if plan.conflict:
        raise ActionRefused(f"Case {case.ref} cannot be approved: {plan.conflict}")
    basis = f"Approved by caseworker {by}: {reason}"
    data: dict[str, Any] = {"by": "caseworker", "reason": reason, "plan": plan.digest}
    if plan.findings and env.is_supervisor(session, by):
        basis = f"Approved by supervisor {by}, with open findings: {reason}"
        data["supervisor"] = by
    elif plan.findings:
        account = env.account_of(session, by)
        if account is None:
            raise ActionRefused(
                f"Case {case.ref} has open findings: its approval needs two caseworker "
                f"accounts (or a supervisor), and {by} names no active account "
                f"({ADD_ACCOUNTS})."
            )
        proposal = open_proposal(case)
        stale = _why_not_confirmable(session, env, proposal, plan)
        if proposal is None or stale:
            _propose(session, env, case, plan, by=by, account=account, reason=reason, stale=stale)
            return Approval(case, plan, proposed=True)
        first = str(proposal.get("by") or "")
        if same_person(str(proposal.get("account") or first), account):
            raise ActionRefused(
                f"Case {case.ref} has open findings: a second caseworker (not {by}, who "
                "proposed it) or a supervisor must confirm the approval."
            )
        basis = (
            f"Approved by caseworker {first} ({proposal.get('reason')}) and confirmed by "
            f"caseworker {by}: {reason}"
        )
        data |= {"proposed_by": first, "confirmed_by": by}
    _note(session, env, case, "approve", by, reason)
    case = approve_and_apply(session, env, case, by=by, basis=basis, data=data)
    return Approval(case, plan)


def _why_not_confirmable(
    session: Session, env: WorkflowEnv, proposal: dict[str, Any] | None, plan: Plan
) -> str:
    """Why an open proposal cannot be the first of the two people an approval needs; ""
    when it can. A proposal counts only for the plan it saw, and only while its proposer
    still has an active account (one deactivated since is no second pair of eyes)."""
    if proposal is None:
        return ""
    who = proposal.get("by")
    if proposal.get("plan") != plan.digest:
        return f" The earlier proposal by {who} was for a plan that has since changed."
    if env.account_of(session, str(proposal.get("account") or who or "")) is None:
        return f" The earlier proposal by {who} was made by an account no longer active."
    return ""


def _propose(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    plan: Plan,
    *,
    by: str,
    account: str,
    reason: str,
    stale: str,
) -> None:
    record(
        session,
        case,
        PROPOSED,
        f"{by} approved the plan, but the case has open findings: a supervisor or a "
        f"second caseworker must confirm it before it is applied. Reason: {reason}.{stale}",
        actor=by,
        at=env.clock.now(),
        data={"by": by, "account": account, "reason": reason, "plan": plan.digest},
    )


def approve(
    session: Session,
    env: WorkflowEnv,
    ref: str,
    *,
    by: str,
    reason: str,
    plan_digest: str | None = None,
) -> Case:
    """approve_plan, returning the case (still in its state when only proposed)."""
    return approve_plan(session, env, ref, by=by, reason=reason, plan_digest=plan_digest).case


def reject(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """Refuse the request; the requester is told the reason."""
    case = hold_case(session, ref)
    _require(case, "reject", by=by, why=reason)
    _note(session, env, case, "reject", by, reason)
    _cancel_tokens(session, env, case, by)
    move(
        session,
        case,
        S.REJECTED,
        actor=by,
        now=env.clock.now(),
        reason=f"Rejected by caseworker {by}: {reason}",
    )
    notify(
        session,
        env,
        case,
        "outcome_rejected",
        to=case.requester,
        name=case.requester_name,
        context={"reason": reason},
        reply_to=source_message(session, case),
    )
    return case


def request_info(session: Session, env: WorkflowEnv, ref: str, *, by: str, message: str) -> Case:
    """Ask the requester for something; their reply comes back to a caseworker."""
    case = hold_case(session, ref)
    _require(case, "request_info", by=by, why=message, what="the message to the requester")
    _note(session, env, case, "request_info", by, message)
    # What the requester sends back may change the request: no earlier approval stands.
    void_open_requests(
        session,
        env,
        case,
        actor=by,
        reason="A caseworker asked the requester for more information.",
    )
    case.findings = [
        *(case.findings or []),
        {"code": CASEWORKER_REQUEST, "message": message, "field": None},
    ]
    move(
        session,
        case,
        S.NEEDS_INFO,
        actor=by,
        now=env.clock.now(),
        reason=f"{by} asked the requester: {message}",
    )
    form = BLANK_FORMS.get(case.kind)
    notify(
        session,
        env,
        case,
        "needs_info",
        to=case.requester,
        name=case.requester_name,
        context={"findings": [message], "form_name": kind_title(case.kind) if form else None},
        attachments=[form] if form else [],
        reply_to=source_message(session, case),
    )
    return case


def recorded_approver(session: Session, case: Case, email: str) -> Approver:
    """The approver with this address, if recorded for the case's organisation (R6)."""
    code = case.organisation_code or ""
    org = directory.get_org(session, code) if code else None
    if org is None:
        raise ActionRefused(
            f"Case {case.ref} has no organisation in the directory, so no approver can be asked."
        )
    signer = directory.find_signer(session, org.code, email)
    if signer is not None:
        return Approver(signer.name, signer.email.lower(), "signer", signer.capacity)
    icb = org.code if org.type == "icb" else org.icb_code
    contact = directory.find_ael_contact(session, icb, email) if icb else None
    if contact is not None:
        return Approver(contact.name, contact.email.lower(), "ael", contact.ael_role)
    raise ActionRefused(
        f"{email} is not a recorded signer of {org.code} nor an AEL contact of "
        f"ICB {icb or '(none)'}; approval requests go only to recorded "
        "approvers."
    )


def _require_not_added_by(
    session: Session, env: WorkflowEnv, case: Case, approver: Approver, by: str
) -> None:
    """Refuse to ask an approver whom `by` put on the directory: one caseworker would
    otherwise choose both who approves and whom to ask, with no second pair of eyes."""
    org = directory.get_org(session, case.organisation_code or "")
    if org is None:
        return
    code = org.code if approver.source == "signer" or org.type == "icb" else org.icb_code
    added_by = directory_edits.approver_added_by(
        session, code or "", approver.email, approver.source
    )
    me = env.account_of(session, by) or by
    if any(same_person(env.account_of(session, who) or who, me) for who in added_by):
        raise ActionRefused(
            f"{by} recorded {approver.email} as an approver, so cannot also ask them to "
            "approve: another caseworker must send this approval request."
        )


def send_approval_request(
    session: Session, env: WorkflowEnv, ref: str, *, by: str, approver_email: str
) -> ApprovalRequest:
    """Ask a recorded signer or AEL contact to approve (a fresh token; any older open token
    of the same approver on this case is cancelled). A case a person has taken over (triage,
    say) is asked afresh: every code sent before that is cancelled, so that only the code
    sent now, and those of any approvers asked after it, decide the case."""
    case = hold_case(session, ref)
    _require(
        case, "send_approval_request", by=by, why=approver_email, what="the approver's address"
    )
    approver = recorded_approver(session, case, approver_email)
    _require_not_added_by(session, env, case, approver, by)
    conflict = approvals.independent(case, approver.email)
    if not conflict.passed:
        raise ActionRefused(f"{conflict.detail} Ask another recorded approver.")
    now = env.clock.now()
    afresh = case.state != S.AWAITING_APPROVAL
    for old in approvals.open_requests(session, case):
        if afresh or old.approver_email == approver.email:
            approvals.close(session, old, "cancelled", now=now)
    _note(session, env, case, "send_approval_request", by, f"asked {approver.describe()}")
    if case.state != S.AWAITING_APPROVAL:
        move(
            session,
            case,
            S.AWAITING_APPROVAL,
            actor=by,
            now=now,
            reason=f"{by} asked {approver.name} <{approver.email}> to approve.",
        )
    return ask_approver(session, env, case, approver, actor=by)


def reopen(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """Bring an expired case back to triage (supervisors only)."""
    case = hold_case(session, ref)
    _require(case, "reopen", by=by, why=reason)
    if not env.is_supervisor(session, by):
        raise ActionRefused(
            f"Only a supervisor may reopen an expired case; {by} is not one ({ADD_ACCOUNTS})."
        )
    _note(session, env, case, "reopen", by, reason)
    move(
        session, case, S.TRIAGE, actor=by, now=env.clock.now(), reason=f"Reopened by {by}: {reason}"
    )
    return case


def withdraw(session: Session, env: WorkflowEnv, ref: str, *, by: str, reason: str) -> Case:
    """Close a duplicate, spam or withdrawn request without a reply."""
    case = hold_case(session, ref)
    _require(case, "withdraw", by=by, why=reason)
    _note(session, env, case, "withdraw", by, reason)
    _cancel_tokens(session, env, case, by)
    move(
        session,
        case,
        S.WITHDRAWN,
        actor=by,
        now=env.clock.now(),
        reason=f"Withdrawn by {by}: {reason}",
    )
    return case


def _assignee(session: Session, env: WorkflowEnv, to: str | None) -> str | None:
    """The address of the active caseworker account `to` names (by address or name), or
    None to release. A name of no account is refused: a case given to a typing mistake
    would be with nobody, yet gone from the queue's "Nobody has it"."""
    if to is None or not to.strip():
        return None
    account = env.account_of(session, to)
    if account is None:
        raise ActionRefused(
            f"{to.strip()} names no active caseworker account, or more than one: give the "
            f"account's address ({ADD_ACCOUNTS})."
        )
    return account


def assign(session: Session, env: WorkflowEnv, ref: str, *, to: str | None, by: str) -> Case:
    """Take a case, hand it to a colleague, or release it (`to` None): the queue shows who
    is working on what. Allowed in any state; recorded in the history."""
    if not by.strip():
        raise ActionRefused("Say who is acting (--by).")
    case = hold_case(session, ref)
    before, after = case.assigned_to, _assignee(session, env, to)
    if after == before:
        return case
    case.assigned_to = after
    if after is None:
        detail = f"{by} released the case (it was with {before})."
    elif before is None:
        detail = f"{by} assigned the case to {after}."
    else:
        detail = f"{by} assigned the case to {after} (it was with {before})."
    record(
        session,
        case,
        "assigned",
        detail,
        actor=by,
        at=env.clock.now(),
        data={"from": before, "to": after},
    )
    return case
