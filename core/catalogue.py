"""The catalogue of PCSE Online services and their roles.

This is the only module that spells a role name. Everything else refers to a
service by its `Service` member and to a role through the lookups below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Service(StrEnum):
    GPP = "gpp"
    PL = "pl"
    OPH = "oph"
    MAIN_CONTACT = "main_contact"
    PCN = "pcn"


@dataclass(frozen=True)
class ServiceInfo:
    service: Service
    title: str
    admin_role: str
    # None means no limit (PCN user admins).
    max_admins: int | None
    assignable_roles: tuple[str, ...]
    # The kinds of organisation that use the service: its roles exist only there.
    org_types: tuple[str, ...] = ()


CATALOGUE: dict[Service, ServiceInfo] = {
    Service.GPP: ServiceInfo(
        Service.GPP,
        "GP Payments and Pensions",
        "GPP Practice User Administrator",
        4,
        (
            "View Claims",
            "Claims Admin",
            "Statements",
            "Practice Estimates and Salary Change",
            "Locum Applications",
            "AVCs",
            "Joiners and Leavers",
            "Special Leavers",
            "Accountant",
        ),
        org_types=("gp_practice",),
    ),
    Service.PL: ServiceInfo(
        Service.PL,
        "Performers Lists",
        "PL Organisation Administrator",
        4,
        ("PL Practice Manager",),
        org_types=("gp_practice", "optical"),
    ),
    Service.OPH: ServiceInfo(
        Service.OPH,
        "Ophthalmic Payments",
        "User Management (Organisation)",
        4,
        (
            "GOS Claim Manager",
            "GOS Performer",
            "GOS Read Only",
            "OPH Statement View",
            "OPH Head Office",
            "Contract Signatory",
        ),
        org_types=("optical",),
    ),
    Service.MAIN_CONTACT: ServiceInfo(
        Service.MAIN_CONTACT,
        "Supplies and Medical Records",
        "Main Contact",
        1,
        ("Practice Order Entry Clerk", "Practice Records Movement Admin"),
        org_types=("gp_practice", "pcn", "pharmacy", "optical"),
    ),
    Service.PCN: ServiceInfo(
        Service.PCN,
        "PCN payments",
        "PCN User Admin",
        None,
        ("PCN Nominated Payee View",),
        org_types=("pcn",),
    ),
}

# Other names people and the seed page use for an admin role.
ROLE_ALIASES: dict[str, str] = {
    "opto user management (organisation)": "User Management (Organisation)",
    "gppp practice user administrator": "GPP Practice User Administrator",
}

# Services whose admin count is capped (R1); main contact is governed by R2.
ADMIN_CAPPED_SERVICES = (Service.GPP, Service.PL, Service.OPH)

# Practice signers who may authorise a user admin for their own practice (R6).
SIGNER_CAPACITIES: dict[str, str] = {
    "gp_partner": "GP Partner",
    "caldicott_guardian": "Caldicott Guardian",
    "company_director": "Company Director",
}

# A form signed on the ICB's behalf (the PCN form, or "ICB" written in the capacity box).
ICB_CAPACITY = "icb"
ICB_CAPACITY_TITLE = "on behalf of the ICB"

# What each role lets its holder do, in a line a busy approver can read at a glance.
ROLE_DESCRIPTIONS: dict[Service, str] = {
    Service.GPP: "decides who at the practice can use GP Payments and Pensions "
    "(claims, statements, pension forms)",
    Service.PL: "decides who at the organisation can use the Performers Lists service",
    Service.OPH: "decides who at the organisation can make and view Ophthalmic Payments claims",
    Service.MAIN_CONTACT: "decides who at the organisation can order supplies and, for "
    "GP practices, move medical records",
    Service.PCN: "decides who at the PCN can view its payments",
}

# The AEL role whose contacts approve user admin requests for their ICB (R6).
AEL_GP_PAYMENTS_GENERAL = "GP Payments – General"
AEL_ROLES = (AEL_GP_PAYMENTS_GENERAL, "Retirements", "General Pensions")

ORG_TYPES = ("gp_practice", "pcn", "icb", "pharmacy", "optical")


def admin_role(service: Service) -> str:
    return CATALOGUE[service].admin_role


def is_admin_role(role: str) -> bool:
    return any(info.admin_role == role for info in CATALOGUE.values())


def role_description(role: str) -> str | None:
    """A plain line saying what an admin role lets its holder do; None for other roles."""
    for service, info in CATALOGUE.items():
        if info.admin_role == role:
            return ROLE_DESCRIPTIONS[service]
    return None


def capacity_title(code: str | None) -> str | None:
    """A signer capacity as people write it ("GP Partner", "on behalf of the ICB"); an
    unknown value is returned as it was written, None stays None."""
    if not code:
        return None
    if code == ICB_CAPACITY:
        return ICB_CAPACITY_TITLE
    return SIGNER_CAPACITIES.get(code, code)


def canonical_role(name: str) -> str | None:
    """The catalogue's spelling of a role name, or None when no such role exists."""
    cleaned = " ".join(name.split())
    folded = cleaned.casefold()
    if folded in ROLE_ALIASES:
        return ROLE_ALIASES[folded]
    for info in CATALOGUE.values():
        for role in (info.admin_role, *info.assignable_roles):
            if role.casefold() == folded:
                return role
    return None


def service_of(role: str) -> Service:
    """The service a (canonical) role belongs to."""
    for info in CATALOGUE.values():
        if role == info.admin_role or role in info.assignable_roles:
            return info.service
    raise KeyError(role)


def normalise_ael_role(name: str) -> str | None:
    """AEL roles arrive with a hyphen or an en dash; return the catalogue spelling."""
    folded = " ".join(name.replace("-", "–").split()).casefold()
    for role in AEL_ROLES:
        if role.casefold() == folded:
            return role
    return None


def normalise_capacity(name: str) -> str | None:
    folded = "_".join(name.strip().lower().replace("-", " ").split())
    if folded in SIGNER_CAPACITIES:
        return folded
    for key, title in SIGNER_CAPACITIES.items():
        if title.lower() == name.strip().lower():
            return key
    return None
