"""The case page's helpdesk states in Chromium, each checked with axe-core: the forms open,
a refusal beside its field, a correction and a note shown, a merged case and the one it
joined."""

from __future__ import annotations

import pytest

from tests.browser.test_accessibility import _sign_in, axe_page, axe_problems  # noqa: F401
from tests.fixtures.browser import SUPERVISOR, LiveServer, seed_directory, triage_case

pytestmark = pytest.mark.browser


def _open(page, name: str) -> None:
    page.locator(f"#helpdesk-{name} summary").click()


def test_the_helpdesk_states_have_no_serious_accessibility_violations(
    live_server: LiveServer,
    axe_page,  # noqa: F811
) -> None:
    database, raw_dir = live_server.settings.database, live_server.settings.raw_dir
    seed_directory(database)
    original = triage_case(database, raw_dir)
    duplicate = triage_case(database, raw_dir, subject="GPP admin again")
    page = axe_page
    found: dict[str, list[str]] = {}
    _sign_in(page, live_server, SUPERVISOR)
    case_url = f"{live_server.url}/cases/{original}"

    page.goto(case_url)
    for name in ("correct", "note", "reply", "merge"):
        _open(page, name)
    found["helpdesk forms open"] = axe_problems(page)

    page.goto(case_url)
    _open(page, "correct")
    page.get_by_role("button", name="Correct the value").click()  # empty: the error summary
    assert "Choose the value to correct" in page.locator(".nhsuk-error-summary").inner_text()
    found["correction with errors"] = axe_problems(page)
    page.get_by_role("link", name="Enter the corrected value").click()
    assert page.evaluate("document.activeElement.id") == "correct-value"

    page.locator("#correct-field").select_option("nominees.0.email")
    page.locator("#correct-value").fill("nia at nhs")
    page.locator("#correct-reason").fill("Typo on the form")
    page.get_by_role("button", name="Correct the value").click()
    assert "is not a valid email address" in page.locator(".nhsuk-error-summary").inner_text()
    found["correction refused"] = axe_problems(page)

    page.locator("#correct-value").fill("nia.patel2@nhs.net")
    page.get_by_role("button", name="Correct the value").click()
    page.wait_for_selector("#corrections")
    assert "nia.patel2@nhs.net" in page.locator("#corrections").inner_text()
    _open(page, "note")
    page.locator("#note-text").fill("Rang the practice; the address on the form was wrong.")
    page.get_by_role("button", name="Add the note").click()
    page.wait_for_selector("#notes")
    found["corrected, with a note"] = axe_problems(page)

    page.goto(f"{live_server.url}/cases/{duplicate}")
    _open(page, "merge")
    page.locator("#merge-into").fill(duplicate)
    page.locator("#merge-reason").fill("Sent twice")
    page.get_by_role("button", name="Merge into that case").click()
    assert "cannot be merged into itself" in page.locator(".nhsuk-error-summary").inner_text()
    found["merge refused"] = axe_problems(page)

    page.locator("#merge-into").fill(original)
    page.get_by_role("button", name="Merge into that case").click()
    page.wait_for_selector("#merged-from")
    found["original with a merged case"] = axe_problems(page)
    page.goto(f"{live_server.url}/cases/{duplicate}")
    assert original in page.locator("#merged-into").inner_text()
    found["merged duplicate"] = axe_problems(page)

    assert {name: problems for name, problems in found.items() if problems} == {}
