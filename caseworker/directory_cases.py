"""What the directory pages add for editing: an organisation's and a person's cases, and
the choices the edit forms offer (roles that fit the organisation, ended roles that can be
restored, its signers or, for an ICB, its AEL contacts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from caseworker.caselinks import BARE_REF
from core.catalogue import AEL_ROLES, CATALOGUE, SIGNER_CAPACITIES
from core.timeutil import as_utc
from workflow.models import (
    AelContact,
    ApprovalRequest,
    Case,
    DirectoryEvent,
    Organisation,
    Person,
    RoleAssignment,
    Signer,
)

MAX_CASES = 100


def _case_rows(cases: Any) -> list[dict[str, Any]]:
    return [
        {
            "ref": c.ref,
            "kind": c.kind,
            "state": c.state,
            "organisation_code": c.organisation_code,
            "requester": c.requester,
            "created_at": as_utc(c.created_at),
        }
        for c in cases
    ]


def org_cases(session: Session, code: str) -> list[dict[str, Any]]:
    """The cases about the organisation, newest first."""
    return _case_rows(
        session.scalars(
            select(Case)
            .where(Case.organisation_code == code)
            .order_by(Case.created_at.desc(), Case.id.desc())
            .limit(MAX_CASES)
        )
    )


def person_cases(session: Session, person: Person) -> list[dict[str, Any]]:
    """The cases the person asked for, was asked to approve, or whose changes name them
    (the case references in their roles' and directory entries' reasons)."""
    named: set[str] = set()
    for a in session.scalars(select(RoleAssignment).where(RoleAssignment.person_id == person.id)):
        named.update(BARE_REF.findall(f"{a.grant_reason} {a.end_reason or ''}"))
    for reason in session.scalars(
        select(DirectoryEvent.reason).where(DirectoryEvent.person_email == person.email)
    ):
        named.update(BARE_REF.findall(reason or ""))
    asked = select(ApprovalRequest.case_id).where(ApprovalRequest.approver_email == person.email)
    return _case_rows(
        session.scalars(
            select(Case)
            .where(
                or_(
                    Case.requester == person.email,
                    Case.ref.in_(sorted(named)),
                    Case.id.in_(asked),
                )
            )
            .order_by(Case.created_at.desc(), Case.id.desc())
            .limit(MAX_CASES)
        )
    )


def _role_choices(org: Organisation) -> list[dict[str, str]]:
    choices = []
    for info in CATALOGUE.values():
        if info.org_types and org.type not in info.org_types:
            continue
        for role in (info.admin_role, *info.assignable_roles):
            choices.append({"value": role, "text": f"{role} ({info.title})"})
    return choices


def _restorable(session: Session, org: Organisation) -> list[dict[str, str]]:
    """Ended roles whose holder does not hold the same role here now."""
    rows = session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.organisation_id == org.id)
        .order_by(RoleAssignment.ended_at.desc(), RoleAssignment.id.desc())
    ).all()
    held = {(a.person_id, a.role) for a in rows if a.ended_at is None}
    seen: set[tuple[int, str]] = set()
    choices = []
    for a in rows:
        key = (a.person_id, a.role)
        if a.ended_at is None or key in held or key in seen:
            continue
        seen.add(key)
        choices.append(
            {
                "value": str(a.id),
                "text": f"{a.person.name} ({a.person.email}) – {a.role}, ended "
                f"{as_utc(a.ended_at):%Y-%m-%d}",
            }
        )
    return choices


def org_edit_parts(session: Session, org: Organisation) -> dict[str, Any]:
    signers = session.scalars(
        select(Signer)
        .where(Signer.organisation_id == org.id, Signer.active.is_(True))
        .order_by(Signer.name, Signer.id)
    ).all()
    ael = session.scalars(
        select(AelContact)
        .where(AelContact.icb_code == org.code, AelContact.active.is_(True))
        .order_by(AelContact.ael_role, AelContact.name, AelContact.id)
    ).all()
    return {
        "cases": org_cases(session, org.code),
        "is_icb": org.type == "icb",
        "role_choices": _role_choices(org),
        "restorable": _restorable(session, org),
        "signer_rows": [
            {
                "name": s.name,
                "email": s.email,
                "capacity": s.capacity,
                "capacity_title": SIGNER_CAPACITIES.get(s.capacity, s.capacity),
            }
            for s in signers
        ],
        "capacities": [{"value": k, "text": v} for k, v in SIGNER_CAPACITIES.items()],
        "ael_rows": [
            {"name": a.name, "email": a.email, "role": a.ael_role, "key": f"{a.email}|{a.ael_role}"}
            for a in ael
        ],
        "ael_roles": list(AEL_ROLES),
    }
