"""The case page and every caseworker action on it, through workflow.actions."""

from __future__ import annotations

import re

from markupsafe import escape

from core.catalogue import Service
from notifications.models import OutboxMessage
from tests.fixtures.browser import PRACTICE, SUPERVISOR, WebClient, seed_directory, triage_case
from workflow import directory
from workflow.cases import get_case, move
from workflow.models import ApprovalRequest


def _triage(web: WebClient, **kwargs) -> str:
    seed_directory(web.settings.database)
    return triage_case(web.settings.database, web.settings.raw_dir, **kwargs)


def approve_via_preview(web: WebClient, ref: str, reason: str):
    """Approve as the page asks: see the changes, then confirm that plan."""
    preview = web.post_form(
        f"/cases/{ref}/approve/preview", {"reason": reason}, from_page=f"/cases/{ref}"
    )
    assert preview.status_code == 200 and "Check the changes before approving" in preview.text
    digest = re.search(r'name="plan" value="([0-9a-f]{64})"', preview.text)
    assert digest, "the preview carries the plan's digest"
    return web.post_form(
        f"/cases/{ref}/actions/approve",
        {"reason": reason, "plan": digest.group(1)},
        from_page=f"/cases/{ref}",
        follow=True,
    )


def _state(web: WebClient, ref: str) -> str:
    with web.settings.database.transaction() as session:
        return get_case(session, ref).state


def test_case_page_shows_what_a_caseworker_needs(web: WebClient) -> None:
    ref = _triage(
        web,
        html="<p>Please <b>help</b></p>",
        attachments=[("form.pdf", "application/pdf", b"%PDF-1.4 form")],
    )
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    assert "No approver answered clearly." in page  # the reason
    # Fields read, each beside its findings; findings about no field apart.
    signer_row = page.split(">Signed by<")[1].split("</tr>")[0]
    assert "Dr Priya Shah" in signer_row and "The signature date is in the future." in signer_row
    assert "Part of the form was scanned." in page.split('id="read"')[1].split("<table")[0]
    assert "Nia Patel – nia.patel@nhs.net – for GP Payments and Pensions" in page
    # The original email: text, HTML inert, attachments to download.
    assert "Please make Nia Patel a GPP admin." in page
    assert 'sandbox=""' in page and "&lt;b&gt;help&lt;/b&gt;" in page
    assert "/attachments/1" in page and "form.pdf" in page
    # The directory's view of the organisation.
    for expected in (
        "Riverside Surgery",
        "gill.admin@nhs.net",
        "mo.contact@nhs.net",
        "Dr Tom Reed (Caldicott Guardian)",
        "Alex Morgan (GP Payments – General)",
    ):
        assert expected in page
    # History and the actions its state allows.
    assert "Case opened as user_admin_form." in page
    assert f"/cases/{ref}/approve/preview" in page  # Approve shows its changes first
    for action in ("reject", "request_info", "send_approval_request", "withdraw"):
        assert f"/cases/{ref}/actions/{action}" in page
    assert f"/cases/{ref}/actions/reopen" not in page
    assert ">None</textarea>" not in page


def test_approve_applies_the_changes_to_the_directory(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    # The case has open findings: the caseworker's approval waits for a supervisor's.
    done = approve_via_preview(web, ref, "Checked by phone")
    assert "a second caseworker or a supervisor must confirm" in done.text
    assert _state(web, ref) == "triage"
    web.sign_in(SUPERVISOR)
    done = approve_via_preview(web, ref, "Agreed with Casey")
    assert "Approve: done. The case is now completed." in done.text
    assert "Checked by phone" in done.text
    assert _state(web, ref) == "completed"
    with web.settings.database.transaction() as session:
        emails = [p.email for p in directory.admins(session, PRACTICE, Service.GPP)]
    assert "nia.patel@nhs.net" in emails


def test_reject_sends_the_reason_to_the_requester(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    done = web.post_form(
        f"/cases/{ref}/actions/reject",
        {"reason": "The practice has four admins already."},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "The case is now rejected." in done.text
    with web.settings.database.transaction() as session:
        sent = session.query(OutboxMessage).filter_by(purpose="outcome_rejected").one()
        assert sent.to_address == "practice.manager@nhs.net"
        assert "The practice has four admins already." in sent.body_text
        assert ref in sent.subject
    assert f"/outbox/{sent.id}" in done.text  # listed with the case's emails


def test_request_information_and_withdraw(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    web.post_form(
        f"/cases/{ref}/actions/request_info",
        {"message": "Please send Part B signed."},
        from_page=f"/cases/{ref}",
    )
    assert _state(web, ref) == "needs_info"
    with web.settings.database.transaction() as session:
        asked = session.query(OutboxMessage).filter_by(purpose="needs_info").one()
        assert "Please send Part B signed." in asked.body_text
    web.post_form(
        f"/cases/{ref}/actions/withdraw", {"reason": "Duplicate"}, from_page=f"/cases/{ref}"
    )
    assert _state(web, ref) == "withdrawn"


def test_send_an_approval_request_to_a_recorded_approver_only(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    assert 'value="priya.shah@nhs.net"' in page and 'value="alex.morgan@nhs.net"' in page
    refused = web.post_form(
        f"/cases/{ref}/actions/send_approval_request",
        {"approver_email": "someone.else@gmail.com"},
        from_page=f"/cases/{ref}",
    )
    assert refused.status_code == 409
    assert "is not a recorded signer of A81001" in refused.text
    assert _state(web, ref) == "triage"
    done = web.post_form(
        f"/cases/{ref}/actions/send_approval_request",
        {"approver_email": "alex.morgan@nhs.net"},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "An approval request was sent to alex.morgan@nhs.net." in done.text
    assert _state(web, ref) == "awaiting_approval"
    with web.settings.database.transaction() as session:
        request = session.query(ApprovalRequest).one()
        assert request.approver_email == "alex.morgan@nhs.net" and request.status == "open"
    approvals = done.text.split('id="approvals"')[1].split("</table>")[0]
    assert "Alex Morgan (AEL contact, GP Payments – General)" in approvals


def test_refusals_and_missing_reasons_are_shown_in_words(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    empty = web.post_form(
        f"/cases/{ref}/actions/reject", {"reason": " "}, from_page=f"/cases/{ref}"
    )
    assert empty.status_code == 400
    assert "Enter the reason for rejecting the request" in empty.text
    assert 'href="#reject-reason"' in empty.text
    web.post_form(f"/cases/{ref}/actions/withdraw", {"reason": "Spam"}, from_page=f"/cases/{ref}")
    late = web.post_form(
        f"/cases/{ref}/actions/approve", {"reason": "Too late"}, from_page=f"/cases/{ref}"
    )
    assert late.status_code == 409
    assert escape(f"Case {ref} is withdrawn; approve is allowed only when it is") in late.text
    assert (
        web.post_form(
            f"/cases/{ref}/actions/explode", {"reason": "x"}, from_page=f"/cases/{ref}"
        ).status_code
        == 404
    )
    missing = web.get("/cases/PCSE-1999-000001")
    assert missing.status_code == 404 and "There is no case PCSE-1999-000001." in missing.text
    assert "check it is correct" in web.get("/no/such/page").text


def test_only_a_supervisor_reopens_an_expired_case(web: WebClient) -> None:
    ref = _triage(web)
    with web.settings.database.transaction() as session:
        case = get_case(session, ref)
        move(session, case, "needs_info", actor="test", reason="asked")
        move(session, case, "expired", actor="test", reason="no answer")
    web.sign_in()
    assert f"/cases/{ref}/actions/reopen" not in web.get(f"/cases/{ref}").text
    refused = web.post_form(
        f"/cases/{ref}/actions/reopen", {"reason": "Answer arrived"}, from_page=f"/cases/{ref}"
    )
    assert refused.status_code == 403
    assert _state(web, ref) == "expired"
    web.post_form("/sign-out", {})
    web.sign_in(SUPERVISOR)
    assert f"/cases/{ref}/actions/reopen" in web.get(f"/cases/{ref}").text
    done = web.post_form(
        f"/cases/{ref}/actions/reopen",
        {"reason": "Answer arrived"},
        from_page=f"/cases/{ref}",
        follow=True,
    )
    assert "The case is now triage." in done.text
    assert _state(web, ref) == "triage"


def test_hostile_email_renders_inert(web: WebClient) -> None:
    ref = _triage(
        web,
        subject="Help <script>alert('s')</script>",
        text="Body <script>alert('t')</script>",
        html='<script>alert("h")</script><img src=x onerror="alert(1)">',
    )
    web.sign_in()
    page = web.get(f"/cases/{ref}").text
    assert "<script>alert" not in page
    assert 'onerror="alert' not in page
    assert escape("Help <script>alert('s')</script>") in page


def test_an_action_on_a_case_changed_since_its_page_was_shown_is_refused(web: WebClient) -> None:
    """Casey opens a case in triage; meanwhile a colleague sends it to an approver. Her
    Reject, from the page she still has, would undo an approval request the approver is
    reading: it is refused, and she sees the case as it is now."""
    ref = _triage(web)
    web.sign_in()
    page = web.client.get(f"/cases/{ref}").text
    shown = re.search(r'name="shown_state" value="([a-z_]+)"', page)
    assert shown and shown.group(1) == "triage"
    with web.settings.database.transaction() as session:
        move(session, get_case(session, ref), "awaiting_approval", actor="sam", reason="asked")
    refused = web.post_form(
        f"/cases/{ref}/actions/reject",
        {"reason": "Four admins already.", "shown_state": shown.group(1)},
        from_page=f"/cases/{ref}",
    )
    assert refused.status_code == 409
    assert "changed since you opened it" in refused.text
    with web.settings.database.transaction() as session:
        assert get_case(session, ref).state == "awaiting_approval"


def test_taking_a_case_over_from_a_stale_page_is_refused(web: WebClient) -> None:
    ref = _triage(web)
    web.sign_in()
    page = web.client.get(f"/cases/{ref}").text
    assert 'name="shown_assignee" value=""' in page
    with web.settings.database.transaction() as session:
        get_case(session, ref).assigned_to = "sam@pcse.nhs.uk"
    refused = web.post_form(
        f"/cases/{ref}/assign", {"to": "me", "shown_assignee": ""}, from_page=f"/cases/{ref}"
    )
    assert refused.status_code == 409
    assert "now with sam@pcse.nhs.uk" in refused.text
    with web.settings.database.transaction() as session:
        assert get_case(session, ref).assigned_to == "sam@pcse.nhs.uk"
