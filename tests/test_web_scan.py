"""The case page shows a scanned form's pages beside the values read, doubtful ones marked;
the page images are drawn in the sandbox and only for signed-in caseworkers."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from core.db import Database
from forms import read_attachment
from tests.fixtures.browser import WebClient, seed_directory, triage_case
from workflow.cases import get_case

SCAN = Path(__file__).resolve().parent / "corpus" / "scans" / "gpp-tiff-200dpi-rot-3.tiff"


def scanned_case(database: Database, raw_dir: Path) -> str:
    """A case in triage opened from an email with a scanned form, its fields read by OCR."""
    seed_directory(database)
    data = SCAN.read_bytes()
    ref = triage_case(
        database,
        raw_dir,
        kind="gpp_admin_form",
        attachments=[("scan.tiff", "image/tiff", data)],
    )
    parsed = read_attachment(data)
    with database.transaction() as session:
        case = get_case(session, ref)
        case.fields = parsed.fields
        case.findings = parsed.findings_as_dicts()
    return ref


def _scanned_case(web: WebClient) -> str:
    return scanned_case(web.settings.database, web.settings.raw_dir)


def test_case_page_shows_pages_beside_the_values_read(web: WebClient) -> None:
    ref = _scanned_case(web)
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    assert "The scanned form" in page
    assert f'src="/cases/{ref}/form-pages/1.png"' in page
    assert f'href="/cases/{ref}/form-pages/2.png?size=full"' in page
    assert "Signer&#39;s full name" in page or "Signer's full name" in page
    assert "app-scan-doubtful" in page  # this copy has values not read clearly
    # The readings are shown with the pages, not dumped into the fields table.
    assert "Readings" not in page


def test_page_image_is_a_png_and_full_size_is_wider(web: WebClient) -> None:
    ref = _scanned_case(web)
    web.sign_in()
    small = web.get(f"/cases/{ref}/form-pages/1.png")
    assert small.status_code == 200 and small.headers["content-type"] == "image/png"
    assert small.headers["cache-control"] == "no-store"  # a signed form, on a shared desk
    full = web.get(f"/cases/{ref}/form-pages/1.png?size=full")
    assert Image.open(io.BytesIO(full.content)).width > Image.open(io.BytesIO(small.content)).width
    assert web.get(f"/cases/{ref}/form-pages/9.png").status_code == 404


def test_page_image_needs_a_signed_in_caseworker(web: WebClient) -> None:
    ref = _scanned_case(web)
    response = web.get(f"/cases/{ref}/form-pages/1.png", follow_redirects=False)
    assert response.status_code in (302, 303, 401, 403)
    assert not response.content.startswith(b"\x89PNG")


def test_a_corrected_value_is_shown_as_corrected_not_in_doubt(web: WebClient) -> None:
    ref = _scanned_case(web)
    with web.settings.database.transaction() as session:
        case = get_case(session, ref)
        fields = dict(case.fields)
        readings = {key: dict(value) for key, value in fields["readings"].items()}
        readings["signer.email"].update(
            value="peter.mcallister@nhs.net", source="caseworker", confidence=100.0
        )
        fields["readings"] = readings
        case.fields = fields
        case.findings = []
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    rows = re.findall(r"<tr class=\"nhsuk-table__row[^\"]*\">.*?</tr>", page, re.S)
    (row,) = [r for r in rows if "email address" in r and "Signer" in r]
    assert "Corrected" in row and "Check" not in row and "app-scan-doubtful" not in row
