"""The scanned form on the case page in a real browser: the page images load beside the
values read, the page passes axe-core, and a page opens full size."""

from __future__ import annotations

from tests.browser.test_accessibility import _sign_in, axe_page, axe_problems  # noqa: F401
from tests.fixtures.browser import CASEWORKER, LiveServer
from tests.test_web_scan import scanned_case


def test_scanned_form_beside_its_values(live_server: LiveServer, axe_page) -> None:  # noqa: F811
    ref = scanned_case(live_server.settings.database, live_server.settings.raw_dir)
    page = axe_page
    _sign_in(page, live_server, CASEWORKER)
    page.goto(f"{live_server.url}/cases/{ref}#scan")
    images = page.locator(".app-scan-page img")
    assert images.count() == 2
    for index in range(2):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
    assert page.locator(".app-scan-doubtful").count() >= 1
    assert axe_problems(page) == []
    link = page.get_by_role("link", name="Open page 2 full size (opens in a new tab)")
    assert link.get_attribute("href") == f"/cases/{ref}/form-pages/2.png?size=full"
