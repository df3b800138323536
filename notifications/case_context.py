"""What templates are told about a case, and the titles of case kinds in plain English."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.catalogue import Service, admin_role
from workflow.models import Case, Organisation
from workflow.states import CaseKind

KIND_TITLES: dict[str, str] = {
    CaseKind.GPP_ADMIN_FORM: f"{admin_role(Service.GPP)} Certification form",
    CaseKind.USER_ADMIN_FORM: "User Administrator Request Form",
    CaseKind.PCN_ADMIN_FORM: f"{admin_role(Service.PCN)} request form",
    CaseKind.PL_ADMIN: f"{admin_role(Service.PL)} request",
    CaseKind.OPH_ADMIN: f"{admin_role(Service.OPH)} request",
    CaseKind.MAIN_CONTACT: f"{admin_role(Service.MAIN_CONTACT)} set-up or change",
    CaseKind.PERFORMER_REGISTRATION: "Performer registration enquiry",
    CaseKind.MARKET_ENTRY: "Pharmacy Market Administration enquiry",
    CaseKind.OTHER: "Enquiry",
}


def kind_title(kind: str) -> str:
    return KIND_TITLES.get(kind, "Enquiry")


def organisation_name(session: Session, case: Case) -> str | None:
    """The directory's name for the case's organisation, else the name read from the request."""
    if case.organisation_code:
        name = session.scalar(
            select(Organisation.name).where(Organisation.code == case.organisation_code)
        )
        if name:
            return name
    read = (case.fields or {}).get("organisation_name")
    return read if isinstance(read, str) and read.strip() else None


def case_context(session: Session, case: Case | None) -> dict[str, Any] | None:
    """The `case` variable every template receives."""
    if case is None:
        return None
    return {
        "ref": case.ref,
        "kind": case.kind,
        "kind_title": kind_title(case.kind),
        "organisation_code": case.organisation_code,
        "organisation_name": organisation_name(session, case),
        "requester": case.requester,
        "requester_name": case.requester_name,
    }
