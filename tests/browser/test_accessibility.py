"""axe-core (vendored from the npm registry) on the main pages: no serious or critical
violations of WCAG 2.2 A/AA."""

from __future__ import annotations

from pathlib import Path

import pytest

from caseworker.accounts import find_caseworker
from notifications.claims import UNCONFIRMED
from notifications.models import OutboxMessage
from tests.fixtures.browser import (
    CASEWORKER,
    PASSWORD,
    PRACTICE,
    SUPERVISOR,
    LiveServer,
    email_bytes,
    seed_directory,
    store_message,
    triage_case,
)

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_problems(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def axe_page(chromium):
    # The pages' own CSP would block the injected checker; the pages are unchanged otherwise.
    context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def _seed(server: LiveServer) -> dict[str, str]:
    database, raw_dir = server.settings.database, server.settings.raw_dir
    seed_directory(database)
    ref = triage_case(
        database,
        raw_dir,
        html="<p>Please add <b>Nia</b>.</p>",
        attachments=[("form.pdf", "application/pdf", b"%PDF-1.4")],
    )
    message = store_message(
        database,
        raw_dir,
        email_bytes(subject="Form", text="Attached"),
        status="failed",
        error="The PDF reader timed out.",
    )
    with database.transaction() as session:
        row = OutboxMessage(
            purpose="acknowledgement",
            message_id="<a11y@pcse.test>",
            to_address="someone@nhs.net",
            subject="[PCSE] Received",
            body_text="Thank you.",
            status="failed",
            last_error="550 no",
        )
        unconfirmed = OutboxMessage(
            purpose="acknowledgement",
            message_id="<a11y-2@pcse.test>",
            to_address="someone@nhs.net",
            subject="[PCSE] Received",
            body_text="Thank you.",
            status="sent",
            last_error=UNCONFIRMED,
        )
        session.add_all([row, unconfirmed])
        session.flush()
        outbox_id, unconfirmed_id = row.id, unconfirmed.id
    return {
        "ref": ref,
        "message": str(message),
        "outbox": str(outbox_id),
        "unconfirmed": str(unconfirmed_id),
    }


def _sign_in(page, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def test_the_main_pages_have_no_serious_accessibility_violations(
    live_server: LiveServer, axe_page
) -> None:
    seeded = _seed(live_server)
    page = axe_page
    found: dict[str, list[str]] = {}
    page.goto(live_server.url + "/sign-in")
    found["sign-in"] = axe_problems(page)
    page.get_by_role("button", name="Sign in").click()  # empty: the error summary
    found["sign-in with errors"] = axe_problems(page)
    _sign_in(page, live_server, SUPERVISOR)
    pages = {
        "queue": "/",
        "queue filtered": "/?state=all&kind=user_admin_form",
        "case": f"/cases/{seeded['ref']}",
        "directory search": "/directory?q=nhs.net",
        "organisation": f"/directory/organisations/{PRACTICE}",
        "person": "/directory/people/gill.admin@nhs.net",
        "failed message": f"/messages/{seeded['message']}",
        "failed email": f"/outbox/{seeded['outbox']}",
        "unconfirmed email": f"/outbox/{seeded['unconfirmed']}",
        "accounts": "/accounts",
        "not found": "/cases/PCSE-1999-000001",
    }
    for name, url in pages.items():
        page.goto(live_server.url + url)
        found[name] = axe_problems(page)
    page.goto(f"{live_server.url}/cases/{seeded['ref']}")
    page.locator("#action-reject summary").click()
    page.get_by_role("button", name="Reject").click()  # no reason: the error summary
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    found["case with errors"] = axe_problems(page)
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_password_pages_have_no_serious_accessibility_violations(
    live_server: LiveServer, axe_page
) -> None:
    with live_server.settings.database.transaction() as session:
        caseworker = find_caseworker(session, CASEWORKER).id
    page = axe_page
    found: dict[str, list[str]] = {}
    _sign_in(page, live_server, SUPERVISOR)
    page.goto(f"{live_server.url}/accounts/{caseworker}/password")
    found["reset password"] = axe_problems(page)
    page.goto(live_server.url + "/account/password")
    found["change password"] = axe_problems(page)
    page.get_by_role("button", name="Change password").click()  # empty: the error summary
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    found["change password with errors"] = axe_problems(page)
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_error_summary_takes_focus_and_links_to_the_field(
    live_server: LiveServer, axe_page
) -> None:
    seeded = _seed(live_server)
    page = axe_page
    _sign_in(page, live_server, SUPERVISOR)
    page.goto(f"{live_server.url}/cases/{seeded['ref']}")
    page.locator("#action-reject summary").click()
    page.get_by_role("button", name="Reject").click()
    page.wait_for_function("document.activeElement.classList.contains('nhsuk-error-summary')")
    page.get_by_role("link", name="Enter the reason for rejecting the request").click()
    assert page.evaluate("document.activeElement.id") == "reject-reason"


def test_the_skip_link_is_the_first_thing_in_the_focus_order(
    live_server: LiveServer, axe_page
) -> None:
    page = axe_page
    page.goto(live_server.url + "/sign-in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"


def test_the_checker_reports_a_known_violation(axe_page) -> None:
    # Proves the check above can fail: an input with no label is a critical violation.
    axe_page.set_content(
        '<html lang="en"><head><title>t</title></head>'
        '<body><main><input type="text"></main></body></html>'
    )
    assert any(problem.startswith("label ") for problem in axe_problems(axe_page))
