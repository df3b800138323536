"""The case page's helpdesk forms: corrections, internal notes, replies and merging."""

from __future__ import annotations

from sqlalchemy import select

from notifications.models import OutboxMessage
from tests.fixtures.browser import WebClient, seed_directory, triage_case
from workflow.cases import get_case


def _triage(web: WebClient, **kwargs) -> str:
    return triage_case(web.settings.database, web.settings.raw_dir, **kwargs)


def _case(web: WebClient, ref: str):
    with web.settings.database.transaction() as session:
        case = get_case(session, ref)
        _ = case.events
        return case


def test_the_case_page_offers_the_helpdesk_forms(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = _triage(web)
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    for what in ("correct", "note", "reply", "merge"):
        assert f'action="/cases/{ref}/helpdesk/{what}"' in page
    assert 'value="nominees.0.email"' in page and "(now: nia.patel@nhs.net)" in page
    assert 'value="nominees.1.name"' in page  # adds a nominee
    assert 'value="signer.capacity"' in page


def test_a_correction_on_the_page_is_recorded_and_the_case_read_again(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = _triage(web)
    web.sign_in()
    done = web.post_form(
        f"/cases/{ref}/helpdesk/correct",
        {"field": "signer.date", "value": "28 February 2026", "reason": "Rang the practice"},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert done.status_code == 200
    assert "Corrected. The case was read again" in done.text
    table = done.text.split('id="corrections"')[1].split("</table>")[0]
    assert "Date signed" in table and "2026-02-28" in table and "Rang the practice" in table
    case = _case(web, ref)
    assert case.fields["signer"]["date"] == "2026-02-28"
    # The whole-form finding (a scan) stays, so the requester is asked for the form.
    assert case.state == "needs_info"
    assert case.fields["readings"]["signer.date"]["source"] == "caseworker"


DOUBTED = "nia.patel@evil.example"


def test_correcting_one_value_leaves_the_doubts_about_another(web: WebClient) -> None:
    """A doubtful reading of a scanned nominee's address calls for a second person; a
    correction of the organisation's name settles nothing about that address."""
    db = web.settings.database
    seed_directory(db)
    ref = _triage(web)
    doubts = [
        {
            "code": "ocr_low_confidence",
            "field": "nominees.0.email",
            "message": f"Part A: email was read from the scan as '{DOUBTED}', but not clearly",
        },
        {
            "code": "invalid_ods_code",
            "field": "organisation_code",
            "message": "The organisation code was read as 'A8I001', which is not one.",
        },
    ]
    with db.transaction() as session:
        case = get_case(session, ref)
        nominee = {"name": "Nia Patel", "email": DOUBTED, "services": ["gpp"]}
        case.fields = {**case.fields, "nominees": [nominee]}
        case.findings = doubts
    web.sign_in()
    web.post_form(
        f"/cases/{ref}/helpdesk/correct",
        {"field": "organisation_name", "value": "Riverside Surgery Ltd", "reason": "typo"},
        from_page=f"/cases/{ref}",
    )
    case = _case(web, ref)
    assert case.fields["organisation_name"] == "Riverside Surgery Ltd"  # the premise
    assert [f["code"] for f in case.findings] == ["ocr_low_confidence", "invalid_ods_code"]
    assert case.state != "awaiting_approval"


def test_an_invalid_correction_is_refused_beside_the_field(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = _triage(web)
    web.sign_in()
    refused = web.post_form(
        f"/cases/{ref}/helpdesk/correct",
        {"field": "nominees.0.email", "value": "nia at nhs", "reason": "typo"},
        from_page=f"/cases/{ref}",
    )
    assert refused.status_code == 409
    assert "&#39;nia at nhs&#39; is not a valid email address." in refused.text
    assert 'href="#correct-value"' in refused.text
    assert 'id="helpdesk-correct" open' in refused.text
    assert _case(web, ref).fields["nominees"][0]["email"] == "nia.patel@nhs.net"
    empty = web.post_form(
        f"/cases/{ref}/helpdesk/correct",
        {"field": "", "value": "", "reason": ""},
        from_page=f"/cases/{ref}",
    )
    assert empty.status_code == 400
    assert "Choose the value to correct" in empty.text
    assert "Enter the corrected value" in empty.text


def test_a_note_is_shown_to_caseworkers_and_a_reply_goes_to_the_outbox(web: WebClient) -> None:
    seed_directory(web.settings.database)
    ref = _triage(web)
    web.sign_in()
    noted = web.post_form(
        f"/cases/{ref}/helpdesk/note",
        {"text": "Called <Dr Shah>; she confirms."},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "Note added. Only caseworkers can see it." in noted.text
    assert "Called &lt;Dr Shah&gt;; she confirms." in noted.text.split('id="notes"')[1]
    replied = web.post_form(
        f"/cases/{ref}/helpdesk/reply",
        {"message": "We are checking the form <today>."},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "Your reply to practice.manager@nhs.net is in the outbox." in replied.text
    with web.settings.database.transaction() as session:
        rows = session.scalars(select(OutboxMessage)).all()
        assert [r.purpose for r in rows] == ["caseworker_reply"]
        assert "Casey Worker" in rows[0].body_text
        assert "&lt;today&gt;" in (rows[0].body_html or "")
        assert all("Dr Shah" not in r.body_text for r in rows)


def test_merging_on_the_page_leads_to_the_original(web: WebClient) -> None:
    seed_directory(web.settings.database)
    original = _triage(web)
    duplicate = _triage(web, subject="GPP admin again")
    web.sign_in()
    missing = web.post_form(
        f"/cases/{duplicate}/helpdesk/merge",
        {"into": "PCSE-1999-000001", "reason": "Same"},
        from_page=f"/cases/{duplicate}",
    )
    assert missing.status_code == 409 and "There is no case PCSE-1999-000001." in missing.text
    itself = web.post_form(
        f"/cases/{duplicate}/helpdesk/merge",
        {"into": duplicate, "reason": "Same"},
        from_page=f"/cases/{duplicate}",
    )
    assert itself.status_code == 409 and "cannot be merged into itself" in itself.text
    merged = web.post_form(
        f"/cases/{duplicate}/helpdesk/merge",
        {"into": original.lower(), "reason": "Same request sent twice"},
        from_page=f"/cases/{duplicate}",
        follow=True,
    )
    assert merged.url.path == f"/cases/{original}"
    assert f"Merged into {original}." in merged.text
    assert (
        f'<a href="/cases/{duplicate}">{duplicate}</a>' in merged.text.split('id="merged-from"')[1]
    )
    gone = web.get(f"/cases/{duplicate}").text
    assert f'This case was merged into <a href="/cases/{original}">{original}</a>' in gone
    assert f'action="/cases/{duplicate}/helpdesk/merge"' not in gone
    assert _case(web, duplicate).state == "withdrawn"
