"""The reports page in Chromium: no serious accessibility problem (axe-core), the charts
drawn without script, and a screenshot (PCSE_SCREENSHOTS=1 writes docs/reports.png)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from caseworker.report import week_of
from tests.browser.test_accessibility import axe_page, axe_problems
from tests.fixtures.browser import SUPERVISOR, LiveServer, browser_sign_in
from tests.fixtures.report_cases import seed_quarter

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
__all__ = ["axe_page"]  # the fixture, used by name


def test_the_reports_page_is_accessible_and_drawn_on_the_server(
    live_server: LiveServer, axe_page, tmp_path: Path
) -> None:
    now = live_server.settings.env.clock.now()
    monday = datetime.combine(week_of(now) - timedelta(weeks=12), time(8), tzinfo=UTC)
    seed_quarter(live_server.settings.database, monday, weeks=13)
    page = axe_page
    page.set_viewport_size({"width": 1280, "height": 900})
    browser_sign_in(page, live_server, SUPERVISOR)
    page.get_by_role("link", name="Reports").click()
    assert page.locator("h1").inner_text() == "Reports"
    # Every chart is a named image with its table beside it.
    charts = page.get_by_role("img", name="Requests by week")
    assert charts.count() == 1
    assert page.locator("svg.app-chart rect.app-chart__bar").count() >= 13
    assert page.locator("#weeks-table tbody tr").count() == 13
    # The stylesheet reached the bars (the page's CSP allows no inline style).
    fill = page.evaluate(
        "getComputedStyle(document.querySelector('.app-chart__bar--primary')).fill"
    )
    assert fill == "rgb(0, 94, 184)"
    assert axe_problems(page) == []
    folder = DOCS if os.environ.get("PCSE_SCREENSHOTS") else tmp_path
    page.screenshot(path=str(folder / "reports.png"), full_page=True)
    assert (folder / "reports.png").stat().st_size > 10_000
    # A bad date: the error summary and the field's message, still accessible.
    page.goto(live_server.url + "/reports?since=not-a-date")
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    assert axe_problems(page) == []
