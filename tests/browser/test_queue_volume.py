"""The queue at volume in Chromium: forty cases on a full-width page, new replies, overdue
markers, saved views and bulk actions, each state checked with axe-core; and the queue's
screenshot for the README (docs/queue.png with PCSE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.db import Database
from notifications.models import OutboxMessage
from tests.browser.test_accessibility import axe_problems
from tests.fixtures.browser import (
    SUPERVISOR,
    LiveServer,
    browser_sign_in,
    email_bytes,
    mark_new_reply,
    store_message,
)
from workflow.cases import create_case, get_case, move, record

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
PRACTICES = ["A81001", "B82002", "C83003", "D84004", "E85005", "F86006"]
KINDS = ["user_admin_form", "pl_admin", "main_contact", "oph_admin", "gpp_admin_form"]
# Long real-looking addresses: the column must not break them mid-word.
PEOPLE = [
    "practice.manager@riversidemedicalcentre.nhs.net",
    "reception.team@hillviewfamilypractice.nhs.net",
    "gill.admin@nhs.net",
    "office@valleysurgery.nhs.net",
    "dr.priya.shah@nhs.net",
]
PATHS = {
    "triage": ["triage"],
    "needs_info": ["needs_info"],
    "awaiting_approval": ["awaiting_approval"],
    "completed": ["approved", "completed"],
    "rejected": ["rejected"],
}


def forty_cases(server: LiveServer) -> dict[str, str]:
    """Forty cases in every state, a few with new replies, some taken, some overdue, plus
    a failed message and a held email. Returns a few references by role."""
    database: Database = server.settings.database
    env = server.settings.env
    now = env.clock.now()
    states = ["triage"] * 16 + ["needs_info"] * 8 + ["awaiting_approval"] * 6
    states += ["completed"] * 6 + ["rejected"] * 4
    refs: dict[str, str] = {}
    for n, state in enumerate(states):
        at = now - timedelta(hours=3 + n * 7)
        with database.transaction() as session:
            case = create_case(
                session,
                kind=KINDS[n % len(KINDS)],
                requester=PEOPLE[n % len(PEOPLE)],
                organisation_code=PRACTICES[n % len(PRACTICES)],
                subject="User admin request",
                now=at,
            )
            for step in PATHS[state]:
                move(session, case, step, actor="system", reason=_reason(step), now=at)
            for check in range(12):
                record(session, case, "check", f"Check {check} passed.", at=at)
            if n % 5 == 1:
                case.assigned_to = "sam.jones@pcse.nhs.uk"
            refs.setdefault(state, case.ref)
    for state in ("completed", "rejected"):
        mark_new_reply(
            database,
            server.settings.raw_dir,
            env,
            refs[state],
            text="This is a mistake. Please reverse it urgently.",
            sender=PEOPLE[0],
        )
    store_message(
        database,
        server.settings.raw_dir,
        email_bytes(subject="Form", text="See attached", sender="gp@valley.nhs.uk"),
        status="failed",
        error="The PDF reader timed out after 15 seconds.",
    )
    with database.transaction() as session:
        session.add(
            OutboxMessage(
                purpose="acknowledgement",
                message_id="<held@pcse.test>",
                to_address="autoreply@example.org",
                subject="[PCSE] Received",
                body_text="Thank you.",
                status="held",
            )
        )
    return refs


def _reason(step: str) -> str:
    return {
        "triage": "The signer is not a recorded signer of the practice; a caseworker must check.",
        "needs_info": "Asked the requester for the nominee's email address.",
        "awaiting_approval": "Asked Dr Priya Shah (GP Partner) to approve.",
        "approved": "Approved by the GP Partner.",
        "completed": "The roles were granted and everyone was told.",
        "rejected": "Rejected: the form was not signed.",
    }[step]


@pytest.fixture
def axe_page(chromium):
    context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def test_the_queue_at_forty_cases_is_full_width_and_accessible(
    live_server: LiveServer, axe_page, tmp_path: Path
) -> None:
    refs = forty_cases(live_server)
    page = axe_page
    browser_sign_in(page, live_server, SUPERVISOR)
    found: dict[str, list[str]] = {"queue": axe_problems(page)}
    # The table fits the window; no requester address is split inside a word.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    container = page.locator("main").evaluate("m => m.parentElement.getBoundingClientRect().width")
    assert container > 1100
    lines = page.locator(".app-address").evaluate_all(
        "spans => spans.map(s => [s.textContent, Math.round("
        "s.getBoundingClientRect().height / parseFloat(getComputedStyle(s).lineHeight))])"
    )
    # One line, or two split at the <wbr> before the @ (the only break it allows).
    assert lines and all(count <= 2 for _, count in lines), lines
    height = page.evaluate("document.documentElement.scrollHeight")
    print(f"queue at 40 cases: {height} px high at 1280 px wide (25 rows a page)")
    assert page.get_by_text("New reply", exact=True).count() >= 2
    assert page.get_by_text("Overdue: not taken").count() >= 1
    folder = DOCS if os.environ.get("PCSE_SCREENSHOTS") else tmp_path
    page.screenshot(path=str(folder / "queue.png"), full_page=True)
    assert (folder / "queue.png").stat().st_size > 10_000

    for name, url in {
        "overdue view": "/?overdue=1&state=all",
        "new replies view": "/?new_reply=1",
        "all cases page 2": "/?state=all&page=2",
    }.items():
        page.goto(live_server.url + url)
        found[name] = axe_problems(page)
    assert page.locator("[aria-current=page]", has_text="All cases").count() == 1

    # Bulk: take two cases at once; the result is said on the same view.
    page.goto(live_server.url + "/?assigned=nobody")
    boxes = page.locator("input[name=item][value^='case:']")
    chosen = [boxes.nth(0).get_attribute("value"), boxes.nth(1).get_attribute("value")]
    boxes.nth(0).check()
    boxes.nth(1).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Assign to me").click()
    assert page.url == live_server.url + "/?assigned=nobody"
    banner = page.locator(".nhsuk-notification-banner").inner_text()
    assert all(value.split(":", 1)[1] in banner for value in chosen if value)
    found["after a bulk action"] = axe_problems(page)
    page.locator("#select-all").check()  # shown where scripts run: ticks every row
    assert (
        page.locator("input[name=item]:checked").count() == page.locator("input[name=item]").count()
    )
    page.locator("#select-all").uncheck()
    assert page.locator("input[name=item]:checked").count() == 0
    page.get_by_role("button", name="Dismiss").click()  # nothing selected
    assert (
        "Select at least one item first." in page.locator(".nhsuk-notification-banner").inner_text()
    )

    # A closed case with a new reply: the reply shown, reopen needs a reason.
    page.goto(f"{live_server.url}/cases/{refs['completed']}")
    assert (
        "This is a mistake. Please reverse it urgently." in page.locator("#new-reply").inner_text()
    )
    found["case with a new reply"] = axe_problems(page)
    page.get_by_role("button", name="Reopen the case").click()
    assert "Enter what you did about the reply" in page.locator(".nhsuk-error-summary").inner_text()
    found["new reply with errors"] = axe_problems(page)
    page.locator("#new-reply-reason").fill("Called the practice; reversing the grant.")
    page.get_by_role("button", name="Reopen the case").click()
    page.wait_for_url(f"{live_server.url}/cases/{refs['completed']}")
    assert page.locator("#new-reply").count() == 0
    with live_server.settings.database.transaction() as session:
        assert get_case(session, refs["completed"]).state == "triage"

    # The history: twelve checks folded under their step, opened on request.
    summary = page.locator("details.app-checks summary").first
    assert "12 automatic entries" in summary.inner_text()
    assert not page.get_by_text("Check 11 passed.").first.is_visible()
    summary.click()
    assert page.get_by_text("Check 11 passed.").first.is_visible()
    found["case history opened"] = axe_problems(page)
    assert {name: problems for name, problems in found.items() if problems} == {}
