"""The caseworker pages in Debian's Chromium, driven by Playwright against uvicorn."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from notifications.models import OutboxMessage
from notifications.sender import send_pending
from tests.fixtures.browser import (
    CASEWORKER,
    PRACTICE,
    SUPERVISOR,
    LiveServer,
    browser_sign_in,
    email_bytes,
    seed_directory,
    store_message,
    triage_case,
)
from workflow.cases import get_case

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _triage(server: LiveServer, **kwargs) -> str:
    seed_directory(server.settings.database)
    return triage_case(server.settings.database, server.settings.raw_dir, **kwargs)


def _open_action(page, name: str) -> None:
    """Actions sit in expanders on the case page; open one as a caseworker would."""
    page.locator(f"#action-{name} summary").click()


def _state(server: LiveServer, ref: str) -> str:
    with server.settings.database.transaction() as session:
        return get_case(session, ref).state


def test_sign_in_find_a_triage_case_approve_it_and_see_the_directory_change(
    live_server: LiveServer, page
) -> None:
    ref = _triage(live_server)
    browser_sign_in(page, live_server, SUPERVISOR)  # the case has open findings
    page.get_by_role("link", name=ref).click()
    _open_action(page, "approve")
    page.get_by_label("Why is it approved?").fill("Confirmed with the practice by phone")
    page.get_by_role("button", name="Check the changes").click()
    grants = page.locator("[data-grant]").all_inner_texts()
    assert grants == ["GPP Practice User Administrator to Nia Patel (nia.patel@nhs.net)"]
    page.get_by_role("button", name="Confirm and apply these changes").click()
    banner = page.locator(".nhsuk-notification-banner")
    assert "The case is now completed." in banner.inner_text()
    assert _state(live_server, ref) == "completed"
    page.get_by_role("link", name="Directory").first.click()
    page.get_by_label("Organisation or person").fill(PRACTICE)
    page.get_by_role("button", name="Look up").click()
    admins = page.locator("dt", has_text="GPP Practice User Administrator").locator("xpath=..")
    assert "nia.patel@nhs.net" in admins.inner_text()
    assert "2 of 4" in admins.inner_text()


def test_reject_with_a_reason_and_see_the_email_in_the_outbox_and_the_sink(
    live_server: LiveServer, page, smtp_sink, smtp_config
) -> None:
    ref = _triage(live_server)
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/cases/{ref}")
    _open_action(page, "reject")
    page.get_by_label("Reason for rejecting").fill("Part B was signed by a practice manager.")
    page.get_by_role("button", name="Reject").click()
    assert "The case is now rejected." in page.locator(".nhsuk-notification-banner").inner_text()
    emails = page.locator("#emails ~ table")
    emails.get_by_role("link", name=ref).first.click()
    assert "Part B was signed by a practice manager." in page.locator("pre").inner_text()
    report = send_pending(live_server.settings.database, smtp_config)
    assert report.sent >= 1
    received = [m for m in smtp_sink.wait_for(1) if "practice.manager@nhs.net" in m.rcpt_tos]
    assert received, "the rejection did not reach the SMTP sink"
    body = received[0].message().get_body(("plain",)).get_content()
    assert "Part B was signed by a practice manager." in body


@pytest.mark.parametrize("csp", ["with CSP", "without CSP"])
def test_an_email_carrying_scripts_renders_inert(
    live_server: LiveServer, chromium, csp: str
) -> None:
    # Without the Content-Security-Policy, escaping and the sandbox must hold on their own.
    context = chromium.new_context(bypass_csp=csp == "without CSP")
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    ref = _triage(
        live_server,
        subject="Admin please <script>window.pwned='subject';alert('subject')</script>",
        text="Hello <script>window.pwned='text';alert('text')</script>"
        "<img src=x onerror=\"window.pwned='text-img';alert('text-img')\">",
        html='<p>Hi</p><script>parent.pwned="html";alert("html")</script>'
        "<img src=\"x\" onerror=\"parent.pwned='img';alert('img')\">",
    )
    try:
        browser_sign_in(page, live_server)
        for url in ("/", f"/cases/{ref}"):
            page.goto(live_server.url + url)
            page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof window.pwned") == "undefined"
        frame = page.frame_locator("iframe.app-email-html")
        assert frame.locator("p").inner_text() == "Hi"
        assert dialogs == []
        assert "<script>window.pwned='subject'" in page.locator("h1 + dl").inner_text()
    finally:
        context.close()


def test_a_post_without_the_csrf_token_is_refused(live_server: LiveServer, page) -> None:
    ref = _triage(live_server)
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/cases/{ref}")
    _open_action(page, "approve")
    page.get_by_label("Why is it approved?").fill("No token")
    page.get_by_role("button", name="Check the changes").click()
    form = page.locator(f'form[action="/cases/{ref}/actions/approve"]')
    form.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    with page.expect_response(f"{live_server.url}/cases/{ref}/actions/approve") as answer:
        form.get_by_role("button").click()
    assert answer.value.status == 403
    assert "not sent from a page of this site" in page.locator("main").inner_text()
    assert _state(live_server, ref) == "triage"


def test_a_signed_out_request_is_sent_to_sign_in_and_back(live_server: LiveServer, page) -> None:
    ref = _triage(live_server)
    page.goto(f"{live_server.url}/cases/{ref}")
    assert page.url.startswith(f"{live_server.url}/sign-in?next=")
    page.get_by_label("Email address").fill(CASEWORKER)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/cases/{ref}")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/sign-in")
    page.goto(f"{live_server.url}/")
    assert page.url == f"{live_server.url}/sign-in"


def test_a_caseworker_cannot_reach_the_supervisor_pages(live_server: LiveServer, page) -> None:
    browser_sign_in(page, live_server, CASEWORKER)
    assert page.get_by_role("link", name="Accounts").count() == 0
    response = page.goto(f"{live_server.url}/accounts")
    assert response.status == 403
    assert "Only a supervisor can do this." in page.locator("main").inner_text()
    page.get_by_role("button", name="Sign out").click()
    browser_sign_in(page, live_server, SUPERVISOR)
    page.get_by_role("link", name="Accounts").click()
    assert page.locator("h1").inner_text() == "Caseworker accounts"


def test_screenshots_of_the_queue_and_a_case(live_server: LiveServer, page, tmp_path: Path) -> None:
    # PCSE_SCREENSHOTS=1 writes them into docs/ for the README; otherwise a temporary folder.
    folder = DOCS if os.environ.get("PCSE_SCREENSHOTS") else tmp_path
    database, raw_dir = live_server.settings.database, live_server.settings.raw_dir
    now = live_server.settings.env.clock.now()
    ref = _triage(
        live_server,
        html="<p>Please add <b>Nia Patel</b> as a GPP admin.</p>",
        attachments=[
            ("User Administrator Request Form.pdf", "application/pdf", b"%PDF-1.4 sample")
        ],
        now=now - timedelta(days=3, hours=2),
    )
    taken = triage_case(
        database,
        raw_dir,
        subject="Main Contact change for A81001",
        kind="main_contact",
        requester="office@riverside.nhs.uk",
        reason="The named approver is not recorded for this practice.",
        now=now - timedelta(days=1, hours=4),
    )
    with database.transaction() as session:
        get_case(session, taken).assigned_to = "sam.jones@pcse.nhs.uk"
    triage_case(
        database,
        raw_dir,
        subject="PL admin request",
        kind="pl_admin",
        organisation="B82002",
        requester="reception@hillview.nhs.uk",
        reason="B82002 is not in the directory.",
        now=now - timedelta(hours=5),
    )
    store_message(
        database,
        raw_dir,
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
    browser_sign_in(page, live_server)
    # docs/queue.png is the queue at volume (tests/browser/test_queue_volume.py).
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
    page.goto(f"{live_server.url}/cases/{ref}")
    page.locator("iframe.app-email-html").content_frame.locator("p").wait_for()
    _open_action(page, "approve")
    # Chromium paints iframes only inside the viewport: make it as tall as the page.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    page.screenshot(path=str(folder / "case.png"), full_page=True)
    for shot in (tmp_path / "queue.png", folder / "case.png"):
        assert shot.stat().st_size > 10_000


def test_each_inbound_message_shows_its_sender_verdict_beside_it(
    live_server: LiveServer, page
) -> None:
    """The address and display name apart, and what vouched for the sender, on the case
    page and on the message page."""
    ref = _triage(live_server)
    with live_server.settings.database.transaction() as session:
        case_id = get_case(session, ref).id
    forged = email_bytes(
        subject=f"RE: [{ref}] Approval needed", text="APPROVE", sender="mallory@nhs.net"
    )
    message_id = store_message(
        live_server.settings.database,
        live_server.settings.raw_dir,
        forged,
        case_id=case_id,
        sender_status="unverified",
        sender_detail="The From display name holds an email address.",
    )
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/cases/{ref}")
    rows = page.locator("#emails ~ table tbody tr")
    verdicts = [
        rows.nth(i).locator("[data-sender-status]").get_attribute("data-sender-status")
        for i in range(rows.count())
    ]
    assert sorted(verdicts) == ["authenticated", "unverified"]
    table = page.locator("#emails ~ table").inner_text()
    assert "Sender verified" in table
    assert "From unclear: sender NOT verified" in table
    assert "The From display name holds an email address." in table
    page.goto(f"{live_server.url}/messages/{message_id}")
    summary = page.locator("dl").first.inner_text()
    assert "mallory@nhs.net" in summary
    assert "From unclear: sender NOT verified" in summary
    assert "Senders are not checked" not in page.content()


def test_every_page_says_when_senders_are_not_checked(live_server: LiveServer, page) -> None:
    from core.senderauth import SenderPolicy

    live_server.settings.env.sender_policy = SenderPolicy()  # profile "none"
    browser_sign_in(page, live_server)
    callout = page.locator(".nhsuk-warning-callout")
    assert "Senders are not checked" in callout.inner_text()
