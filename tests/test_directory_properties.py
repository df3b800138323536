"""Random sequences of directory operations never break R1 or R2.

A Hypothesis state machine grants, revokes, deactivates and sets main contacts at random
on a real SQLite database. After every step it reads the database and checks that no
organisation has more than four admins of a capped service or more than one Main Contact,
and that each operation succeeded exactly when a simple model of the rules says it should.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from core.catalogue import (
    ADMIN_CAPPED_SERVICES,
    CATALOGUE,
    Service,
    admin_role,
    service_of,
)
from core.db import Database
from workflow.directory import (
    RuleViolation,
    deactivate_person,
    grant_role,
    reactivate_person,
    revoke_role,
    set_main_contact,
)
from workflow.models import Organisation, Person, RoleAssignment

ORGS = ("A81001", "A81002", "OC1234")  # two GP practices and an optical contractor
ORG_TYPES = {"A81001": "gp_practice", "A81002": "gp_practice", "OC1234": "optical"}
PEOPLE = tuple(f"p{n}@nhs.net" for n in range(6))
MAIN_CONTACT = admin_role(Service.MAIN_CONTACT)
ROLES = (*(admin_role(s) for s in ADMIN_CAPPED_SERVICES), MAIN_CONTACT, "Claims Admin")


class DirectoryMachine(RuleBasedStateMachine):
    template: Path  # set by the test
    # Refusal codes seen across all runs, to show the edges were reached.
    seen: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pcse-prop-")
        path = Path(self.folder) / "pcse.sqlite3"
        shutil.copyfile(self.template, path)
        self.db = Database(f"sqlite:///{path}")
        with self.db.transaction() as session:
            session.add_all(
                [Organisation(code=c, name=c, type=ORG_TYPES[c], icb_code="QHM") for c in ORGS]
            )
        # The model: who holds what, and who is deactivated.
        self.held: set[tuple[str, str, str]] = set()
        self.inactive: set[str] = set()

    def teardown(self) -> None:
        self.db.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _holders(self, org: str, role: str) -> set[str]:
        return {e for o, r, e in self.held if (o, r) == (org, role)}

    def _expected_grant_error(self, org: str, email: str, role: str) -> str | None:
        if ORG_TYPES[org] not in CATALOGUE[service_of(role)].org_types:
            return "wrong_organisation_type"
        if email in self.inactive:
            return "inactive_person"
        if (org, role, email) in self.held:
            return "already_held"
        if role == MAIN_CONTACT and self._holders(org, role):
            return "second_main_contact"
        service = next((s for s in ADMIN_CAPPED_SERVICES if admin_role(s) == role), None)
        if service and len(self._holders(org, role)) >= CATALOGUE[service].max_admins:
            return "admin_limit"
        return None

    @rule(org=st.sampled_from(ORGS), email=st.sampled_from(PEOPLE), role=st.sampled_from(ROLES))
    def grant(self, org: str, email: str, role: str) -> None:
        expected = self._expected_grant_error(org, email, role)
        try:
            with self.db.transaction() as session:
                grant_role(
                    session,
                    org_code=org,
                    email=email,
                    name=email,
                    role=role,
                    actor="prop",
                    reason="random grant",
                )
        except RuleViolation as refused:
            assert refused.code == expected, str(refused)
            self.seen[refused.code] += 1
            return
        assert expected is None, f"granted although the model expected {expected}"
        self.held.add((org, role, email))

    @rule()
    def add_another_gpp_admin(self) -> None:
        # Steer towards the fifth-admin edge: grant the role to someone who lacks it.
        role = admin_role(Service.GPP)
        lacking = [
            e for e in PEOPLE if e not in self._holders(ORGS[0], role) and e not in self.inactive
        ]
        if lacking:
            self.grant(ORGS[0], lacking[0], role)

    @rule(org=st.sampled_from(ORGS), email=st.sampled_from(PEOPLE))
    def grant_main_contact(self, org: str, email: str) -> None:
        # Granting (not setting) a Main Contact: refused whenever there is one already.
        self.grant(org, email, MAIN_CONTACT)

    @rule(org=st.sampled_from(ORGS), email=st.sampled_from(PEOPLE), role=st.sampled_from(ROLES))
    def revoke(self, org: str, email: str, role: str) -> None:
        expected = None if (org, role, email) in self.held else "not_held"
        try:
            with self.db.transaction() as session:
                change = revoke_role(
                    session,
                    org_code=org,
                    email=email,
                    role=role,
                    actor="prop",
                    reason="random revoke",
                )
        except RuleViolation as refused:
            assert refused.code == expected, str(refused)
            self.seen[refused.code] += 1
            return
        assert expected is None
        self.held.discard((org, role, email))
        last = role != "Claims Admin" and not self._holders(org, role)
        assert bool(change.warnings) == last

    @rule(org=st.sampled_from(ORGS), email=st.sampled_from(PEOPLE))
    def set_main(self, org: str, email: str) -> None:
        current = self._holders(org, MAIN_CONTACT)
        if email in self.inactive:
            expected = "inactive_person"
        elif email in current:
            expected = "already_held"
        else:
            expected = None
        try:
            with self.db.transaction() as session:
                change = set_main_contact(
                    session,
                    org_code=org,
                    email=email,
                    name=email,
                    actor="prop",
                    reason="random main contact",
                )
                replaced = change.replaced.email if change.replaced else None
        except RuleViolation as refused:
            assert refused.code == expected, str(refused)
            self.seen[refused.code] += 1
            return
        assert expected is None
        assert replaced == (next(iter(current)) if current else None)
        self.held -= {(org, MAIN_CONTACT, e) for e in current}
        self.held.add((org, MAIN_CONTACT, email))

    @rule(email=st.sampled_from(PEOPLE))
    def deactivate(self, email: str) -> None:
        with self.db.transaction() as session:
            known = session.scalar(select(Person).where(Person.email == email)) is not None
        expected = (
            None
            if known and email not in self.inactive
            else ("inactive_person" if known else "unknown_person")
        )
        try:
            with self.db.transaction() as session:
                deactivate_person(session, email=email, actor="prop", reason="random")
        except RuleViolation as refused:
            assert refused.code == expected, str(refused)
            self.seen[refused.code] += 1
            return
        assert expected is None
        self.held = {h for h in self.held if h[2] != email}
        self.inactive.add(email)

    @rule(email=st.sampled_from(PEOPLE))
    def reactivate(self, email: str) -> None:
        if email not in self.inactive:
            return
        with self.db.transaction() as session:
            reactivate_person(session, email=email, actor="prop", reason="back")
        self.inactive.discard(email)

    @invariant()
    def at_most_four_admins_and_one_main_contact(self) -> None:
        with self.db.transaction() as session:
            rows = session.execute(
                select(Organisation.code, RoleAssignment.role, func.count())
                .join(Organisation, RoleAssignment.organisation_id == Organisation.id)
                .where(RoleAssignment.ended_at.is_(None))
                .group_by(Organisation.code, RoleAssignment.role)
            ).all()
            open_rows = session.execute(
                select(Organisation.code, RoleAssignment.role, Person.email)
                .join(Organisation, RoleAssignment.organisation_id == Organisation.id)
                .join(Person, RoleAssignment.person_id == Person.id)
                .where(RoleAssignment.ended_at.is_(None))
            ).all()
        counts = Counter({(org, role): n for org, role, n in rows})
        for service in ADMIN_CAPPED_SERVICES:
            for org in ORGS:
                assert counts[(org, admin_role(service))] <= 4
        for org in ORGS:
            assert counts[(org, MAIN_CONTACT)] <= 1
        assert set(map(tuple, open_rows)) == self.held


def test_rules_hold_under_random_operations(sqlite_template: Path) -> None:
    class Machine(DirectoryMachine):
        template = sqlite_template
        seen: ClassVar[Counter[str]] = Counter()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    assert Machine.seen["admin_limit"] > 0
    assert Machine.seen["second_main_contact"] > 0
