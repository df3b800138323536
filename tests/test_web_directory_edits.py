"""Editing the directory from its pages: grant and restore a role, signers and AEL contacts,
reactivating a person; each refused in the rules' words; cases listed and linked."""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import select

from core.catalogue import Service
from tests.fixtures.browser import (
    CASEWORKER,
    ICB,
    PRACTICE,
    SUPERVISOR,
    WebClient,
    seed_directory,
    triage_case,
)
from workflow import directory
from workflow.models import ApprovalRequest, DirectoryEvent, RoleAssignment

ORG_PAGE = f"/directory/organisations/{PRACTICE}"
ICB_PAGE = f"/directory/organisations/{ICB}"
GPP_ADMIN = "GPP Practice User Administrator"


def _events(web: WebClient, action: str) -> list[DirectoryEvent]:
    with web.settings.database.transaction() as session:
        rows = session.scalars(select(DirectoryEvent).where(DirectoryEvent.action == action))
        return list(rows)


def _post(web: WebClient, page: str, path: str, data: dict[str, str], follow: bool = True):
    return web.post_form(f"{page}/{path}", data, from_page=page, follow=follow)


def test_grant_a_role_then_a_fifth_admin_is_refused(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    done = _post(
        web,
        ORG_PAGE,
        "grant",
        {"role": GPP_ADMIN, "name": "Nia Patel", "email": "nia.patel@nhs.net", "reason": "Phoned"},
    )
    assert f"Granted {GPP_ADMIN} at {PRACTICE} to Nia Patel (nia.patel@nhs.net)." in done.text
    with web.settings.database.transaction() as session:
        emails = [p.email for p in directory.admins(session, PRACTICE, Service.GPP)]
    assert "nia.patel@nhs.net" in emails
    granted = _events(web, "role_granted")[-1]
    assert granted.actor == SUPERVISOR
    assert granted.reason == "Phoned"
    for n in (3, 4):
        _post(
            web,
            ORG_PAGE,
            "grant",
            {"role": GPP_ADMIN, "name": f"A {n}", "email": f"a{n}@nhs.net", "reason": "x"},
        )
    refused = _post(
        web,
        ORG_PAGE,
        "grant",
        {"role": GPP_ADMIN, "name": "Five", "email": "five@nhs.net", "reason": "x"},
        follow=False,
    )
    assert refused.status_code == 409
    assert "the most allowed" in refused.text
    second_mc = _post(
        web,
        ORG_PAGE,
        "grant",
        {"role": "Main Contact", "name": "Two", "email": "two@nhs.net", "reason": "x"},
        follow=False,
    )
    assert second_mc.status_code == 409 and "already has a Main Contact" in second_mc.text


def test_missing_fields_are_named(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    empty = _post(web, ORG_PAGE, "grant", {"role": "", "email": "", "reason": ""}, follow=False)
    assert empty.status_code == 400
    for message in ("Choose the role to grant", "Enter the email address of the person"):
        assert message in empty.text
    assert 'href="#grant-reason"' in empty.text


def test_restore_an_ended_role(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    with web.settings.database.transaction() as session:
        directory.revoke_role(
            session,
            org_code=PRACTICE,
            email="gill.admin@nhs.net",
            role=GPP_ADMIN,
            actor="someone",
            reason="removed by mistake",
        )
        ended = session.scalars(
            select(RoleAssignment.id).where(RoleAssignment.ended_at.is_not(None))
        ).first()
    page = web.get(ORG_PAGE).text
    assert "Restore an ended role" in page
    done = _post(web, ORG_PAGE, "restore", {"assignment": str(ended), "reason": "Wrong removal"})
    assert f"Restored {GPP_ADMIN} at {PRACTICE} to Gill Admin" in done.text
    with web.settings.database.transaction() as session:
        assert [p.email for p in directory.admins(session, PRACTICE, Service.GPP)] == [
            "gill.admin@nhs.net"
        ]
    assert "Wrong removal" in _events(web, "role_granted")[-1].reason
    again = _post(
        web, ORG_PAGE, "restore", {"assignment": str(ended), "reason": "again"}, follow=False
    )
    assert again.status_code == 409 and "already holds" in again.text


def test_signers_added_changed_removed_and_refused(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    added = _post(
        web,
        ORG_PAGE,
        "signers/add",
        {
            "name": "Dr Ann Lee",
            "email": "ann.lee@nhs.net",
            "capacity": "company_director",
            "reason": "New director",
        },
    )
    assert "Added Dr Ann Lee (ann.lee@nhs.net) as a signer" in added.text
    assert "Dr Ann Lee (Company Director)" in added.text
    twice = _post(
        web,
        ORG_PAGE,
        "signers/add",
        {"name": "Ann", "email": "ann.lee@nhs.net", "capacity": "gp_partner", "reason": "x"},
        follow=False,
    )
    assert twice.status_code == 409 and "already a recorded signer" in twice.text
    changed = _post(
        web,
        ORG_PAGE,
        "signers/change",
        {
            "signer": "ann.lee@nhs.net",
            "name": "",
            "new_email": "ann.lee2@nhs.net",
            "capacity": "",
            "reason": "New address",
        },
    )
    assert "Changed the signer Dr Ann Lee (ann.lee2@nhs.net)" in changed.text
    assert _events(web, "signer_updated")[-1].detail["changed"] == {
        "email": ["ann.lee@nhs.net", "ann.lee2@nhs.net"]
    }
    removed = _post(
        web, ORG_PAGE, "signers/remove", {"signer": "ann.lee2@nhs.net", "reason": "Left"}
    )
    assert "Removed Dr Ann Lee (ann.lee2@nhs.net) as a signer" in removed.text
    assert _events(web, "signer_removed")[-1].reason == "Left"
    at_icb = _post(
        web,
        ICB_PAGE,
        "signers/add",
        {"name": "X", "email": "x@nhs.net", "capacity": "gp_partner", "reason": "x"},
        follow=False,
    )
    assert at_icb.status_code == 409 and "is an ICB" in at_icb.text


def test_ael_contacts_added_changed_removed_and_refused(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    page = web.get(ICB_PAGE).text
    assert "Authorised Email List contacts" in page and "Add a signer" not in page
    stranger = _post(
        web,
        ICB_PAGE,
        "ael/add",
        {
            "name": "Robin Ray",
            "email": "robin.ray@nhs.net",
            "ael_role": "GP Payments – General",
            "requested_by": "stranger@nhs.net",
            "reason": "Asked by email",
        },
        follow=False,
    )
    assert stranger.status_code == 409
    assert "come only from an existing contact for the same role" in stranger.text
    unasked = _post(
        web,
        ICB_PAGE,
        "ael/add",
        {
            "name": "Robin Ray",
            "email": "robin.ray@nhs.net",
            "ael_role": "GP Payments – General",
            "requested_by": "",
            "reason": "Asked by email",
        },
        follow=False,
    )
    assert unasked.status_code == 409 and "Say which AEL contact of ICB" in unasked.text
    added = _post(
        web,
        ICB_PAGE,
        "ael/add",
        {
            "name": "Robin Ray",
            "email": "robin.ray@nhs.net",
            "ael_role": "GP Payments – General",
            "requested_by": "alex.morgan@nhs.net",
            "reason": "Asked by Alex",
        },
    )
    assert f"Added Robin Ray (robin.ray@nhs.net) to the AEL for {ICB}" in added.text
    assert _events(web, "ael_contact_added")[-1].detail["requested_by"] == "alex.morgan@nhs.net"
    key = "robin.ray@nhs.net|GP Payments – General"
    changed = _post(
        web,
        ICB_PAGE,
        "ael/change",
        {
            "contact": key,
            "name": "Robin Rae",
            "new_email": "",
            "requested_by": "",
            "reason": "Typo",
        },
    )
    assert "Changed the AEL contact Robin Rae" in changed.text
    removed = _post(
        web, ICB_PAGE, "ael/remove", {"contact": key, "requested_by": "", "reason": "Left the ICB"}
    )
    assert f"Removed Robin Rae (robin.ray@nhs.net) from the AEL for {ICB}" in removed.text
    gone = _post(
        web, ICB_PAGE, "ael/remove", {"contact": key, "requested_by": "", "reason": "x"}, False
    )
    assert gone.status_code == 409 and "is not an AEL contact" in gone.text


def test_cases_are_listed_and_every_reference_is_a_link(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = triage_case(web.settings.database, web.settings.raw_dir)
    web.sign_in()
    with web.settings.database.transaction() as session:
        directory.grant_role(
            session,
            org_code=PRACTICE,
            email="nia.patel@nhs.net",
            name="Nia Patel",
            role=GPP_ADMIN,
            actor="system",
            reason=ref,
        )
    link = f'<a href="/cases/{ref}">{ref}</a>'
    org_page = web.get(ORG_PAGE).text
    assert 'id="org-cases"' in org_page and link in org_page
    person_page = web.get("/directory/people/nia.patel@nhs.net").text
    assert 'id="person-cases"' in person_page and link in person_page


def test_reactivate_a_person(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    page = "/directory/people/gill.admin@nhs.net"
    web.post_form(f"{page}/deactivate", {"reason": "Left"}, from_page=page)
    empty = web.post_form(f"{page}/reactivate", {"reason": ""}, from_page=page)
    assert empty.status_code == 400 and "Enter why the person is reactivated" in empty.text
    done = web.post_form(f"{page}/reactivate", {"reason": "Came back"}, from_page=page, follow=True)
    assert escape("Reactivated gill.admin@nhs.net") in done.text
    again = web.post_form(f"{page}/reactivate", {"reason": "again"}, from_page=page)
    assert again.status_code == 409 and "already active" in again.text


APPROVER_EDITS = [
    (
        ORG_PAGE,
        "grant",
        {"role": GPP_ADMIN, "name": "Casey", "email": CASEWORKER, "reason": "Myself"},
    ),
    (
        ORG_PAGE,
        "signers/add",
        {"name": "Casey", "email": CASEWORKER, "capacity": "gp_partner", "reason": "Myself"},
    ),
    (
        ORG_PAGE,
        "signers/change",
        {"signer": "priya.shah@nhs.net", "new_email": CASEWORKER, "reason": "Myself"},
    ),
    (
        ICB_PAGE,
        "ael/add",
        {
            "name": "Casey",
            "email": CASEWORKER,
            "ael_role": "GP Payments – General",
            "requested_by": "alex.morgan@nhs.net",
            "reason": "Myself",
        },
    ),
    (
        ICB_PAGE,
        "ael/change",
        {
            "contact": "alex.morgan@nhs.net|GP Payments – General",
            "new_email": CASEWORKER,
            "requested_by": "alex.morgan@nhs.net",
            "reason": "Myself",
        },
    ),
]


def test_only_a_supervisor_makes_approvers_or_grants_roles(web: WebClient) -> None:
    """Else one caseworker could make their own mailbox an approver, ask it, and approve."""
    seed_directory(web.settings.database)
    with web.settings.database.transaction() as session:
        directory.revoke_role(
            session,
            org_code=PRACTICE,
            email="gill.admin@nhs.net",
            role=GPP_ADMIN,
            actor="seed",
            reason="Left",
        )
        ended = session.scalars(
            select(RoleAssignment.id).where(RoleAssignment.ended_at.is_not(None))
        ).one()
    web.sign_in()
    before = len(_events(web, "role_granted"))
    edits = [*APPROVER_EDITS, (ORG_PAGE, "restore", {"assignment": str(ended), "reason": "x"})]
    for page, path, data in edits:
        refused = _post(web, page, path, data, follow=False)
        assert refused.status_code == 403, path
        assert "Only a supervisor can grant or restore a role" in refused.text, path
        assert "ask a supervisor to make this change" in refused.text, path
    assert len(_events(web, "role_granted")) == before
    for action in ("signer_added", "signer_updated", "ael_contact_added", "ael_contact_updated"):
        assert _events(web, action) == [], action
    renamed = _post(
        web,
        ORG_PAGE,
        "signers/change",
        {"signer": "priya.shah@nhs.net", "name": "Dr Priya Shah-Lee", "reason": "Married"},
    )
    assert "Changed the signer Dr Priya Shah-Lee (priya.shah@nhs.net)" in renamed.text


def test_an_approver_is_not_asked_by_the_caseworker_who_recorded_them(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = triage_case(web.settings.database, web.settings.raw_dir)
    web.sign_in(SUPERVISOR)
    _post(
        web,
        ORG_PAGE,
        "signers/add",
        {"name": "Sam", "email": SUPERVISOR, "capacity": "gp_partner", "reason": "Phoned"},
    )
    case_page = f"/cases/{ref}"
    ask = {"approver_email": SUPERVISOR}
    own = web.post_form(f"{case_page}/actions/send_approval_request", ask, from_page=case_page)
    assert own.status_code == 409
    assert escape("another caseworker must send this approval request") in own.text
    with web.settings.database.transaction() as session:
        assert session.scalars(select(ApprovalRequest)).all() == []
    web.sign_in(CASEWORKER)
    done = web.post_form(
        f"{case_page}/actions/send_approval_request", ask, from_page=case_page, follow=True
    )
    assert f"An approval request was sent to {SUPERVISOR}." in done.text
