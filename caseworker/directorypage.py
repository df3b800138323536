"""What the directory pages show: an organisation or a person, roles with their history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from caseworker.casepage import directory_view
from caseworker.directory_cases import org_edit_parts, person_cases
from core.catalogue import CATALOGUE, Service, service_of
from core.timeutil import as_utc
from forms.normalise import clean_ods
from workflow import directory
from workflow.models import DirectoryEvent, Organisation, Person, RoleAssignment

MAX_RESULTS = 50
MAX_EVENTS = 200


def service_title(role: str) -> str:
    try:
        return CATALOGUE[service_of(role)].title
    except KeyError:
        return ""


def _assignment(a: RoleAssignment) -> dict[str, Any]:
    return {
        "id": a.id,
        "org_code": a.organisation.code,
        "org_name": a.organisation.name,
        "name": a.person.name,
        "email": a.person.email,
        "role": a.role,
        "service": service_title(a.role),
        "granted_at": as_utc(a.granted_at),
        "granted_by": a.granted_by,
        "grant_reason": a.grant_reason,
        "ended_at": as_utc(a.ended_at),
        "ended_by": a.ended_by,
        "end_reason": a.end_reason,
    }


def _events(session: Session, *where) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(DirectoryEvent)
        .where(*where)
        .order_by(DirectoryEvent.at.desc(), DirectoryEvent.id.desc())
        .limit(MAX_EVENTS)
    )
    return [
        {
            "at": as_utc(e.at),
            "actor": e.actor,
            "action": e.action.replace("_", " "),
            "org": e.organisation_code,
            "person": e.person_email,
            "reason": e.reason,
        }
        for e in rows
    ]


def search(session: Session, query: str) -> dict[str, Any]:
    """Organisations by code or name, people by email address or name."""
    text = query.strip().lower()
    code = clean_ods(query)
    orgs = session.scalars(
        select(Organisation)
        .where(
            or_(
                Organisation.code == code,
                func.lower(Organisation.name).contains(text, autoescape=True),
            )
        )
        .order_by(Organisation.code)
        .limit(MAX_RESULTS)
    )
    people = session.scalars(
        select(Person)
        .where(
            or_(
                func.lower(Person.email).contains(text, autoescape=True),
                func.lower(Person.name).contains(text, autoescape=True),
            )
        )
        .order_by(Person.name)
        .limit(MAX_RESULTS)
    )
    return {
        "organisations": [{"code": o.code, "name": o.name, "type": o.type} for o in orgs],
        "people": [{"name": p.name, "email": p.email, "active": p.active} for p in people],
    }


def organisation_page(session: Session, code: str) -> dict[str, Any] | None:
    view = directory_view(session, code)
    if view is None:
        return None
    org = directory.get_org(session, code)
    assert org is not None  # the view was made from it
    assignments = session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.organisation_id == org.id)
        .order_by(RoleAssignment.granted_at, RoleAssignment.id)
    )
    by_service: dict[str, list[dict[str, Any]]] = {}
    for a in assignments:
        by_service.setdefault(a.service, []).append(_assignment(a))
    services: list[dict[str, Any]] = [
        {"title": CATALOGUE[s].title, "rows": by_service[s.value]}
        for s in Service
        if s.value in by_service
    ]
    open_roles = [row for group in services for row in group["rows"] if row["ended_at"] is None]
    return {
        "org": view,
        "services": services,
        "open_roles": open_roles,
        "events": _events(session, DirectoryEvent.organisation_code == org.code),
        **org_edit_parts(session, org),
    }


def person_page(session: Session, email: str) -> dict[str, Any] | None:
    person = directory.get_person(session, email)
    if person is None:
        return None
    assignments = session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.person_id == person.id)
        .order_by(RoleAssignment.granted_at, RoleAssignment.id)
    )
    rows = [_assignment(a) for a in assignments]
    return {
        "person": {
            "name": person.name,
            "email": person.email,
            "active": person.active,
            "created_at": as_utc(person.created_at),
            "deactivated_at": as_utc(person.deactivated_at),
        },
        "roles": rows,
        "open_roles": [r for r in rows if r["ended_at"] is None],
        "events": _events(session, DirectoryEvent.person_email == person.email),
        "cases": person_cases(session, person),
    }
