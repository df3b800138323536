"""axe-core on the page states that preview an approval, change a case's kind and edit the
directory: no serious or critical violations of WCAG 2.2 A/AA."""

from __future__ import annotations

import pytest

from tests.browser.test_accessibility import _seed, _sign_in, axe_page, axe_problems
from tests.fixtures.browser import CASEWORKER, ICB, PRACTICE, SUPERVISOR, LiveServer
from workflow import directory
from workflow.cases import get_case

pytestmark = pytest.mark.browser
__all__ = ["axe_page"]  # the fixture, shared with the main pages' checks

OPEN_ALL = "document.querySelectorAll('details').forEach(d => { d.open = true; })"


def _checked(page) -> list[str]:
    page.evaluate(OPEN_ALL)  # closed forms are checked too
    return axe_problems(page)


def test_approval_preview_and_change_kind_states(live_server: LiveServer, axe_page) -> None:
    seeded = _seed(live_server)
    ref, page = seeded["ref"], axe_page
    found: dict[str, list[str]] = {}
    _sign_in(page, live_server, CASEWORKER)
    page.goto(f"{live_server.url}/cases/{ref}")
    page.locator("#action-approve summary").click()
    page.locator("#approve-reason").fill("Phoned the partner")
    page.get_by_role("button", name="Check the changes").click()
    page.wait_for_url(f"**/cases/{ref}/approve/preview")
    assert "Check the changes before approving" in page.content()
    found["approve preview with open findings"] = axe_problems(page)
    with live_server.settings.database.transaction() as session:
        case = get_case(session, ref)  # corrected meanwhile: the plan shown goes stale
        case.fields = {
            **case.fields,
            "nominees": [{"name": "Ola Other", "email": "ola@nhs.net", "services": ["gpp"]}],
        }
    page.get_by_role("button", name="Confirm these changes").click()
    assert "no longer the ones" in page.locator(".nhsuk-error-summary").inner_text()
    found["approve preview, plan changed"] = axe_problems(page)
    page.get_by_role("button", name="Confirm these changes").click()
    page.wait_for_url(f"**/cases/{ref}")
    assert page.locator("#proposal").is_visible()
    found["case with an approval waiting for a second person"] = _checked(page)
    page.get_by_role("button", name="Change the kind").click()  # opened above, left empty
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    found["change kind with errors"] = _checked(page)
    page.context.clear_cookies()  # signed out
    _sign_in(page, live_server, SUPERVISOR)
    page.goto(f"{live_server.url}/cases/{ref}")
    page.locator("#action-approve summary").click()
    page.locator("#approve-reason").fill("Agreed")
    page.get_by_role("button", name="Check the changes").click()
    found["approve preview as a supervisor"] = axe_problems(page)
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_directory_edit_states(live_server: LiveServer, axe_page) -> None:
    _seed(live_server)
    with live_server.settings.database.transaction() as session:
        directory.deactivate_person(
            session, email="gill.admin@nhs.net", actor="test", reason="Left the practice"
        )
    page = axe_page
    found: dict[str, list[str]] = {}
    _sign_in(page, live_server, SUPERVISOR)  # edits that grant roles need a supervisor
    page.goto(f"{live_server.url}/directory/organisations/{PRACTICE}")
    found["organisation with edit forms"] = _checked(page)
    page.get_by_role("button", name="Grant role").click()
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    found["grant with errors"] = _checked(page)
    page.locator("#grant-role").select_option("Main Contact")
    page.locator("#grant-email").fill("second.contact@nhs.net")
    page.locator("#grant-reason").fill("Asked by phone")
    page.get_by_role("button", name="Grant role").click()
    assert "already has a Main Contact" in page.locator(".nhsuk-error-summary").inner_text()
    found["grant refused by a rule"] = _checked(page)
    page.goto(f"{live_server.url}/directory/organisations/{ICB}")
    found["ICB with AEL forms"] = _checked(page)
    page.goto(f"{live_server.url}/directory/people/gill.admin@nhs.net")
    found["deactivated person with reactivate"] = _checked(page)
    assert {name: problems for name, problems in found.items() if problems} == {}
