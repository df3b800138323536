"""Apply an approved case's role changes through the directory, in the move to `completed`.

The directory's operations check the rules again (R1 to R4, R7, R8) as they write. The
changes are made inside a savepoint: if any is refused, none stays, the case goes to
`triage` with the reason, and the requester is told plainly. Otherwise the case is
completed and everyone concerned is told, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalogue import CATALOGUE, Service
from core.db import write_now
from core.errors import PcseError
from core.states import CaseState
from workflow import approvals, directory
from workflow.cases import move, record
from workflow.decisions import Check, PlannedChange, planned_changes
from workflow.env import WorkflowEnv
from workflow.mail import opened_unvouched
from workflow.models import ApprovalRequest, Case, Person
from workflow.persist import GENERATED, notify, record_checks, source_message
from workflow.rules import RuleViolation


class NotApproved(PcseError):
    def __init__(self, case: Case) -> None:
        super().__init__(f"Case {case.ref} is {case.state}, not approved; nothing was applied.")


@dataclass
class Applied:
    change: PlannedChange
    warnings: list[str]
    replaced: Person | None = None


def approve_and_apply(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    *,
    by: str,
    basis: str,
    data: dict[str, Any] | None = None,
) -> Case:
    """The one route to `approved`: an approver's answer, a caseworker's approval and an
    automatic approval all come here once their own checks have passed. Records who
    approved and on what basis, closes any other open approval request, moves the case to
    approved and applies it (the rules are checked again as the changes are written)."""
    now = env.clock.now()
    cancelled = approvals.close_all_open(session, case, "cancelled", now=now)
    record(
        session,
        case,
        "approval",
        basis
        + (f" Other approval requests cancelled: {', '.join(cancelled)}." if cancelled else ""),
        actor=by,
        at=now,
        data={**(data or {}), "cancelled": cancelled},
    )
    move(session, case, CaseState.APPROVED, actor=by, now=now, reason=basis)
    return apply_case(session, env, case, actor=by)


def apply_case(session: Session, env: WorkflowEnv, case: Case, *, actor: str) -> Case:
    """Apply the approved case's changes and complete it, or send it to triage with the reason."""
    if case.state != CaseState.APPROVED:
        raise NotApproved(case)
    now = env.clock.now()
    changes = planned_changes(case.kind, case.fields or {})
    checks = _recheck_approvers(session, case)
    record_checks(session, case, checks, actor=actor, now=now)
    refused = next((c for c in checks if not c.passed), None)
    if refused is not None:
        return _to_triage(session, env, case, refused.detail, actor=actor)
    if not changes:
        return _to_triage(session, env, case, "The case asks for no role change.", actor=actor)
    try:
        with session.begin_nested():
            applied = _apply_all(session, env, case, changes, actor=actor)
    except RuleViolation as exc:
        record(
            session,
            case,
            "check",
            f"Applying the changes was refused: {exc}",
            actor=actor,
            at=now,
            data={"check": "rules_at_apply", "passed": False, "rule": exc.code},
        )
        return _to_triage(session, env, case, str(exc), actor=actor)
    for done in applied:
        record(
            session,
            case,
            "applied",
            _sentence(case.organisation_code or "", done.change),
            actor=actor,
            at=now,
            data={
                **done.change.as_dict(),
                "warnings": done.warnings,
                "replaced": done.replaced.email if done.replaced else None,
            },
        )
    move(
        session,
        case,
        CaseState.COMPLETED,
        actor=actor,
        now=now,
        reason=f"{len(applied)} change(s) applied.",
    )
    _tell_everyone(session, env, case, applied)
    return case


@dataclass(frozen=True)
class Effect:
    """What applying one planned change did in a dry run: the Main Contact it would end
    (email, name) and the warnings (R7)."""

    change: PlannedChange
    replaced: tuple[str, str] | None
    warnings: tuple[str, ...]


def dry_run(
    session: Session, env: WorkflowEnv, case: Case, *, actor: str
) -> tuple[list[Effect], str | None]:
    """What applying the case's changes now would do, and the rule it would break (or
    None), found by running the very code that applies them inside a savepoint that is
    always rolled back: nothing is written."""
    changes = planned_changes(case.kind, case.fields or {})
    if not changes:
        return [], "The case asks for no role change."
    write_now(session)  # SQLite: the write lock before the savepoint (core.db.write_now)
    nested = session.begin_nested()
    try:
        applied = _apply_all(session, env, case, changes, actor=actor)
        effects = [
            Effect(
                a.change,
                (a.replaced.email, a.replaced.name) if a.replaced is not None else None,
                tuple(a.warnings),
            )
            for a in applied
        ]
    except RuleViolation as exc:
        return [], str(exc)
    finally:
        nested.rollback()
    return effects, None


def rule_conflict(session: Session, env: WorkflowEnv, case: Case, *, actor: str) -> str | None:
    """The rule that applying the case's changes now would break, or None. Writes nothing."""
    return dry_run(session, env, case, actor=actor)[1]


def _apply_all(
    session: Session, env: WorkflowEnv, case: Case, changes: list[PlannedChange], *, actor: str
) -> list[Applied]:
    return [_apply_one(session, env, case, change, actor=actor) for change in changes]


def _apply_one(
    session: Session, env: WorkflowEnv, case: Case, change: PlannedChange, *, actor: str
) -> Applied:
    """One change through the directory; its reason is the case reference."""
    now = env.clock.now()
    org_code = case.organisation_code or ""
    if change.service is Service.MAIN_CONTACT:
        result = directory.set_main_contact(
            session,
            org_code=org_code,
            email=change.email,
            name=change.name,
            actor=actor,
            reason=case.ref,
            now=now,
        )
        return Applied(change, list(result.warnings), result.replaced)
    result = directory.grant_role(
        session,
        org_code=org_code,
        email=change.email,
        name=change.name,
        role=change.role,
        actor=actor,
        reason=case.ref,
        now=now,
    )
    return Applied(change, list(result.warnings))


def _recheck_approvers(session: Session, case: Case) -> list[Check]:
    """R6 again: whoever approved by email must still be recorded for this organisation."""
    approved = session.scalars(
        select(ApprovalRequest).where(
            ApprovalRequest.case_id == case.id, ApprovalRequest.status == "approved"
        )
    ).all()
    checks: list[Check] = []
    org = directory.get_org(session, case.organisation_code or "")
    for approval in approved:
        if approval.approver_source == "signer":
            still = (
                directory.find_signer(
                    session, case.organisation_code or "", approval.approver_email
                )
                is not None
            )
            where = f"a signer of {case.organisation_code}"
        else:
            icb = (org.icb_code if org and org.type != "icb" else case.organisation_code) or ""
            still = directory.find_ael_contact(session, icb, approval.approver_email) is not None
            where = f"an AEL contact of ICB {icb or '(unknown)'}"
        checks.append(
            Check(
                "approver_still_recorded",
                still,
                f"{approval.approver_email} is {'still' if still else 'no longer'} "
                f"recorded as {where} (R6).",
            )
        )
    return checks


# What the requester is told when the case opened unvouched. A rule's reason names the
# values it weighed (a nominee's address as the sender typed it, the approver's address),
# and from our address to a From nobody vouched for it would carry them to whomever it names.
REFUSED_PLAINLY = (
    "PCSE's rules on who may hold which role did not allow the change as it was asked for."
)


def _to_triage(session: Session, env: WorkflowEnv, case: Case, reason: str, *, actor: str) -> Case:
    sentence = f"The approved changes could not be applied: {reason}"
    move(session, case, CaseState.TRIAGE, actor=actor, reason=sentence, now=env.clock.now())
    notify(
        session,
        env,
        case,
        "outcome_triage",
        to=case.requester,
        name=case.requester_name,
        context={"reason": REFUSED_PLAINLY if opened_unvouched(session, case) else reason},
        reply_to=source_message(session, case),
    )
    return case


def _sentence(where: str, change: PlannedChange) -> str:
    role = "the Main Contact" if change.service is Service.MAIN_CONTACT else change.role
    return f"{change.name} ({change.email}) is now {role} for {where}."


def _tell_everyone(session: Session, env: WorkflowEnv, case: Case, applied: list[Applied]) -> None:
    """The requester, each nominee, and a replaced main contact."""
    org = directory.get_org(session, case.organisation_code or "")
    org_name = org.name if org else (case.organisation_code or "")
    where = f"{org.name} ({org.code})" if org else org_name
    notify(
        session,
        env,
        case,
        "outcome_completed",
        to=case.requester,
        name=case.requester_name,
        context={"changes": [_sentence(where, a.change) for a in applied]},
        reply_to=source_message(session, case),
    )
    # One welcome per new admin, naming every role given at once.
    welcomed: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
    for done in applied:
        info = CATALOGUE[done.change.service]
        if done.change.service is Service.MAIN_CONTACT:
            notify(
                session,
                env,
                case,
                "welcome_main_contact",
                to=done.change.email,
                name=done.change.name,
                auto_submitted=GENERATED,
                context={
                    "organisation_name": org_name,
                    "assignable_roles": list(info.assignable_roles),
                },
            )
            if done.replaced is not None and done.replaced.email != done.change.email:
                notify(
                    session,
                    env,
                    case,
                    "main_contact_replaced",
                    to=done.replaced.email,
                    name=done.replaced.name,
                    auto_submitted=GENERATED,
                    context={"organisation_name": org_name, "new_contact_name": done.change.name},
                )
            continue
        _, roles = welcomed.setdefault(done.change.email, (done.change.name, []))
        roles.append(
            {
                "role": info.admin_role,
                "service_title": info.title,
                "assignable_roles": list(info.assignable_roles),
            }
        )
    for email, (name, roles) in welcomed.items():
        notify(
            session,
            env,
            case,
            "welcome_admin",
            to=email,
            name=name,
            auto_submitted=GENERATED,
            context={"organisation_name": org_name, "roles": roles},
        )
