"""What each kind of case is called, in emails and on the pages alike."""

from __future__ import annotations

from core.catalogue import Service, admin_role
from core.states import CaseKind

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


def kind_title(kind: str | None) -> str:
    """The kind's name; an unknown kind is an enquiry."""
    return KIND_TITLES.get(kind or "", "Enquiry")
