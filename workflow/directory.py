"""The user directory: organisations, people, their roles, signers and the AEL.

Every operation here checks PCSE's rules (workflow.rules) before it writes, so a refusal
changes nothing, and every change writes one DirectoryEvent row: who, when, what, why (R8).
Roles are ended, never deleted. Operations lock the organisation row, so that two
workers granting at once cannot both take the last admin place (PostgreSQL; SQLite
serialises writers anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, inspect, select
from sqlalchemy.orm import Session, contains_eager, object_session
from sqlalchemy.sql.elements import ColumnElement

from core.catalogue import (
    AEL_GP_PAYMENTS_GENERAL,
    CATALOGUE,
    Service,
    admin_role,
    service_of,
)
from core.db import note_holding, write_now
from core.rowwrites import flush_pending, pending_may_wait
from core.timeutil import as_utc, utcnow
from forms.normalise import clean_ods
from workflow.changefeed import GRANT, MAIN_CONTACT_CHANGE, REVOKE, record_role_change
from workflow.models import AelContact, DirectoryEvent, Organisation, Person, RoleAssignment, Signer
from workflow.rules import (
    Holding,
    RuleViolation,
    check_assigner,
    check_capacity,
    last_admin_warning,
    main_contact_role,
    org_label,
    require_active,
    require_email,
    require_held,
    require_not_held,
    require_open,
    require_role,
    require_service_fits,
)

__all__ = [
    "Change",
    "RuleViolation",
    "admins",
    "ael_contacts_for",
    "amend_person",
    "check_grant",
    "deactivate_person",
    "find_ael_contact",
    "find_signer",
    "get_org",
    "get_person",
    "grant_role",
    "main_contact",
    "org_view",
    "reactivate_person",
    "record_event",
    "revoke_role",
    "roles_of",
    "set_main_contact",
    "signers_for",
]


@dataclass
class Change:
    """What an operation did: the assignments it created or ended, and warnings (R7)."""

    assignments: list[RoleAssignment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # set_main_contact: the previous Main Contact, who is to be told (R2).
    replaced: Person | None = None


# --------------------------------------------------------------------------- queries


# session.info key: the organisations get_org found in this session, by ODS code.
FOUND_ORGS = "workflow.directory.found_orgs"


# session.info key: ODS codes get_org found no organisation for in this session.
MISSING_ORGS = "workflow.directory.missing_orgs"


def get_org(session: Session, code: str) -> Organisation | None:
    cleaned = clean_ods(code)
    org = _read_already(session, cleaned)
    if org is None:
        org = session.scalars(_ORG_BY_CODE, {"code": cleaned}).first()
    if org is not None:
        # Held for organisation_name_in (the session's identity map holds objects weakly).
        session.info.setdefault(FOUND_ORGS, {})[org.code] = org
    else:
        session.info.setdefault(MISSING_ORGS, set()).add(cleaned)
    return org


def _read_already(session: Session, code: str) -> Organisation | None:
    """The organisation this session has read already, while it holds it loaded and
    undeleted, in this transaction. A decision asks for it once for each thing it reads
    (admins, signers, approvers), and a batch once for each request naming it; a new query
    would only hand back this same object from the identity map, without refreshing it.
    After a commit, a savepoint's release or any rollback (_forget_found), or once expired
    or waiting to be deleted, it is read afresh."""
    org: Organisation | None = session.info.get(FOUND_ORGS, {}).get(code)
    if org is None or org not in session or org in session.deleted:
        return None
    state = inspect(org)
    if not state.persistent or state.expired_attributes:
        return None
    return org if org.code == code else None


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_found(session: Session, *_: object) -> None:
    # Kept until the transaction, or a savepoint in it, ends (after_commit also fires as a
    # savepoint is released). Sessions here do not expire what they hold at a commit, and
    # an organisation read inside a savepoint that inserted it stays in the identity map,
    # loaded and unexpired, after the savepoint rolls back (SQLAlchemy expires only what
    # was changed): after either, each is read afresh.
    session.info.pop(FOUND_ORGS, None)


@event.listens_for(Organisation, "after_insert")
def _no_longer_missing(_mapper: object, _conn: object, org: Organisation) -> None:
    session = object_session(org)
    if session is not None:
        session.info.get(MISSING_ORGS, set()).discard(org.code)


def organisation_name_in(session: Session, code: str) -> str | None:
    """The name of an organisation this session has already read, else the database's
    (None, without asking again, for one this session found missing)."""
    known: Organisation | None = session.info.get(FOUND_ORGS, {}).get(code)
    if known is not None and known in session:
        return known.name
    flush_pending(session)  # an organisation added and not yet written is found below
    if clean_ods(code) in session.info.get(MISSING_ORGS, ()):
        return None
    return session.connection().execute(_ORG_NAME, {"code": code}).scalar()


# Built once: these run for every request that names an organisation.
_ORG_BY_CODE = pending_may_wait(select(Organisation).where(Organisation.code == bindparam("code")))
_ORG_NAME = pending_may_wait(
    select(Organisation.__table__.c.name).where(Organisation.__table__.c.code == bindparam("code"))
)
# A decision reads these for the organisation a request names (none reads the history).
_OPEN_ASSIGNMENTS = pending_may_wait(
    select(RoleAssignment)
    .join(Person, RoleAssignment.person_id == Person.id)
    .options(contains_eager(RoleAssignment.person))
    .where(
        RoleAssignment.organisation_id == bindparam("org"),
        RoleAssignment.role.in_(bindparam("roles", expanding=True)),
        RoleAssignment.ended_at.is_(None),
        Person.active.is_(True),
    )
    .order_by(RoleAssignment.granted_at, RoleAssignment.id)
)
_ACTIVE_SIGNERS = pending_may_wait(
    select(Signer).where(Signer.organisation_id == bindparam("org"), Signer.active.is_(True))
)
_ACTIVE_AEL = pending_may_wait(
    select(AelContact)
    .where(
        AelContact.icb_code == bindparam("icb"),
        AelContact.ael_role == bindparam("role"),
        AelContact.active.is_(True),
    )
    .order_by(AelContact.name, AelContact.id)
)


def get_person(session: Session, email: str) -> Person | None:
    cleaned = (email or "").strip().strip("<>").strip().lower()
    return session.scalars(select(Person).where(Person.email == cleaned)).first()


def _open_assignments(session: Session, org: Organisation, *roles: str) -> list[RoleAssignment]:
    """The open assignments of these roles at `org` held by active people, longest-serving
    first, each with its person loaded by the same query."""
    return list(session.scalars(_OPEN_ASSIGNMENTS, {"org": org.id, "roles": list(roles)}))


def _holders(session: Session, org: Organisation, role: str) -> list[Person]:
    return [a.person for a in _open_assignments(session, org, role)]


def admins(session: Session, org_code: str, service: Service) -> list[Person]:
    """Active holders of the service's admin role at the organisation, longest-serving first."""
    org = get_org(session, org_code)
    if org is None:
        return []
    return _holders(session, org, admin_role(Service(service)))


def admins_by_service(
    session: Session, org_code: str, services: tuple[Service, ...]
) -> dict[Service, list[Person]]:
    """`admins` for several services at once, in one query (a decision counts five)."""
    found: dict[Service, list[Person]] = {Service(s): [] for s in services}
    org = get_org(session, org_code)
    if org is None:
        return found
    roles = {admin_role(service): service for service in found}
    for assignment in _open_assignments(session, org, *roles):
        found[roles[assignment.role]].append(assignment.person)
    return found


def main_contact(session: Session, org_code: str) -> Person | None:
    found = admins(session, org_code, Service.MAIN_CONTACT)
    return found[0] if found else None


def roles_of(session: Session, email: str) -> list[RoleAssignment]:
    """The roles a person holds now, in every organisation."""
    person = get_person(session, email)
    if person is None:
        return []
    return list(
        session.scalars(
            select(RoleAssignment)
            .where(RoleAssignment.person_id == person.id, RoleAssignment.ended_at.is_(None))
            .order_by(RoleAssignment.id)
        )
    )


# R6: a signer authorises for its own practice (or contractor); a PCN's and an ICB's
# approvers are the ICB's contacts on the Authorised Email List. A signer somehow recorded
# at one of these (before this rule, say) is never asked and never counts.
TAKES_NO_SIGNERS = frozenset({"pcn", "icb"})


def no_signers_at(org: Organisation) -> str:
    """Why a signer cannot be recorded at this organisation, in words."""
    kind = "a PCN" if org.type == "pcn" else "an ICB"
    icb = "its ICB's" if org.type == "pcn" else "its"
    return (
        f"{org.code} is {kind}: its approvers are {icb} contacts on the Authorised Email "
        "List, not practice signers."
    )


def signers_for(session: Session, org_code: str) -> list[Signer]:
    """The organisation's active practice signers, in order of preference
    (core.catalogue.SIGNER_CAPACITIES); none at a PCN or an ICB (TAKES_NO_SIGNERS)."""
    org = get_org(session, org_code)
    if org is None or org.type in TAKES_NO_SIGNERS:
        return []
    rows = session.scalars(_ACTIVE_SIGNERS, {"org": org.id}).all()
    preference = ["gp_partner", "caldicott_guardian", "company_director"]
    return sorted(rows, key=lambda s: (_rank(preference, s.capacity), s.name.casefold(), s.id))


def _rank(order: list[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def ael_contacts_for(
    session: Session, icb_code: str, ael_role: str = AEL_GP_PAYMENTS_GENERAL
) -> list[AelContact]:
    return list(session.scalars(_ACTIVE_AEL, {"icb": clean_ods(icb_code), "role": ael_role}))


def find_signer(session: Session, org_code: str, email: str) -> Signer | None:
    """The active signer of this organisation with this address (R6), if any."""
    cleaned = (email or "").strip().lower()
    for signer in signers_for(session, org_code):
        if signer.email == cleaned:
            return signer
    return None


def find_ael_contact(
    session: Session, icb_code: str, email: str, ael_role: str = AEL_GP_PAYMENTS_GENERAL
) -> AelContact | None:
    """The active AEL contact of this ICB and AEL role with this address (R6), if any."""
    cleaned = (email or "").strip().lower()
    for contact in ael_contacts_for(session, icb_code, ael_role):
        if contact.email == cleaned:
            return contact
    return None


def _role_order(role: str) -> tuple[int, int, str]:
    """Catalogue order: by service, the admin role first, then its roles as listed."""
    service = service_of(role)
    services = list(CATALOGUE)
    info = CATALOGUE[service]
    position = 0 if role == info.admin_role else 1 + info.assignable_roles.index(role)
    return (services.index(service), position, role)


def org_view(session: Session, code: str) -> dict[str, Any]:
    """The `pcse directory show --json` document (README.md, Command reference).

    `users` lists everyone who holds or has held a role at the organisation, so that a
    deactivated person still shows (active false, no roles); `roles` are the roles held now.
    """
    org = _require_org(session, code)
    assignments = session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.organisation_id == org.id)
        .order_by(RoleAssignment.id)
    ).all()
    people: dict[int, Person] = {}
    current: dict[int, list[str]] = {}
    for a in assignments:
        people[a.person_id] = a.person
        roles = current.setdefault(a.person_id, [])
        if a.ended_at is None and a.role not in roles:
            roles.append(a.role)
    users = [
        {
            "name": p.name,
            "email": p.email,
            "active": p.active,
            "roles": sorted(current[p.id], key=_role_order),
        }
        for p in sorted(people.values(), key=lambda p: (p.name.casefold(), p.email))
    ]
    return {
        "code": org.code,
        "name": org.name,
        "type": org.type,
        "icb_code": org.icb_code,
        "status": org.status,
        "ods_refreshed_at": as_utc(org.ods_refreshed_at).isoformat()
        if org.ods_refreshed_at
        else None,
        "users": users,
    }


# --------------------------------------------------------------------------- events


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    reason: str,
    organisation_code: str | None = None,
    person_email: str | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> DirectoryEvent:
    """Append one row to the directory's history (R8)."""
    event = DirectoryEvent(
        at=now or utcnow(),
        actor=actor,
        action=action,
        organisation_code=organisation_code,
        person_email=person_email,
        detail=detail or {},
        reason=reason,
    )
    session.add(event)
    return event


# --------------------------------------------------------------------------- checks


def _require_org(session: Session, code: str, *, lock: bool = False) -> Organisation:
    query = select(Organisation).where(Organisation.code == clean_ods(code))
    if lock:
        # Read afresh: an earlier read in this transaction may predate another's commit.
        write_now(session)
        query = query.with_for_update().execution_options(populate_existing=True)
    org = session.scalars(query).first()
    if lock:
        note_holding(session)
    if org is None:
        shown = clean_ods(code) or repr(code)
        raise RuleViolation(
            "unknown_organisation", f"There is no organisation {shown} in the directory."
        )
    return org


def hold_person(session: Session, email: str, *, exclusive: bool) -> Person | None:
    """The person, read afresh and held to the end of the transaction: shared by a grant
    (after its organisation), exclusive by a deactivation. On PostgreSQL a grant racing a
    deactivation then either sees the person inactive and is refused, or is seen, and
    ended, by it; never an inactive person left holding an open role."""
    write_now(session)
    person = session.scalars(
        select(Person)
        .where(Person.email == email)
        .with_for_update(read=not exclusive)
        .execution_options(populate_existing=True)
    ).first()
    note_holding(session)  # once the transaction has begun, with the query
    return person


def _require_person(session: Session, email: str) -> Person:
    person = get_person(session, email)
    if person is None:
        raise RuleViolation(
            "unknown_person", f"There is no person with the email address {email} in the directory."
        )
    return person


def _holdings(session: Session, person: Person) -> list[Holding]:
    rows = session.execute(
        select(Organisation.code, RoleAssignment.role)
        .join(Organisation, RoleAssignment.organisation_id == Organisation.id)
        .where(RoleAssignment.person_id == person.id, RoleAssignment.ended_at.is_(None))
    ).all()
    return [Holding(code, role) for code, role in rows]


def _open_assignment(
    session: Session, org: Organisation, person: Person, role: str
) -> RoleAssignment | None:
    return session.scalars(
        select(RoleAssignment).where(
            RoleAssignment.organisation_id == org.id,
            RoleAssignment.person_id == person.id,
            RoleAssignment.role == role,
            RoleAssignment.ended_at.is_(None),
        )
    ).first()


def _check_grant(
    session: Session,
    *,
    org_code: str,
    email: str,
    role: str,
    by_admin: str | None,
    lock: bool,
) -> tuple[Organisation, str, str, Person | None]:
    """Every rule a grant must pass; returns (org, canonical role, email, existing person)."""
    canonical = require_role(role)
    org = _require_org(session, org_code, lock=lock)
    label = org_label(org.type, org.code)
    require_open(label, org.status)
    require_service_fits(canonical, org.type, label)
    address = require_email(email)
    person = (
        hold_person(session, address, exclusive=False) if lock else get_person(session, address)
    )
    if person is not None:
        require_active(address, person.active)
        held = _open_assignment(session, org, person, canonical) is not None
        require_not_held(address, canonical, label, held)
    if by_admin is not None:
        assigner_email = require_email(by_admin)
        assigner = _require_person(session, assigner_email)
        require_active(assigner_email, assigner.active, assigning=True)
        check_assigner(
            assigner=assigner_email,
            role=canonical,
            org_code=org.code,
            label=label,
            holdings=_holdings(session, assigner),
        )
    holders = [p.email for p in _holders(session, org, canonical)]
    check_capacity(role=canonical, label=label, holders=holders)
    return org, canonical, address, person


def check_grant(
    session: Session, *, org_code: str, email: str, role: str, by_admin: str | None = None
) -> None:
    """Raise RuleViolation if granting `role` would break a rule; writes nothing."""
    _check_grant(session, org_code=org_code, email=email, role=role, by_admin=by_admin, lock=False)


# --------------------------------------------------------------------------- changes


def _person_for(
    session: Session,
    person: Person | None,
    email: str,
    name: str,
    actor: str,
    reason: str,
    now: datetime,
) -> Person:
    """The existing person, or a new one recorded as added."""
    if person is not None:
        return person
    tidy = " ".join((name or "").split()) or email
    person = Person(email=email, name=tidy, active=True, created_at=now)
    session.add(person)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="person_added",
        reason=reason,
        person_email=email,
        detail={"name": tidy},
        now=now,
    )
    return person


def _assign(
    session: Session,
    org: Organisation,
    person: Person,
    role: str,
    actor: str,
    reason: str,
    now: datetime,
    feed_action: str = GRANT,
) -> RoleAssignment:
    assignment = RoleAssignment(
        person=person,
        organisation=org,
        service=str(service_of(role)),
        role=role,
        granted_by=actor,
        granted_at=now,
        grant_reason=reason,
    )
    session.add(assignment)
    record_event(
        session,
        actor=actor,
        action="role_granted",
        reason=reason,
        organisation_code=org.code,
        person_email=person.email,
        detail={"role": role, "service": assignment.service},
        now=now,
    )
    # Every role row granted here is handed on, in this transaction (the change feed).
    record_role_change(session, assignment, action=feed_action, actor=actor, reason=reason, now=now)
    return assignment


def _end(
    session: Session,
    assignment: RoleAssignment,
    actor: str,
    reason: str,
    now: datetime,
    action: str = "role_ended",
) -> None:
    assignment.ended_at = now
    assignment.ended_by = actor
    assignment.end_reason = reason
    record_event(
        session,
        actor=actor,
        action=action,
        reason=reason,
        organisation_code=assignment.organisation.code,
        person_email=assignment.person.email,
        detail={"role": assignment.role, "service": assignment.service},
        now=now,
    )
    record_role_change(session, assignment, action=REVOKE, actor=actor, reason=reason, now=now)


def grant_role(
    session: Session,
    *,
    org_code: str,
    email: str,
    name: str,
    role: str,
    actor: str,
    reason: str,
    by_admin: str | None = None,
    now: datetime | None = None,
) -> Change:
    """Give `email` the role at the organisation, creating the person if new.

    `by_admin` is the address of the admin assigning (R3, R4 apply); None means PCSE.
    Granting the Main Contact while one exists is refused: use set_main_contact.
    """
    now = now or utcnow()
    org, canonical, address, person = _check_grant(
        session, org_code=org_code, email=email, role=role, by_admin=by_admin, lock=True
    )
    person = _person_for(session, person, address, name, actor, reason, now)
    assignment = _assign(session, org, person, canonical, actor, reason, now)
    session.flush()
    return Change(assignments=[assignment])


def _warn_if_last(session: Session, assignment: RoleAssignment) -> list[str]:
    org = assignment.organisation
    remaining = len(_open_assignments(session, org, assignment.role))
    warning = last_admin_warning(
        role=assignment.role, label=org_label(org.type, org.code), remaining=remaining
    )
    return [warning] if warning else []


def revoke_role(
    session: Session,
    *,
    org_code: str,
    email: str,
    role: str,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Change:
    """End the person's role at the organisation; warn when the last admin goes (R7)."""
    now = now or utcnow()
    canonical = require_role(role)
    org = _require_org(session, org_code, lock=True)
    address = require_email(email)
    person = get_person(session, address)
    assignment = _open_assignment(session, org, person, canonical) if person else None
    require_held(address, canonical, org_label(org.type, org.code), assignment is not None)
    assert assignment is not None  # require_held refused otherwise
    _end(session, assignment, actor, reason, now)
    session.flush()
    return Change(assignments=[assignment], warnings=_warn_if_last(session, assignment))


def set_main_contact(
    session: Session,
    *,
    org_code: str,
    email: str,
    name: str,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Change:
    """Make `email` the organisation's one Main Contact, ending the old one's role (R2).

    Change.replaced is the previous Main Contact, who is to be told.
    """
    now = now or utcnow()
    role = main_contact_role()
    org = _require_org(session, org_code, lock=True)
    label = org_label(org.type, org.code)
    require_open(label, org.status)
    require_service_fits(role, org.type, label)
    address = require_email(email)
    person = hold_person(session, address, exclusive=False)
    if person is not None:
        require_active(address, person.active)
    current = _open_assignments(session, org, role)
    if person is not None and any(a.person_id == person.id for a in current):
        require_not_held(address, role, label, True)
    change = Change()
    for old in current:
        _end(session, old, actor, f"Replaced as Main Contact by {address}: {reason}", now)
        change.assignments.append(old)
        change.replaced = old.person
    person = _person_for(session, person, address, name, actor, reason, now)
    session.flush()
    new = _assign(session, org, person, role, actor, reason, now, MAIN_CONTACT_CHANGE)
    change.assignments.insert(0, new)
    session.flush()
    return change


def lock_organisations(session: Session, which: ColumnElement[bool]) -> None:
    """Hold these organisations to the end of the transaction, in the order of their ids:
    every holder of several takes them so, and after any case it holds
    (workflow.cases.hold_case), so that no two wait on each other."""
    write_now(session)
    session.execute(
        select(Organisation.id).where(which).order_by(Organisation.id).with_for_update()
    )
    note_holding(session)


def deactivate_person(
    session: Session, *, email: str, actor: str, reason: str, now: datetime | None = None
) -> Change:
    """Remove the person's access: end every role, keep the history (R8); warn per R7."""
    now = now or utcnow()
    address = require_email(email)
    person = _require_person(session, address)
    require_active(address, person.active)
    change = Change()
    # Lock the organisations concerned (in a fixed order) so R7's count is not raced, then
    # the person, as a grant does (organisation, then person). A grant that held the person
    # first has committed once the person is held here: its role is read then. The person is
    # held in a savepoint, so that if such a role is at an organisation not locked yet, the
    # savepoint's rollback gives the person back (PostgreSQL frees a savepoint's locks) and
    # that organisation is locked first, never while the person is held.
    write_now(session)
    open_roles = roles_of(session, address)
    locked: set[int] = set()
    while True:
        wanted = {a.organisation_id for a in open_roles} - locked
        if wanted:
            lock_organisations(session, Organisation.id.in_(wanted))
        locked |= wanted
        saved = session.begin_nested()
        person = hold_person(session, address, exclusive=True) or person
        open_roles = roles_of(session, address)
        if {a.organisation_id for a in open_roles} <= locked:
            saved.commit()
            break
        saved.rollback()
    require_active(address, person.active)
    for assignment in open_roles:
        _end(session, assignment, actor, f"Account deactivated: {reason}", now)
        change.assignments.append(assignment)
    person.active = False
    person.deactivated_at = now
    record_event(
        session,
        actor=actor,
        action="person_deactivated",
        reason=reason,
        person_email=address,
        detail={"roles_ended": [[a.organisation.code, a.role] for a in open_roles]},
        now=now,
    )
    session.flush()
    for assignment in open_roles:
        change.warnings.extend(_warn_if_last(session, assignment))
    return change


def reactivate_person(
    session: Session, *, email: str, actor: str, reason: str, now: datetime | None = None
) -> Person:
    """Allow a deactivated person to be granted roles again (their old roles stay ended)."""
    now = now or utcnow()
    address = require_email(email)
    person = _require_person(session, address)
    if person.active:
        raise RuleViolation("already_held", f"{address} is already active.")
    person.active = True
    person.deactivated_at = None
    record_event(
        session,
        actor=actor,
        action="person_reactivated",
        reason=reason,
        person_email=address,
        now=now,
    )
    session.flush()
    return person


def amend_person(
    session: Session,
    *,
    email: str,
    actor: str,
    reason: str,
    name: str | None = None,
    new_email: str | None = None,
    now: datetime | None = None,
) -> Person:
    """Change a person's name or email address, recording before and after (R8)."""
    address = require_email(email)
    person = _require_person(session, address)
    before = {"name": person.name, "email": person.email}
    if new_email is not None:
        replacement = require_email(new_email)
        if replacement != person.email and get_person(session, replacement) is not None:
            raise RuleViolation(
                "email_taken",
                f"{replacement} already belongs to another person in the directory.",
            )
        person.email = replacement
    if name is not None and " ".join(name.split()):
        person.name = " ".join(name.split())
    after = {"name": person.name, "email": person.email}
    if after != before:
        record_event(
            session,
            actor=actor,
            action="person_amended",
            reason=reason,
            person_email=person.email,
            detail={"before": before, "after": after},
            now=now,
        )
    session.flush()
    return person
