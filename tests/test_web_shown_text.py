"""What an outsider wrote is shown as it will be drawn: no right-to-left override or other
format character in an attachment's name (on the page and in the download) or in a header
shown on the message page."""

from __future__ import annotations

import re
from urllib.parse import unquote

from tests.fixtures.browser import WebClient, seed_directory, triage_case

RLO = "\u202e"


def test_attachment_names_and_headers_carry_no_bidi_controls(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = triage_case(
        web.settings.database,
        web.settings.raw_dir,
        subject=f"Form for {RLO}fdp.exe",
        attachments=[(f"Invoice-2026-{RLO}fdp.exe", "application/pdf", b"MZ not a pdf")],
    )
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    link = re.search(r'href="(/messages/\d+/attachments/1)"[^>]*>([^<]*)<', page)
    assert link is not None, "the attachment is listed"
    assert "Invoice-2026-fdp.exe" in link.group(2) and RLO not in link.group(2)
    download = web.get(link.group(1))
    disposition = download.headers["content-disposition"]
    saved_as = unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert saved_as == "Invoice-2026-fdp.exe"
    message = re.search(r'href="(/messages/\d+)"', page)
    assert message is not None
    shown = web.get(message.group(1)).text
    assert "Form for fdp.exe" in shown and RLO not in shown
