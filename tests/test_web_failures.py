"""Failed messages and outbox failures: see why, retry, or dismiss with a reason."""

from __future__ import annotations

import uuid

from markupsafe import escape

from intake.models import InboundMessage
from notifications.claims import UNCONFIRMED
from notifications.models import OutboxMessage
from tests.fixtures.browser import (
    PRACTICE,
    SUPERVISOR,
    WebClient,
    email_bytes,
    seed_directory,
    store_message,
)

HOSTILE_SUBJECT = "Hello <script>alert('subject')</script>"
HOSTILE_HTML = '<p>Hi</p><script>alert("body")</script><img src="x" onerror="alert(\'img\')">'


def _failed_message(web: WebClient, **kwargs) -> int:
    raw = email_bytes(
        subject=kwargs.pop("subject", "Form attached"),
        text=kwargs.pop("text", "Please see the form."),
        **kwargs,
    )
    return store_message(
        web.settings.database,
        web.settings.raw_dir,
        raw,
        status="failed",
        error="RuntimeError: the form reader stopped",
    )


def _outbox(web: WebClient, status: str, error: str | None = None) -> int:
    with web.settings.database.transaction() as session:
        row = OutboxMessage(
            purpose="outcome_rejected",
            message_id=f"<{status}-{uuid.uuid4().hex}@pcse.test>",
            to_address="requester@nhs.net",
            subject="[PCSE-2026-000001] Result",
            body_text="Your request was rejected.",
            status=status,
            last_error=error,
        )
        session.add(row)
        session.flush()
        return row.id


def test_failed_message_shows_the_error_and_the_email_inert(web: WebClient) -> None:
    message_id = _failed_message(
        web,
        subject=HOSTILE_SUBJECT,
        html=HOSTILE_HTML,
        attachments=[("../../etc/form.pdf", "application/pdf", b"%PDF-1.4 data")],
    )
    web.sign_in()
    page = web.get(f"/messages/{message_id}").text
    assert "RuntimeError: the form reader stopped" in page
    assert "<script>alert(" not in page
    assert str(escape(HOSTILE_SUBJECT)) in page
    assert 'sandbox=""' in page and 'srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;' in page
    assert 'onerror="alert' not in page
    assert "form.pdf" in page and "../" not in page.split("Attachments")[-1]


def test_attachments_download_with_safe_names(web: WebClient) -> None:
    message_id = _failed_message(
        web,
        attachments=[
            ('evil"name;.html', "text/html", b"<script>alert(1)</script>"),
            ("form.pdf", "application/pdf", b"%PDF-1.4 data"),
        ],
    )
    web.sign_in()
    first = web.get(f"/messages/{message_id}/attachments/1")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/octet-stream"
    disposition = first.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert 'filename="evil_name_.html"' in disposition  # no quote can end the value early
    assert first.content == b"<script>alert(1)</script>"
    assert "sandbox" in first.headers["content-security-policy"]
    second = web.get(f"/messages/{message_id}/attachments/2")
    assert second.content == b"%PDF-1.4 data"
    assert 'filename="form.pdf"' in second.headers["content-disposition"]
    assert web.get(f"/messages/{message_id}/attachments/3").status_code == 404


def test_retry_a_failed_message(web: WebClient) -> None:
    message_id = _failed_message(web)
    web.sign_in()
    page = f"/messages/{message_id}"
    done = web.post_form(f"{page}/retry", {}, from_page=page, follow=True)
    assert f"Message {message_id} will be processed again." in done.text
    with web.settings.database.transaction() as session:
        row = session.get(InboundMessage, message_id)
        assert row.status == "pending" and row.error is None
        assert "casey.worker@nhs.net" in row.outcome
    again = web.post_form(f"{page}/retry", {}, from_page=page)
    assert again.status_code == 409
    assert "only failed or dismissed messages can be retried" in again.text


def test_dismiss_a_failed_message_with_a_reason(web: WebClient) -> None:
    message_id = _failed_message(web)
    web.sign_in()
    page = f"/messages/{message_id}"
    empty = web.post_form(f"{page}/dismiss", {"reason": ""}, from_page=page)
    assert empty.status_code == 400
    assert "Enter why the message is dismissed" in empty.text
    done = web.post_form(f"{page}/dismiss", {"reason": "Spam"}, from_page=page, follow=True)
    assert f"Message {message_id} was dismissed." in done.text
    with web.settings.database.transaction() as session:
        row = session.get(InboundMessage, message_id)
        assert row.status == "dismissed" and "Spam" in row.outcome
    assert f"/messages/{message_id}" not in web.get("/").text  # no longer needs a person


def test_the_original_message_downloads_as_it_arrived(web: WebClient) -> None:
    raw = email_bytes(subject="Form attached", text="Please see the form.")
    message_id = store_message(
        web.settings.database,
        web.settings.raw_dir,
        raw,
        status="failed",
        error="RuntimeError: stopped",
    )
    web.sign_in()
    assert f'href="/messages/{message_id}/original"' in web.get(f"/messages/{message_id}").text
    original = web.get(f"/messages/{message_id}/original")
    assert original.status_code == 200
    assert original.content == raw
    assert original.headers["content-type"] == "application/octet-stream"
    assert f'filename="message-{message_id}.eml"' in original.headers["content-disposition"]
    assert web.get("/messages/999/original").status_code == 404


def test_retry_a_held_email_and_dismiss_a_failed_one(web: WebClient) -> None:
    held = _outbox(web, "held")
    failed = _outbox(web, "failed", "550 mailbox unavailable")
    web.sign_in()
    page = web.get(f"/outbox/{failed}").text
    assert "550 mailbox unavailable" in page and "Your request was rejected." in page
    done = web.post_form(f"/outbox/{held}/retry", {}, from_page=f"/outbox/{held}", follow=True)
    assert f"Email {held} will be sent again." in done.text
    empty = web.post_form(
        f"/outbox/{failed}/dismiss", {"reason": ""}, from_page=f"/outbox/{failed}"
    )
    assert "Enter why the email will not be sent" in empty.text
    web.post_form(
        f"/outbox/{failed}/dismiss", {"reason": "Address gone"}, from_page=f"/outbox/{failed}"
    )
    with web.settings.database.transaction() as session:
        assert session.get(OutboxMessage, held).status == "pending"
        dismissed = session.get(OutboxMessage, failed)
        assert dismissed.status == "dismissed" and "Address gone" in dismissed.last_error
    refused = web.post_form(f"/outbox/{failed}/retry", {}, from_page=f"/outbox/{failed}")
    assert refused.status_code == 409
    assert "only held, failed or unconfirmed emails can be sent again" in refused.text


def test_an_unconfirmed_email_is_queued_for_a_person_who_sends_it_again_or_leaves_it(
    web: WebClient,
) -> None:
    again = _outbox(web, "sent", UNCONFIRMED)
    left = _outbox(web, "sent", UNCONFIRMED)
    delivered = _outbox(web, "sent")
    web.sign_in()
    queue = web.get("/").text
    assert queue.count("Unconfirmed email") == 2
    assert f"/outbox/{delivered}" not in queue
    page = web.get(f"/outbox/{again}").text
    assert "Delivery unconfirmed" in page and "Leave as sent" in page
    assert "Leave as sent" not in web.get(f"/outbox/{delivered}").text
    web.post_form(f"/outbox/{again}/retry", {}, from_page=f"/outbox/{again}")
    empty = web.post_form(
        f"/outbox/{left}/accept", {"accept_reason": ""}, from_page=f"/outbox/{left}"
    )
    assert empty.status_code == 400 and "Enter why the email can be left as sent" in empty.text
    done = web.post_form(
        f"/outbox/{left}/accept",
        {"accept_reason": "She has it"},
        from_page=f"/outbox/{left}",
        follow=True,
    )
    assert f"Email {left} is left as sent." in done.text
    with web.settings.database.transaction() as session:
        assert session.get(OutboxMessage, again).status == "pending"
        kept = session.get(OutboxMessage, left)
        assert kept.status == "sent" and "She has it" in kept.last_error
    assert "Unconfirmed email" not in web.get("/").text
    refused = web.post_form(
        f"/outbox/{delivered}/accept", {"accept_reason": "x"}, from_page=f"/outbox/{delivered}"
    )
    assert refused.status_code == 409


def test_missing_rows_are_404(web: WebClient) -> None:
    web.sign_in()
    assert web.get("/messages/999").status_code == 404
    assert web.get("/outbox/999").status_code == 404


# Past PostgreSQL's INTEGER, and past 64 bits: no row's id.
PAST_THE_RANGE = [str(2**31), "9" * 20]


def test_ids_past_the_database_range_are_answered_as_missing(web: WebClient) -> None:
    seed_directory(web.settings.database)
    web.sign_in(SUPERVISOR)
    org = f"/directory/organisations/{PRACTICE}"
    for big in PAST_THE_RANGE:
        for page in (f"/messages/{big}", f"/outbox/{big}", f"/accounts/{big}/password"):
            assert web.get(page).status_code == 404, page
        bulk = web.post_form(
            "/queue/bulk", {"item": f"message:{big}", "action": "retry", "back": "/"}, follow=True
        )
        assert bulk.status_code == 200 and "Nothing was selected." in bulk.text
        restore = web.post_form(f"{org}/restore", {"assignment": big, "reason": "x"}, from_page=org)
        assert restore.status_code == 409
        assert "There is no ended role with that number to restore." in restore.text
    assert web.get("/messages/2147483647").status_code == 404  # the largest: looked for
