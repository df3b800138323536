"""The approval request on a phone (390 px wide, Chromium): the whole decision and the
answer buttons before any scrolling; and the operator's warning banner on the pages.
Both pass axe-core's WCAG 2.2 A/AA rules with no serious or critical violation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifications.rendering import render
from notifications.samples import sample_template_context
from tests.browser.test_accessibility import axe_problems
from tests.fixtures.browser import LiveServer, browser_sign_in

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
PHONE = {"width": 390, "height": 844}  # a common phone's screen, in CSS pixels


@pytest.fixture
def phone(chromium):
    context = chromium.new_context(
        bypass_csp=True, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def test_the_approval_request_fits_its_decision_on_a_phones_first_screen(
    phone, tmp_path: Path
) -> None:
    html = render("approval_request", sample_template_context("approval_request")).html
    phone.set_content(html)
    for text in (
        "Pat Jones (practice.manager@riverside.nhs.net) asks you to approve access",
        "You are asked as a GP Partner",
        "replacing Chris Green",
        "Answer by",
    ):
        box = phone.get_by_text(text).first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"], text
    for name in ("Approve", "Reject"):
        button = phone.get_by_role("link", name=name, exact=True).bounding_box()
        assert button is not None
        assert button["y"] + button["height"] <= PHONE["height"], name
        assert button["height"] >= 44  # a finger's target
    # The details start below the fold, and nothing is wider than the screen.
    details = phone.get_by_role("heading", name="The details").bounding_box()
    assert details is not None and details["y"] > 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # PCSE_SCREENSHOTS=1 writes it into docs/; otherwise a temporary folder.
    folder = DOCS if os.environ.get("PCSE_SCREENSHOTS") else tmp_path
    phone.screenshot(path=str(folder / "approval-request-phone.png"))
    assert (folder / "approval-request-phone.png").stat().st_size > 10_000
    assert axe_problems(phone) == []


def test_the_operator_warning_banner_is_accessible(live_server: LiveServer, chromium) -> None:
    sentence = (
        "The OAuth2 client secret of mailbox 'enquiries' expires on 1 May 2027 (in 12 day(s))."
    )
    live_server.settings.operator_warnings = lambda: [sentence]
    context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        browser_sign_in(page, live_server)
        banner = page.locator("[data-operator-warning]")
        assert banner.count() == 1
        assert sentence in banner.inner_text()
        assert axe_problems(page) == []
    finally:
        context.close()
