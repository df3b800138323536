"""PCSE's directory rules (R1-R4, R7; docs/architecture.md lists the rules) as pure checks on facts.

Each check takes the facts it needs, already read from the directory, and either returns
or raises RuleViolation with a code and one sentence a person can act on. The directory
module reads the facts and persists the outcome; nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.catalogue import CATALOGUE, Service, canonical_role, service_of
from core.errors import PcseError
from forms.normalise import normalise_email

# The codes a RuleViolation carries; callers may branch on them.
CODES = frozenset(
    {
        "admin_limit",
        "second_main_contact",
        "main_contact_assigns_main_contact",
        "wrong_service",
        "wrong_organisation",
        "wrong_organisation_type",
        "unknown_role",
        "unknown_organisation",
        "closed_organisation",
        "inactive_person",
        "already_held",
        "not_held",
        "invalid_email",
        "unknown_person",
        "email_taken",
        # Signers and AEL contacts (workflow.directory_edits, R6).
        "unknown_capacity",
        "unknown_ael_role",
        "not_an_icb",
        "no_signers_here",
        "already_recorded",
        "not_recorded",
        "missing_name",
        "not_an_ael_contact",
    }
)

ORG_TYPE_LABELS = {
    "gp_practice": "Practice",
    "pcn": "PCN",
    "icb": "ICB",
    "pharmacy": "Pharmacy",
    "optical": "Optical contractor",
}


class RuleViolation(PcseError):
    """A directory change refused by one of PCSE's rules; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown rule violation code {code!r}")
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Holding:
    """One role a person holds now, at one organisation."""

    org_code: str
    role: str


def org_label(org_type: str | None, code: str) -> str:
    """'Practice A81001', 'PCN U12345': how messages name an organisation."""
    return f"{ORG_TYPE_LABELS.get(org_type or '', 'Organisation')} {code}"


def main_contact_role() -> str:
    return CATALOGUE[Service.MAIN_CONTACT].admin_role


def require_role(raw: str) -> str:
    """The catalogue's spelling of `raw`, or unknown_role."""
    role = canonical_role(raw or "")
    if role is None:
        raise RuleViolation("unknown_role", f"There is no PCSE Online role called {raw!r}.")
    return role


def require_email(raw: str) -> str:
    """The address normalised, or invalid_email."""
    email = normalise_email(raw or "")
    if email is None:
        raise RuleViolation("invalid_email", f"{raw!r} is not a valid email address.")
    return email


def require_open(label: str, status: str) -> None:
    """Roles are granted only where the organisation is not closed."""
    if status == "closed":
        raise RuleViolation(
            "closed_organisation",
            f"{label} is closed, so no role can be granted there.",
        )


def require_active(email: str, active: bool, *, assigning: bool = False) -> None:
    if active:
        return
    if assigning:
        raise RuleViolation(
            "inactive_person",
            f"{email} has been deactivated, so cannot assign roles.",
        )
    raise RuleViolation(
        "inactive_person",
        f"{email} has been deactivated; reactivate the account before granting roles.",
    )


# How messages name the kinds of organisation a service is for.
ORG_TYPE_PLURALS = {
    "gp_practice": "GP practices",
    "pcn": "PCNs",
    "icb": "ICBs",
    "pharmacy": "pharmacies",
    "optical": "optical contractors",
}


def require_service_fits(role: str, org_type: str | None, label: str) -> None:
    """A role exists only at the kinds of organisation its service is for."""
    info = CATALOGUE[service_of(role)]
    if not info.org_types or org_type in info.org_types:
        return
    names = [ORG_TYPE_PLURALS.get(t, t) for t in info.org_types]
    kinds = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise RuleViolation(
        "wrong_organisation_type",
        f"{label} cannot have the role {role}: {info.title} is for {kinds} only.",
    )


def require_not_held(email: str, role: str, label: str, held: bool) -> None:
    if held:
        raise RuleViolation("already_held", f"{email} already holds {role} at {label}.")


def require_held(email: str, role: str, label: str, held: bool) -> None:
    if not held:
        raise RuleViolation("not_held", f"{email} does not hold {role} at {label}.")


def check_assigner(
    *,
    assigner: str,
    role: str,
    org_code: str,
    label: str,
    holdings: Iterable[Holding],
) -> None:
    """R3 and R4: may `assigner`, with these current holdings, assign `role` at `org_code`?"""
    held = list(holdings)
    service = service_of(role)
    admin = CATALOGUE[service].admin_role
    mc = main_contact_role()
    if role == mc:
        # R3: only PCSE sets the Main Contact, after authorisation.
        if any(h.role == mc for h in held):
            raise RuleViolation(
                "main_contact_assigns_main_contact",
                f"{assigner} is a Main Contact and cannot assign the Main Contact role; "
                "only PCSE sets it, after authorisation.",
            )
        raise RuleViolation(
            "wrong_service",
            f"{assigner} cannot assign the Main Contact role at {label}; "
            "only PCSE sets it, after authorisation.",
        )
    if Holding(org_code, admin) in held:
        return
    elsewhere = sorted(h.org_code for h in held if h.role == admin)
    if elsewhere:
        raise RuleViolation(
            "wrong_organisation",
            f"{assigner} is a {admin} of {', '.join(elsewhere)}, not of {label}; "
            "an admin assigns roles only within its own organisation.",
        )
    here = sorted({h.role for h in held if h.org_code == org_code})
    where = f"holds {', '.join(here)} at {label}" if here else f"holds no admin role at {label}"
    raise RuleViolation(
        "wrong_service",
        f"{assigner} {where} but is not its {admin}, so cannot assign {role}; "
        "an admin assigns only the roles of its own service.",
    )


def check_capacity(*, role: str, label: str, holders: list[str]) -> None:
    """R1 and R2: room for one more holder of an admin role? `holders`: current emails."""
    service = service_of(role)
    info = CATALOGUE[service]
    if role != info.admin_role or info.max_admins is None:
        return
    if service is Service.MAIN_CONTACT:
        if holders:
            raise RuleViolation(
                "second_main_contact",
                f"{label} already has a Main Contact ({holders[0]}); an organisation has "
                "only one, so a new one must replace the old rather than be added.",
            )
        return
    if len(holders) >= info.max_admins:
        raise RuleViolation(
            "admin_limit",
            f"{label} already has {len(holders)} {info.admin_role}s, the most allowed; "
            "end one of their roles first.",
        )


def last_admin_warning(*, role: str, label: str, remaining: int) -> str | None:
    """R7: the sentence to show when the last holder of an admin role has gone."""
    service = service_of(role)
    info = CATALOGUE[service]
    if role != info.admin_role or remaining > 0:
        return None
    return (
        f"{label} now has no {info.admin_role}, so it has lost user management for "
        f"{info.title}; next time hand the role on before removing the last one."
    )
