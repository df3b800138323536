"""The directory's operations under PCSE's rules R1-R8, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from core.catalogue import Service
from core.db import Database
from tests.fixtures.databases import empty_postgres
from workflow.directory import (
    RuleViolation,
    admins,
    admins_by_service,
    amend_person,
    check_grant,
    deactivate_person,
    find_ael_contact,
    find_signer,
    get_org,
    get_person,
    grant_role,
    main_contact,
    org_view,
    organisation_name_in,
    reactivate_person,
    revoke_role,
    set_main_contact,
    signers_for,
)
from workflow.facts import gather_facts
from workflow.models import AelContact, DirectoryEvent, Organisation, RoleAssignment, Signer

GPP_ADMIN = "GPP Practice User Administrator"
PL_ADMIN = "PL Organisation Administrator"


def _orgs(session) -> None:
    session.add_all(
        [
            Organisation(
                code="A81001", name="The Densham Surgery", type="gp_practice", icb_code="QHM"
            ),
            Organisation(
                code="A81002", name="Queens Park Medical Centre", type="gp_practice", icb_code="QHM"
            ),
            Organisation(
                code="A81003",
                name="Victoria Medical Practice",
                type="gp_practice",
                icb_code="QHM",
                status="closed",
            ),
            Organisation(code="U12345", name="Stockton PCN", type="pcn", icb_code="QHM"),
        ]
    )
    session.flush()


@pytest.fixture
def db(database):
    with database.transaction() as session:
        _orgs(session)
    return database


def grant(session, email: str, role: str, org: str = "A81001", **kwargs):
    return grant_role(
        session,
        org_code=org,
        email=email,
        name=email.split("@")[0].title(),
        role=role,
        actor="pcse",
        reason="test",
        **kwargs,
    )


def events(session, action: str) -> list[DirectoryEvent]:
    return list(session.scalars(select(DirectoryEvent).where(DirectoryEvent.action == action)))


# --------------------------------------------------------------------------- R1


def test_fourth_admin_allowed_fifth_refused(db) -> None:
    with db.transaction() as session:
        for n in range(3):
            grant(session, f"admin{n}@nhs.net", GPP_ADMIN)
    with db.transaction() as session:
        check_grant(session, org_code="A81001", email="admin3@nhs.net", role=GPP_ADMIN)
        grant(session, "admin3@nhs.net", "gpp practice user administrator")
    with db.transaction() as session, pytest.raises(RuleViolation) as refused:
        grant(session, "admin4@nhs.net", GPP_ADMIN)
    assert refused.value.code == "admin_limit"
    assert str(refused.value) == (
        "Practice A81001 already has 4 GPP Practice User Administrators, the most allowed; "
        "end one of their roles first."
    )
    with db.transaction() as session:
        assert len(admins(session, "A81001", Service.GPP)) == 4
        assert get_person(session, "admin4@nhs.net") is None


def test_limit_is_per_service_and_per_organisation(db) -> None:
    with db.transaction() as session:
        for n in range(4):
            grant(session, f"admin{n}@nhs.net", GPP_ADMIN)
        # The same people may be PL admins too, and GPP admins elsewhere.
        grant(session, "admin0@nhs.net", PL_ADMIN)
        grant(session, "admin5@nhs.net", GPP_ADMIN, org="A81002")
        with pytest.raises(RuleViolation, match="already has 4") as refused:
            check_grant(session, org_code="A81001", email="x@nhs.net", role=GPP_ADMIN)
        assert refused.value.code == "admin_limit"


def test_ending_an_admin_role_frees_a_place(db) -> None:
    with db.transaction() as session:
        for n in range(4):
            grant(session, f"admin{n}@nhs.net", GPP_ADMIN)
        revoke_role(
            session,
            org_code="A81001",
            email="admin0@nhs.net",
            role=GPP_ADMIN,
            actor="pcse",
            reason="left the practice",
        )
        grant(session, "admin4@nhs.net", GPP_ADMIN)
        assert {p.email for p in admins(session, "A81001", Service.GPP)} == {
            "admin1@nhs.net",
            "admin2@nhs.net",
            "admin3@nhs.net",
            "admin4@nhs.net",
        }


def test_pcn_user_admins_have_no_limit(db) -> None:
    with db.transaction() as session:
        for n in range(6):
            grant(session, f"pcn{n}@nhs.net", "PCN User Admin", org="U12345")
        assert len(admins(session, "U12345", Service.PCN)) == 6


# --------------------------------------------------------------------------- R2, R3


def test_second_main_contact_refused_by_grant(db) -> None:
    with db.transaction() as session:
        grant(session, "first@nhs.net", "Main Contact")
    with db.transaction() as session, pytest.raises(RuleViolation) as refused:
        grant(session, "second@nhs.net", "main contact")
    assert refused.value.code == "second_main_contact"
    assert "already has a Main Contact (first@nhs.net)" in str(refused.value)
    with db.transaction() as session:
        assert main_contact(session, "A81001").email == "first@nhs.net"


def test_set_main_contact_replaces_and_ends_the_old_one(db) -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    with db.transaction() as session:
        set_main_contact(
            session,
            org_code="A81001",
            email="first@nhs.net",
            name="First",
            actor="pcse",
            reason="set up",
        )
    with db.transaction() as session:
        change = set_main_contact(
            session,
            org_code="a81001 ",
            email="Second@NHS.net",
            name="Second",
            actor="caseworker@nhs.net",
            reason="PCSE-2026-000001",
            now=when,
        )
        assert change.replaced is not None and change.replaced.email == "first@nhs.net"
        assert [a.person.email for a in change.assignments] == ["second@nhs.net", "first@nhs.net"]
    with db.transaction() as session:
        assert main_contact(session, "A81001").email == "second@nhs.net"
        old = session.scalars(
            select(RoleAssignment).where(
                RoleAssignment.role == "Main Contact", RoleAssignment.ended_at.is_not(None)
            )
        ).one()
        assert old.person.email == "first@nhs.net"
        assert old.ended_by == "caseworker@nhs.net"
        assert old.ended_at.replace(tzinfo=UTC) == when
        assert "Replaced as Main Contact by second@nhs.net" in old.end_reason
        # The old holder is still a user of the organisation, with no role now.
        view = org_view(session, "A81001")
        assert {u["email"]: u["roles"] for u in view["users"]} == {
            "first@nhs.net": [],
            "second@nhs.net": ["Main Contact"],
        }


def test_set_main_contact_twice_for_the_same_person_refused(db) -> None:
    with db.transaction() as session:
        set_main_contact(
            session,
            org_code="A81001",
            email="first@nhs.net",
            name="First",
            actor="pcse",
            reason="set up",
        )
        with pytest.raises(RuleViolation) as refused:
            set_main_contact(
                session,
                org_code="A81001",
                email="first@nhs.net",
                name="First",
                actor="pcse",
                reason="again",
            )
        assert refused.value.code == "already_held"


def test_main_contact_cannot_assign_main_contact(db) -> None:
    with db.transaction() as session:
        grant(session, "mc@nhs.net", "Main Contact")
        grant(session, "other@nhs.net", "Main Contact", org="A81002")
        for assigner in ("mc@nhs.net", "other@nhs.net"):
            with pytest.raises(RuleViolation) as refused:
                grant(session, "new@nhs.net", "Main Contact", by_admin=assigner)
            assert refused.value.code == "main_contact_assigns_main_contact"
            assert "only PCSE sets it" in str(refused.value)
        assert main_contact(session, "A81001").email == "mc@nhs.net"


def test_main_contact_assigns_its_own_roles(db) -> None:
    with db.transaction() as session:
        grant(session, "mc@nhs.net", "Main Contact")
        grant(session, "clerk@nhs.net", "Practice Order Entry Clerk", by_admin="MC@nhs.net")
        view = org_view(session, "A81001")
        assert {u["email"]: u["roles"] for u in view["users"]}["clerk@nhs.net"] == [
            "Practice Order Entry Clerk"
        ]


# --------------------------------------------------------------------------- R4


def test_admin_assigns_own_service_roles_and_other_admins(db) -> None:
    with db.transaction() as session:
        grant(session, "gpp@nhs.net", GPP_ADMIN)
        grant(session, "staff@nhs.net", "Claims Admin", by_admin="gpp@nhs.net")
        grant(session, "second@nhs.net", GPP_ADMIN, by_admin="gpp@nhs.net")
        # Admins may give themselves roles.
        grant(session, "gpp@nhs.net", "Statements", by_admin="gpp@nhs.net")
        assert len(admins(session, "A81001", Service.GPP)) == 2


def test_admin_refused_another_services_role(db) -> None:
    with db.transaction() as session:
        grant(session, "gpp@nhs.net", GPP_ADMIN)
        with pytest.raises(RuleViolation) as refused:
            grant(session, "staff@nhs.net", "PL Practice Manager", by_admin="gpp@nhs.net")
        assert refused.value.code == "wrong_service"
        assert "holds GPP Practice User Administrator at Practice A81001" in str(refused.value)
        assert "not its PL Organisation Administrator" in str(refused.value)


def test_admin_refused_in_another_organisation(db) -> None:
    with db.transaction() as session:
        grant(session, "gpp@nhs.net", GPP_ADMIN, org="A81002")
        with pytest.raises(RuleViolation) as refused:
            grant(session, "staff@nhs.net", "Claims Admin", by_admin="gpp@nhs.net")
        assert refused.value.code == "wrong_organisation"
        assert str(refused.value) == (
            "gpp@nhs.net is a GPP Practice User Administrator of A81002, not of Practice "
            "A81001; an admin assigns roles only within its own organisation."
        )


def test_a_role_exists_only_where_its_service_is_used(db) -> None:
    with db.transaction() as session:
        session.add(Organisation(code="QHM", name="The ICB", type="icb", icb_code=None))
        session.flush()
        with pytest.raises(RuleViolation) as refused:
            grant(session, "optom@nhs.net", "User Management (Organisation)")
        assert refused.value.code == "wrong_organisation_type"
        assert str(refused.value) == (
            "Practice A81001 cannot have the role User Management (Organisation): Ophthalmic "
            "Payments is for optical contractors only."
        )
        with pytest.raises(RuleViolation, match="GP practices only"):
            grant(session, "gpp@nhs.net", GPP_ADMIN, org="U12345")
        with pytest.raises(RuleViolation, match="GP practices, PCNs, pharmacies and optical"):
            set_main_contact(
                session, org_code="QHM", email="mc@nhs.net", name="M C", actor="test", reason="test"
            )
        grant(session, "pcn@nhs.net", "PCN User Admin", org="U12345")


def test_assigner_without_any_role_refused(db) -> None:
    with db.transaction() as session:
        grant(session, "staff@nhs.net", "Claims Admin")
        with pytest.raises(RuleViolation) as refused:
            grant(session, "other@nhs.net", "Claims Admin", by_admin="staff@nhs.net")
        assert refused.value.code == "wrong_service"
        with pytest.raises(RuleViolation) as unknown:
            grant(session, "other@nhs.net", "Claims Admin", by_admin="nobody@nhs.net")
        assert unknown.value.code == "unknown_person"


def test_admin_cannot_assign_main_contact(db) -> None:
    with db.transaction() as session:
        grant(session, "gpp@nhs.net", GPP_ADMIN)
        with pytest.raises(RuleViolation) as refused:
            grant(session, "x@nhs.net", "Main Contact", by_admin="gpp@nhs.net")
        assert refused.value.code == "wrong_service"


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"role": "Super Admin"}, "unknown_role"),
        ({"org": "A89999"}, "unknown_organisation"),
        ({"org": "A81003"}, "closed_organisation"),
        ({"email": "not-an-address"}, "invalid_email"),
    ],
)
def test_bad_grants_refused_and_nothing_written(db, kwargs, code) -> None:
    args = {"email": "x@nhs.net", "role": "Claims Admin", "org": "A81001"} | kwargs
    with db.transaction() as session, pytest.raises(RuleViolation) as refused:
        grant(session, args["email"], args["role"], org=args["org"])
    assert refused.value.code == code
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(RoleAssignment)) == 0
        assert session.scalar(select(func.count()).select_from(DirectoryEvent)) == 0


def test_unknown_role_message(db) -> None:
    with db.transaction() as session, pytest.raises(RuleViolation) as refused:
        grant(session, "x@nhs.net", "Super Admin")
    assert str(refused.value) == "There is no PCSE Online role called 'Super Admin'."


def test_role_already_held_refused(db) -> None:
    with db.transaction() as session:
        grant(session, "x@nhs.net", "Claims Admin")
        with pytest.raises(RuleViolation) as refused:
            grant(session, "X@NHS.NET", "claims admin")
        assert refused.value.code == "already_held"


def test_revoking_a_role_not_held_refused(db) -> None:
    with db.transaction() as session:
        grant(session, "x@nhs.net", "Claims Admin")
        with pytest.raises(RuleViolation) as refused:
            revoke_role(
                session,
                org_code="A81001",
                email="x@nhs.net",
                role="Statements",
                actor="pcse",
                reason="test",
            )
        assert refused.value.code == "not_held"
        with pytest.raises(RuleViolation) as nobody:
            revoke_role(
                session,
                org_code="A81001",
                email="y@nhs.net",
                role="Statements",
                actor="pcse",
                reason="test",
            )
        assert nobody.value.code == "not_held"


# --------------------------------------------------------------------------- history, R7, R8


def test_regranting_an_ended_role_keeps_both_rows(db) -> None:
    with db.transaction() as session:
        grant(session, "x@nhs.net", "Claims Admin")
        revoke_role(
            session,
            org_code="A81001",
            email="x@nhs.net",
            role="Claims Admin",
            actor="pcse",
            reason="left",
        )
        grant(session, "x@nhs.net", "Claims Admin")
    with db.transaction() as session:
        rows = session.scalars(select(RoleAssignment).order_by(RoleAssignment.id)).all()
        assert [r.ended_at is None for r in rows] == [False, True]
        assert [
            e.action for e in session.scalars(select(DirectoryEvent).order_by(DirectoryEvent.id))
        ] == ["person_added", "role_granted", "role_ended", "role_granted"]


def test_every_change_records_who_when_what_why(db) -> None:
    when = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
    with db.transaction() as session:
        grant_role(
            session,
            org_code="A81001",
            email="x@nhs.net",
            name="Jo X",
            role="Claims Admin",
            actor="caseworker@nhs.net",
            reason="PCSE-2026-000007",
            now=when,
        )
    with db.transaction() as session:
        (event,) = events(session, "role_granted")
        assert event.actor == "caseworker@nhs.net"
        assert event.at.replace(tzinfo=UTC) == when
        assert (event.organisation_code, event.person_email) == ("A81001", "x@nhs.net")
        assert event.detail == {"role": "Claims Admin", "service": "gpp"}
        assert event.reason == "PCSE-2026-000007"
        assignment = session.scalars(select(RoleAssignment)).one()
        assert (assignment.granted_by, assignment.grant_reason) == (
            "caseworker@nhs.net",
            "PCSE-2026-000007",
        )


def test_revoking_the_last_admin_warns(db) -> None:
    with db.transaction() as session:
        grant(session, "a@nhs.net", GPP_ADMIN)
        grant(session, "b@nhs.net", GPP_ADMIN)
        first = revoke_role(
            session,
            org_code="A81001",
            email="a@nhs.net",
            role=GPP_ADMIN,
            actor="pcse",
            reason="left",
        )
        assert first.warnings == []
        last = revoke_role(
            session,
            org_code="A81001",
            email="b@nhs.net",
            role=GPP_ADMIN,
            actor="pcse",
            reason="left",
        )
        assert last.warnings == [
            "Practice A81001 now has no GPP Practice User Administrator, so it has lost user "
            "management for GP Payments and Pensions; next time hand the role on before "
            "removing the last one."
        ]
        assert admins(session, "A81001", Service.GPP) == []


def test_revoking_an_ordinary_role_never_warns(db) -> None:
    with db.transaction() as session:
        grant(session, "a@nhs.net", "Claims Admin")
        change = revoke_role(
            session,
            org_code="A81001",
            email="a@nhs.net",
            role="Claims Admin",
            actor="pcse",
            reason="left",
        )
        assert change.warnings == []


def test_deactivation_ends_every_role_keeps_history_and_warns(db) -> None:
    with db.transaction() as session:
        grant(session, "a@nhs.net", GPP_ADMIN)
        grant(session, "a@nhs.net", "Claims Admin")
        grant(session, "a@nhs.net", PL_ADMIN, org="A81002")
        grant(session, "b@nhs.net", PL_ADMIN, org="A81002")
    with db.transaction() as session:
        change = deactivate_person(session, email="a@nhs.net", actor="pcse", reason="retired")
        assert len(change.assignments) == 3
        # Only GPP at A81001 lost its last admin; A81002 still has b as PL admin.
        assert len(change.warnings) == 1
        assert change.warnings[0].startswith("Practice A81001 now has no GPP")
    with db.transaction() as session:
        person = get_person(session, "a@nhs.net")
        assert person is not None and not person.active and person.deactivated_at
        rows = session.scalars(
            select(RoleAssignment).where(RoleAssignment.person_id == person.id)
        ).all()
        assert len(rows) == 3 and all(r.ended_at is not None for r in rows)
        assert all(r.end_reason == "Account deactivated: retired" for r in rows)
        (event,) = events(session, "person_deactivated")
        assert event.reason == "retired"
        assert sorted(map(tuple, event.detail["roles_ended"])) == [
            ("A81001", "Claims Admin"),
            ("A81001", GPP_ADMIN),
            ("A81002", PL_ADMIN),
        ]
        assert {
            u["email"]: (u["active"], u["roles"]) for u in org_view(session, "A81001")["users"]
        } == {"a@nhs.net": (False, [])}


def test_deactivated_person_cannot_be_granted_or_assign_until_reactivated(db) -> None:
    with db.transaction() as session:
        grant(session, "a@nhs.net", GPP_ADMIN)
        deactivate_person(session, email="a@nhs.net", actor="pcse", reason="left")
        with pytest.raises(RuleViolation) as refused:
            grant(session, "a@nhs.net", "Claims Admin")
        assert refused.value.code == "inactive_person"
        with pytest.raises(RuleViolation) as assigning:
            grant(session, "b@nhs.net", "Claims Admin", by_admin="a@nhs.net")
        assert assigning.value.code == "inactive_person"
        with pytest.raises(RuleViolation) as twice:
            deactivate_person(session, email="a@nhs.net", actor="pcse", reason="again")
        assert twice.value.code == "inactive_person"
        reactivate_person(session, email="a@nhs.net", actor="pcse", reason="back")
        grant(session, "a@nhs.net", "Claims Admin")
        assert [e.action for e in events(session, "person_reactivated")] == ["person_reactivated"]


def test_amend_person_records_before_and_after(db) -> None:
    with db.transaction() as session:
        grant(session, "old@nhs.net", "Claims Admin")
        grant(session, "taken@nhs.net", "Statements")
        with pytest.raises(RuleViolation) as taken:
            amend_person(
                session, email="old@nhs.net", actor="pcse", reason="typo", new_email="taken@nhs.net"
            )
        assert taken.value.code == "email_taken"
        person = amend_person(
            session,
            email="old@nhs.net",
            actor="pcse",
            reason="married",
            name="Jo  Smith",
            new_email="New@nhs.net",
        )
        assert (person.name, person.email) == ("Jo Smith", "new@nhs.net")
        (event,) = events(session, "person_amended")
        assert event.detail == {
            "before": {"name": "Old", "email": "old@nhs.net"},
            "after": {"name": "Jo Smith", "email": "new@nhs.net"},
        }
        assert get_person(session, "old@nhs.net") is None
        with pytest.raises(RuleViolation) as missing:
            amend_person(session, email="old@nhs.net", actor="pcse", reason="x", name="Y")
        assert missing.value.code == "unknown_person"


# --------------------------------------------------------------------------- queries


def test_org_view_is_the_design_document(db) -> None:
    with db.transaction() as session:
        grant(session, "b@nhs.net", "Claims Admin")
        grant(session, "b@nhs.net", GPP_ADMIN)
        grant(session, "a@nhs.net", "Main Contact")
        assert org_view(session, " a81001") == {
            "code": "A81001",
            "name": "The Densham Surgery",
            "type": "gp_practice",
            "icb_code": "QHM",
            "status": "active",
            "ods_refreshed_at": None,
            "users": [
                {"name": "A", "email": "a@nhs.net", "active": True, "roles": ["Main Contact"]},
                {
                    "name": "B",
                    "email": "b@nhs.net",
                    "active": True,
                    "roles": [GPP_ADMIN, "Claims Admin"],
                },
            ],
        }
        with pytest.raises(RuleViolation) as missing:
            org_view(session, "A89999")
        assert missing.value.code == "unknown_organisation"


def test_signers_and_ael_lookups(db) -> None:
    with db.transaction() as session:
        org = get_org(session, "a81001")
        other = get_org(session, "A81002")
        session.add_all(
            [
                Signer(
                    organisation=org,
                    name="Dr Zed",
                    email="zed@nhs.net",
                    capacity="company_director",
                ),
                Signer(organisation=org, name="Dr Gee", email="gee@nhs.net", capacity="gp_partner"),
                Signer(
                    organisation=org,
                    name="Old",
                    email="old@nhs.net",
                    capacity="gp_partner",
                    active=False,
                ),
                Signer(
                    organisation=other,
                    name="Elsewhere",
                    email="else@nhs.net",
                    capacity="gp_partner",
                ),
                AelContact(
                    icb_code="QHM",
                    name="Ann",
                    email="ann@nhs.net",
                    ael_role="GP Payments – General",
                ),
                AelContact(icb_code="QHM", name="Ret", email="ret@nhs.net", ael_role="Retirements"),
            ]
        )
    with db.transaction() as session:
        assert [s.email for s in signers_for(session, "A81001")] == ["gee@nhs.net", "zed@nhs.net"]
        assert find_signer(session, "A81001", "Gee@NHS.net").name == "Dr Gee"
        assert find_signer(session, "A81001", "old@nhs.net") is None
        assert find_signer(session, "A81001", "else@nhs.net") is None
        assert find_ael_contact(session, "qhm", "ann@nhs.net").name == "Ann"
        assert find_ael_contact(session, "QHM", "ret@nhs.net") is None
        assert find_ael_contact(session, "QHM", "ret@nhs.net", "Retirements") is not None
        assert find_ael_contact(session, "Q99", "ann@nhs.net") is None
        assert signers_for(session, "A89999") == []
        assert admins(session, "A89999", Service.GPP) == []
        assert main_contact(session, "A89999") is None


@pytest.mark.postgres
def test_concurrent_grants_never_exceed_the_limit(pg_url) -> None:
    """Six workers race for the last admin place on PostgreSQL: one wins, five are refused."""
    empty_postgres(pg_url)
    database = Database(pg_url)
    with database.transaction() as session:
        _orgs(session)
        for n in range(3):
            grant(session, f"admin{n}@nhs.net", GPP_ADMIN)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            with database.transaction() as session:
                grant(session, f"racer{n}@nhs.net", GPP_ADMIN)
            outcomes.append("granted")
        except RuleViolation as refused:
            outcomes.append(refused.code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.transaction() as session:
        assert len(admins(session, "A81001", Service.GPP)) == 4
    database.dispose()
    assert sorted(outcomes) == ["admin_limit"] * 5 + ["granted"]


def test_an_organisation_found_missing_is_not_asked_for_again_until_it_is_added(
    database: Database,
) -> None:
    with database.transaction() as session:
        assert get_org(session, "B82005") is None
        asked: list[str] = []
        listener = lambda *args: asked.append(args[2])  # noqa: E731
        event.listen(database.engine, "before_cursor_execute", listener)
        try:
            assert organisation_name_in(session, "B82005") is None
            assert asked == []  # answered from what get_org found
            session.add(Organisation(code="B82005", name="Bankside Surgery", type="gp_practice"))
            session.flush()
            assert organisation_name_in(session, "B82005") == "Bankside Surgery"
        finally:
            event.remove(database.engine, "before_cursor_execute", listener)


def test_admins_of_several_services_in_one_query_match_each_asked_alone(db) -> None:
    services = (Service.GPP, Service.PL, Service.MAIN_CONTACT, Service.PCN)
    with db.transaction() as session:
        for email in ("a@nhs.net", "b@nhs.net", "c@nhs.net"):
            grant(session, email, "GPP Practice User Administrator")
        grant(session, "d@nhs.net", "PL Organisation Administrator")
        grant(session, "e@nhs.net", "PL Organisation Administrator", org="A81002")
        set_main_contact(
            session, org_code="A81001", email="m@nhs.net", name="M", actor="pcse", reason="t"
        )
        revoke_role(
            session,
            org_code="A81001",
            email="b@nhs.net",
            role="GPP Practice User Administrator",
            actor="pcse",
            reason="left",
        )
        deactivate_person(session, email="c@nhs.net", actor="pcse", reason="left the NHS")
    with db.transaction() as session:
        together = admins_by_service(session, "A81001", services)
        alone = {s: admins(session, "A81001", s) for s in services}
        assert together == alone
        assert [p.email for p in together[Service.GPP]] == ["a@nhs.net"]
        assert [p.email for p in together[Service.MAIN_CONTACT]] == ["m@nhs.net"]
        assert admins_by_service(session, "Z99999", services) == {s: [] for s in services}


def statements_during(database: Database) -> tuple[list[str], Callable[[], None]]:
    """The SQL sent to the database from now on, and how to stop listening."""
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", note)
    return seen, lambda: event.remove(database.engine, "before_cursor_execute", note)


def test_an_organisation_is_read_once_by_a_decision_and_afresh_after_a_commit(db) -> None:
    with db.transaction() as session:
        grant(session, "a@nhs.net", "GPP Practice User Administrator")
    with db.transaction() as session:
        seen, stop = statements_during(db)
        try:
            gather_facts(
                session,
                "gpp_admin_form",
                {"organisation_code": "A81001", "new_admin_email": "n@nhs.net"},
            )
            org = get_org(session, "a81001")
        finally:
            stop()
        assert org is not None and org.code == "A81001"
        assert sum("FROM organisations" in sql for sql in seen) == 1
    with db.transaction() as session:
        seen, stop = statements_during(db)
        try:
            assert get_org(session, "A81001") is not None  # expired by the commit: read again
        finally:
            stop()
        assert sum("FROM organisations" in sql for sql in seen) == 1


def test_an_organisation_deleted_or_rolled_back_is_not_handed_out_again(db) -> None:
    with db.transaction() as session:
        org = get_org(session, "A81002")
        assert org is not None
        session.delete(org)
        assert get_org(session, "A81002") is None  # the query flushes the deletion
    with db.transaction() as session:
        assert get_org(session, "A81002") is None
        with session.begin_nested() as savepoint:
            session.add(Organisation(code="B82005", name="Bankside Surgery", type="gp_practice"))
            session.flush()
            assert get_org(session, "B82005") is not None
            savepoint.rollback()
        assert get_org(session, "B82005") is None


def test_a_session_kept_past_a_commit_reads_its_organisation_again(db) -> None:
    # Sessions here do not expire what they hold at a commit: what was read before it is
    # not handed out after it without asking the database.
    with db.sessions() as session:
        with session.begin():
            assert get_org(session, "A81003") is not None
        with db.engine.begin() as conn:
            conn.execute(Organisation.__table__.delete().where(Organisation.code == "A81003"))
        with session.begin():
            assert get_org(session, "A81003") is None
