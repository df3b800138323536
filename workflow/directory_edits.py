"""A caseworker's edits to the directory beyond ending roles: restoring a role that was
ended (through workflow.directory.grant_role, so R1 to R4 apply as to any grant), and
adding, changing and removing the approvers PCSE records, practice signers and the
contacts of the Authorised Email List (R6: an approver authorises only for the
organisations it is recorded against).

Every operation checks before it writes, so a refusal (RuleViolation, in words) changes
nothing; every change writes one DirectoryEvent with who, when, what and why (R8), under
the same action names the CSV imports use (`signer_added`, `ael_contact_removed`, …).
A removed entry is made inactive, never deleted, so its history stays.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalogue import (
    AEL_GP_PAYMENTS_GENERAL,
    AEL_ROLES,
    SIGNER_CAPACITIES,
    normalise_ael_role,
    normalise_capacity,
)
from core.timeutil import utcnow
from forms.normalise import clean_ods
from workflow.directory import (
    TAKES_NO_SIGNERS,
    Change,
    find_ael_contact,
    find_signer,
    get_org,
    grant_role,
    lock_organisations,
    no_signers_at,
    record_event,
)
from workflow.models import AelContact, DirectoryEvent, Organisation, RoleAssignment, Signer
from workflow.rules import RuleViolation, org_label, require_email, require_open


def _name(raw: str | None) -> str:
    tidy = " ".join((raw or "").split())
    if not tidy:
        raise RuleViolation("missing_name", "Give the person's full name.")
    return tidy


def _capacity(raw: str) -> str:
    capacity = normalise_capacity(raw or "")
    if capacity is None:
        titles = list(SIGNER_CAPACITIES.values())
        raise RuleViolation(
            "unknown_capacity",
            f"{raw!r} is not a signer's capacity; a signer is a {', '.join(titles[:-1])} "
            f"or {titles[-1]}.",
        )
    return capacity


def _ael_role(raw: str | None) -> str:
    role = normalise_ael_role(raw or AEL_GP_PAYMENTS_GENERAL)
    if role is None:
        raise RuleViolation(
            "unknown_ael_role",
            f"{raw!r} is not an AEL role; the roles are {', '.join(AEL_ROLES)}.",
        )
    return role


def _signer_org(session: Session, code: str) -> Organisation:
    org = get_org(session, code)
    if org is None:
        raise RuleViolation(
            "unknown_organisation", f"There is no organisation {code} in the directory."
        )
    if org.type in TAKES_NO_SIGNERS:
        raise RuleViolation("no_signers_here", no_signers_at(org))
    return org


def _icb(session: Session, code: str) -> Organisation:
    """The ICB, held to the end of the transaction: its AEL edits take turns, so two
    contacts each removing the other at once cannot both succeed (each would have checked
    the other still listed)."""
    lock_organisations(session, Organisation.code == clean_ods(code))
    org = get_org(session, code)
    if org is None or org.type != "icb":
        raise RuleViolation(
            "not_an_icb",
            f"There is no ICB {code} in the directory; AEL contacts are recorded against an ICB.",
        )
    return org


def _require_signer(session: Session, org: Organisation, email: str) -> Signer:
    signer = find_signer(session, org.code, email)
    if signer is None:
        raise RuleViolation(
            "not_recorded",
            f"{email} is not a recorded signer of {org_label(org.type, org.code)}.",
        )
    return signer


# --------------------------------------------------------------------------- who added whom

# The events that put an address on as an approver: its addition, or an entry changed to it.
_PUT_ON = {
    "signer": ("signer_added", "signer_updated"),
    "ael": ("ael_contact_added", "ael_contact_updated"),
}


def approver_added_by(session: Session, code: str, email: str, source: str) -> set[str]:
    """Who ever put `email` on as an approver ("signer" or "ael") at `code` (the
    organisation, or the ICB of an AEL contact): the actors of its additions, and of changes
    that gave an entry this address. A change of name or capacity puts nobody on."""
    address = email.strip().lower()
    events = session.scalars(
        select(DirectoryEvent).where(
            DirectoryEvent.organisation_code == code,
            DirectoryEvent.person_email == address,
            DirectoryEvent.action.in_(_PUT_ON[source]),
        )
    )
    return {e.actor for e in events if e.action.endswith("_added") or _moved_here(e)}


def _moved_here(event: DirectoryEvent) -> bool:
    return "email" in ((event.detail or {}).get("changed") or {})


# --------------------------------------------------------------------------- roles


def restore_role(
    session: Session,
    *,
    assignment_id: int,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Change:
    """Grant again a role that was ended (a wrong removal put right): a new assignment,
    checked by every rule a grant must pass; the ended one stays in the history."""
    old = session.get(RoleAssignment, assignment_id)
    if old is None or old.ended_at is None:
        raise RuleViolation("not_held", "There is no ended role with that number to restore.")
    return grant_role(
        session,
        org_code=old.organisation.code,
        email=old.person.email,
        name=old.person.name,
        role=old.role,
        actor=actor,
        reason=f"Restored (ended {old.ended_at:%Y-%m-%d} by {old.ended_by}): {reason}",
        now=now,
    )


# --------------------------------------------------------------------------- signers


def add_signer(
    session: Session,
    *,
    org_code: str,
    name: str,
    email: str,
    capacity: str,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Signer:
    """Record a GP Partner, Caldicott Guardian or Company Director of the organisation."""
    now = now or utcnow()
    org = _signer_org(session, org_code)
    require_open(org_label(org.type, org.code), org.status)
    tidy, address, role = _name(name), require_email(email), _capacity(capacity)
    if find_signer(session, org.code, address) is not None:
        raise RuleViolation(
            "already_recorded",
            f"{address} is already a recorded signer of {org_label(org.type, org.code)}; "
            "change that entry instead.",
        )
    signer = Signer(organisation=org, name=tidy, email=address, capacity=role, active=True)
    session.add(signer)
    detail = {"name": tidy, "email": address, "capacity": role}
    record_event(
        session,
        action="signer_added",
        organisation_code=org.code,
        person_email=address,
        actor=actor,
        reason=reason,
        detail=detail,
        now=now,
    )
    session.flush()
    return signer


def change_signer(
    session: Session,
    *,
    org_code: str,
    email: str,
    actor: str,
    reason: str,
    name: str | None = None,
    new_email: str | None = None,
    capacity: str | None = None,
    now: datetime | None = None,
) -> Signer:
    """Change a recorded signer's name, address or capacity, recording before and after."""
    now = now or utcnow()
    org = _signer_org(session, org_code)
    signer = _require_signer(session, org, require_email(email))
    before = {"name": signer.name, "email": signer.email, "capacity": signer.capacity}
    after = dict(before)
    if name is not None and name.strip():
        after["name"] = _name(name)
    if new_email is not None and new_email.strip():
        after["email"] = require_email(new_email)
        other = find_signer(session, org.code, after["email"])
        if other is not None and other.id != signer.id:
            raise RuleViolation(
                "already_recorded",
                f"{after['email']} is already a recorded signer of "
                f"{org_label(org.type, org.code)}.",
            )
    if capacity is not None and capacity.strip():
        after["capacity"] = _capacity(capacity)
    if after == before:
        raise RuleViolation("already_recorded", "Nothing to change: the entry already says that.")
    signer.name, signer.email, signer.capacity = after["name"], after["email"], after["capacity"]
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    record_event(
        session,
        action="signer_updated",
        organisation_code=org.code,
        person_email=after["email"],
        actor=actor,
        reason=reason,
        detail={**after, "changed": changed},
        now=now,
    )
    session.flush()
    return signer


def remove_signer(
    session: Session,
    *,
    org_code: str,
    email: str,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Signer:
    """The signer can no longer approve for the organisation; the entry's history stays."""
    now = now or utcnow()
    org = _signer_org(session, org_code)
    signer = _require_signer(session, org, require_email(email))
    signer.active = False
    detail = {"name": signer.name, "email": signer.email, "capacity": signer.capacity}
    record_event(
        session,
        action="signer_removed",
        organisation_code=org.code,
        person_email=signer.email,
        actor=actor,
        reason=reason,
        detail=detail,
        now=now,
    )
    session.flush()
    return signer


# --------------------------------------------------------------------------- AEL


def _require_requester(
    session: Session, icb: str, role: str, requested_by: str | None, *, new_address: bool
) -> None:
    """Changes to the AEL come only from an existing contact for the same role: whoever
    asked (`requested_by`) must be one. A change that lets a new address approve (an
    addition, a changed address) must say who asked, unless the ICB has never had a contact
    for the role, when nobody could have (one removed since still counts: removing them all
    must not open the way); else one caseworker could make anyone an approver. A corrected
    name, or a removal, may be PCSE's own doing, its reason recorded."""
    if requested_by is None or not requested_by.strip():
        if new_address and _ever_had_contacts(session, icb, role):
            raise RuleViolation(
                "not_an_ael_contact",
                f"Say which AEL contact of ICB {icb} for {role} asked for this: a new "
                "address on the Authorised Email List comes only from an existing contact "
                "for the same role.",
            )
        return
    address = require_email(requested_by)
    if find_ael_contact(session, icb, address, role) is None:
        raise RuleViolation(
            "not_an_ael_contact",
            f"{address} is not an AEL contact of ICB {icb} for {role}; changes to the "
            "Authorised Email List come only from an existing contact for the same role.",
        )


def _ever_had_contacts(session: Session, icb: str, role: str) -> bool:
    """Has the ICB had a contact for this role, now or before?"""
    return (
        session.scalar(
            select(AelContact.id)
            .where(AelContact.icb_code == icb, AelContact.ael_role == role)
            .limit(1)
        )
        is not None
    )


def _require_contact(session: Session, icb: str, email: str, role: str) -> AelContact:
    contact = find_ael_contact(session, icb, email, role)
    if contact is None:
        raise RuleViolation(
            "not_recorded", f"{email} is not an AEL contact of ICB {icb} for {role}."
        )
    return contact


def add_ael_contact(
    session: Session,
    *,
    icb_code: str,
    name: str,
    email: str,
    actor: str,
    reason: str,
    ael_role: str | None = None,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> AelContact:
    """Record a contact of the ICB on the Authorised Email List, for one AEL role."""
    now = now or utcnow()
    icb = _icb(session, icb_code)
    tidy, address, role = _name(name), require_email(email), _ael_role(ael_role)
    _require_requester(session, icb.code, role, requested_by, new_address=True)
    if find_ael_contact(session, icb.code, address, role) is not None:
        raise RuleViolation(
            "already_recorded", f"{address} is already an AEL contact of ICB {icb.code} for {role}."
        )
    contact = AelContact(icb_code=icb.code, name=tidy, email=address, ael_role=role, active=True)
    session.add(contact)
    detail = {
        "icb_code": icb.code,
        "name": tidy,
        "email": address,
        "ael_role": role,
        "requested_by": requested_by or None,
    }
    record_event(
        session,
        action="ael_contact_added",
        organisation_code=icb.code,
        person_email=address,
        actor=actor,
        reason=reason,
        detail=detail,
        now=now,
    )
    session.flush()
    return contact


def change_ael_contact(
    session: Session,
    *,
    icb_code: str,
    email: str,
    actor: str,
    reason: str,
    ael_role: str | None = None,
    name: str | None = None,
    new_email: str | None = None,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> AelContact:
    """Change an AEL contact's name or address, recording before and after."""
    now = now or utcnow()
    icb = _icb(session, icb_code)
    role = _ael_role(ael_role)
    contact = _require_contact(session, icb.code, require_email(email), role)
    moved = bool(new_email and new_email.strip() and require_email(new_email) != contact.email)
    _require_requester(session, icb.code, role, requested_by, new_address=moved)
    before = {"name": contact.name, "email": contact.email}
    after = dict(before)
    if name is not None and name.strip():
        after["name"] = _name(name)
    if new_email is not None and new_email.strip():
        after["email"] = require_email(new_email)
        other = find_ael_contact(session, icb.code, after["email"], role)
        if other is not None and other.id != contact.id:
            raise RuleViolation(
                "already_recorded",
                f"{after['email']} is already an AEL contact of ICB {icb.code} for {role}.",
            )
    if after == before:
        raise RuleViolation("already_recorded", "Nothing to change: the entry already says that.")
    contact.name, contact.email = after["name"], after["email"]
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    detail = {
        "icb_code": icb.code,
        "ael_role": role,
        **after,
        "changed": changed,
        "requested_by": requested_by or None,
    }
    record_event(
        session,
        action="ael_contact_updated",
        organisation_code=icb.code,
        person_email=after["email"],
        actor=actor,
        reason=reason,
        detail=detail,
        now=now,
    )
    session.flush()
    return contact


def remove_ael_contact(
    session: Session,
    *,
    icb_code: str,
    email: str,
    actor: str,
    reason: str,
    ael_role: str | None = None,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> AelContact:
    """The contact can no longer approve for the ICB's organisations; the history stays."""
    now = now or utcnow()
    icb = _icb(session, icb_code)
    role = _ael_role(ael_role)
    _require_requester(session, icb.code, role, requested_by, new_address=False)
    contact = _require_contact(session, icb.code, require_email(email), role)
    contact.active = False
    detail = {
        "icb_code": icb.code,
        "name": contact.name,
        "email": contact.email,
        "ael_role": role,
        "requested_by": requested_by or None,
    }
    record_event(
        session,
        action="ael_contact_removed",
        organisation_code=icb.code,
        person_email=contact.email,
        actor=actor,
        reason=reason,
        detail=detail,
        now=now,
    )
    session.flush()
    return contact
