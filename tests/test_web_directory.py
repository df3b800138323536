"""The directory pages: look-ups, roles with their history, ending a role, deactivating."""

from __future__ import annotations

from markupsafe import escape

from core.catalogue import Service
from tests.fixtures.browser import PRACTICE, WebClient, seed_directory
from workflow import directory

ORG_PAGE = f"/directory/organisations/{PRACTICE}"


def test_look_up_an_organisation_by_code_or_a_person_by_email(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    by_code = web.get("/directory?q=a81 001", follow_redirects=False)
    assert by_code.headers["location"] == ORG_PAGE
    by_email = web.get("/directory?q=GILL.ADMIN@nhs.net", follow_redirects=False)
    assert by_email.headers["location"] == "/directory/people/gill.admin@nhs.net"
    several = web.get("/directory?q=nhs.net").text
    assert "Gill Admin" in several and "Mo Contact" in several
    assert "No organisation matches." in several
    assert "No person matches." in web.get("/directory?q=nobody-here").text


def test_organisation_page_shows_roles_signers_and_ael(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    page = web.get(ORG_PAGE).text
    assert "Riverside Surgery" in page
    assert "GPP Practice User Administrator (GP Payments and Pensions), 1 of 4" in page
    assert "gill.admin@nhs.net" in page and "mo.contact@nhs.net" in page
    assert "Dr Priya Shah (GP Partner)" in page
    assert "Alex Morgan (GP Payments – General)" in page
    assert "Existing admin" in page  # the grant's reason, in the history


def test_end_a_role_records_it_and_warns_about_the_last_admin(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    done = web.post_form(
        f"{ORG_PAGE}/end-role",
        {
            "assignment": "gill.admin@nhs.net|GPP Practice User Administrator",
            "reason": "Left the practice",
        },
        from_page=ORG_PAGE,
        follow=True,
    )
    assert "Ended gill.admin@nhs.net" in done.text
    assert "Warning:" in done.text  # R7: the last GPP admin went
    assert "Left the practice" in done.text
    with web.settings.database.transaction() as session:
        assert directory.admins(session, PRACTICE, Service.GPP) == []


def test_end_role_problems_and_refusals_are_shown_in_words(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    empty = web.post_form(
        f"{ORG_PAGE}/end-role", {"assignment": "", "reason": ""}, from_page=ORG_PAGE
    )
    assert empty.status_code == 400
    assert "Choose the role to end" in empty.text
    assert "Enter why the role is ended" in empty.text
    refused = web.post_form(
        f"{ORG_PAGE}/end-role",
        {"assignment": "nobody@nhs.net|GPP Practice User Administrator", "reason": "Tidy up"},
        from_page=ORG_PAGE,
    )
    assert refused.status_code == 409
    assert "There is a problem" in refused.text
    assert "nobody@nhs.net" in refused.text


def test_deactivate_a_person_ends_their_roles_and_keeps_history(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    person = "/directory/people/mo.contact@nhs.net"
    done = web.post_form(
        f"{person}/deactivate", {"reason": "Retired"}, from_page=person, follow=True
    )
    assert "Deactivated mo.contact@nhs.net; 1 role ended." in done.text
    assert "Deactivated" in done.text and "Retired" in done.text
    again = web.post_form(f"{person}/deactivate", {"reason": "Twice"}, from_page=person)
    assert again.status_code in (400, 409)
    assert "Deactivate</button>" not in again.text  # no form for an inactive person
    with web.settings.database.transaction() as session:
        assert directory.main_contact(session, PRACTICE) is None


def test_deactivate_needs_a_reason_and_unknown_pages_are_404(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in()
    person = "/directory/people/gill.admin@nhs.net"
    empty = web.post_form(f"{person}/deactivate", {"reason": "  "}, from_page=person)
    assert empty.status_code == 400
    assert escape("Enter why the person is deactivated") in empty.text
    assert web.get("/directory/organisations/Z99999").status_code == 404
    assert web.get("/directory/people/who@nhs.net").status_code == 404
