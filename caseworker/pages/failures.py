"""Inbound messages and outbox emails: see why one failed or was held, retry it, or dismiss it
with a reason (through intake.ledger and notifications.outbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.ids import ROW_ID
from caseworker.mailview import attachment, content_disposition, message_view, raw_bytes
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings
from core.errors import PcseError
from core.patterns import mask_tokens, mask_tokens_in_markup
from core.timeutil import as_utc
from intake import ledger
from intake.models import InboundMessage
from notifications import outbox
from notifications.claims import is_unconfirmed
from notifications.models import OutboxMessage
from workflow import mail
from workflow.models import Case


def _case_ref(session: Session, case_id: int | None) -> str | None:
    case = session.get(Case, case_id) if case_id else None
    return case.ref if case else None


def _message_page(
    session: Session, message_id: int, raw_dir, seconds: float
) -> dict[str, Any] | None:
    row = session.get(InboundMessage, message_id)
    if row is None:
        return None
    return {
        "message": {
            "id": row.id,
            "mailbox": row.mailbox,
            "received_at": as_utc(row.received_at),
            "from_address": row.from_address,
            "from_name": row.from_name,
            "sender_status": row.sender_status,
            "sender_detail": row.sender_detail,
            "subject": mask_tokens(row.subject or ""),
            "status": row.status,
            "classification": row.classification,
            "outcome": row.outcome,
            "error": row.error,
            "attempts": row.attempts,
            "case_ref": _case_ref(session, row.case_id),
        },
        "mail": asdict(message_view(session, raw_dir, row, seconds)),
        "can_retry": row.status in ledger.RETRYABLE,
        "can_dismiss": row.status in ledger.DISMISSABLE,
    }


async def _show_message(
    request: Request,
    *,
    problems: Problems | None = None,
    errors: list | None = None,
    values: dict | None = None,
    status_code: int = 200,
) -> Response:
    message_id = request.path_params["message_id"]
    web = settings(request)
    page = await in_transaction(
        request, _message_page, message_id, web.raw_dir, web.message_seconds
    )
    if page is None:
        raise HTTPException(status_code=404, detail=f"There is no inbound message {message_id}.")
    problems = problems or Problems()
    return render(
        request,
        "message.html",
        {
            "title": f"Message {message_id}",
            **page,
            "values": values or {},
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def message_page(request: Request) -> Response:
    return await _show_message(request)


def _attachment(session: Session, message_id: int, number: int, raw_dir, seconds: float):
    row = session.get(InboundMessage, message_id)
    return attachment(session, raw_dir, row, number, seconds) if row is not None else None


async def message_attachment(request: Request) -> Response:
    found = await in_transaction(
        request,
        _attachment,
        request.path_params["message_id"],
        request.path_params["number"],
        settings(request).raw_dir,
        settings(request).message_seconds,
    )
    if found is None:
        raise HTTPException(status_code=404, detail="There is no such attachment.")
    return _download(found.data, found.filename)


def _download(data: bytes, filename: str) -> Response:
    """Always downloaded, never rendered by the browser, whatever the sender called it."""
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def _original(session: Session, message_id: int, raw_dir) -> bytes | None:
    row = session.get(InboundMessage, message_id)
    return raw_bytes(session, raw_dir, row) if row is not None else None


async def message_original(request: Request) -> Response:
    message_id = request.path_params["message_id"]
    data = await in_transaction(request, _original, message_id, settings(request).raw_dir)
    if data is None:
        raise HTTPException(status_code=404, detail="The original message is not stored.")
    return _download(data, f"message-{message_id}.eml")  # for a mail program


def _retry_message(session: Session, message_id: int, by: str) -> None:
    ledger.retry(session, message_id, by=by)


def _dismiss_message(session: Session, message_id: int, by: str, reason: str) -> None:
    ledger.dismiss(session, message_id, by=by, reason=reason)


@form_post
async def message_retry(request: Request) -> Response:
    message_id = request.path_params["message_id"]
    return await _act(
        request,
        _show_message,
        _retry_message,
        message_id,
        current_user(request).email,
        anchor="retry",
        done=f"Message {message_id} will be processed again.",
        url=f"/messages/{message_id}",
    )


@form_post
async def message_dismiss(request: Request) -> Response:
    message_id = request.path_params["message_id"]
    return await _act_with_reason(
        request,
        _show_message,
        _dismiss_message,
        message_id,
        field="reason",
        limit=1000,
        missing="Enter why the message is dismissed",
        anchor="dismiss",
        done=f"Message {message_id} was dismissed.",
        url=f"/messages/{message_id}",
    )


async def _act_with_reason(
    request: Request,
    show: Callable[..., Awaitable[Response]],
    action: Callable[..., None],
    target: int,
    *,
    field: str,
    limit: int,
    missing: str,
    anchor: str,
    done: str,
    url: str,
) -> Response:
    """An action that needs a reason: asked again when empty, its refusal shown in words."""
    reason = text(request, field, limit=limit)
    if not reason:
        problems = Problems()
        problems.add(field, missing)
        return await show(request, problems=problems, status_code=400)
    return await _act(
        request,
        show,
        action,
        target,
        current_user(request).email,
        reason,
        anchor=anchor,
        done=done,
        url=url,
        values={field: reason},
    )


async def _act(
    request: Request,
    show: Callable[..., Awaitable[Response]],
    action: Callable[..., None],
    *args: Any,
    anchor: str,
    done: str,
    url: str,
    values: dict[str, str] | None = None,
) -> Response:
    """Run a caseworker's action in one transaction: on success say so and go to `url`;
    a refusal is shown on the page, beside the form it came from (`anchor`)."""
    try:
        await in_transaction(request, action, *args)
    except PcseError as refused:
        return await show(
            request, errors=refusal(str(refused), anchor), values=values, status_code=409
        )
    flash(request, done)
    return RedirectResponse(url, status_code=303)


# --------------------------------------------------------------------------- outbox


def _outbox_page(session: Session, outbox_id: int) -> dict[str, Any] | None:
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        return None
    return {
        "email": {
            "id": row.id,
            "purpose": row.purpose,
            "to_address": row.to_address,
            "to_name": row.to_name,
            "subject": mask_tokens(row.subject),
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "created_at": as_utc(row.created_at),
            "sent_at": as_utc(row.sent_at),
            "next_attempt_at": as_utc(row.next_attempt_at),
            "message_id": row.message_id,
            # An approval code is the approver's key: shown here only by its first characters.
            "body_text": mask_tokens(row.body_text),
            "body_html": mask_tokens_in_markup(row.body_html) if row.body_html else None,
            "attachments": list(row.attachments or []),
            "case_ref": _case_ref(session, row.case_id),
        },
        "can_retry": outbox.retryable(row.status, row.last_error),
        "can_dismiss": row.status in outbox.DISMISSABLE,
        "unconfirmed": is_unconfirmed(row.status, row.last_error),
    }


async def _show_outbox(
    request: Request,
    *,
    problems: Problems | None = None,
    errors: list | None = None,
    values: dict | None = None,
    status_code: int = 200,
) -> Response:
    outbox_id = request.path_params["outbox_id"]
    page = await in_transaction(request, _outbox_page, outbox_id)
    if page is None:
        raise HTTPException(status_code=404, detail=f"There is no email {outbox_id}.")
    problems = problems or Problems()
    return render(
        request,
        "outbox.html",
        {
            "title": f"Email {outbox_id}",
            **page,
            "values": values or {},
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def outbox_page(request: Request) -> Response:
    return await _show_outbox(request)


def _retry_outbox(session: Session, outbox_id: int, by: str) -> None:
    mail.retry(session, outbox_id, by=by)


def _dismiss_outbox(session: Session, outbox_id: int, by: str, reason: str) -> None:
    mail.dismiss(session, outbox_id, by=by, reason=reason)


@form_post
async def outbox_retry(request: Request) -> Response:
    outbox_id = request.path_params["outbox_id"]
    return await _act(
        request,
        _show_outbox,
        _retry_outbox,
        outbox_id,
        current_user(request).email,
        anchor="retry",
        done=f"Email {outbox_id} will be sent again.",
        url=f"/outbox/{outbox_id}",
    )


@form_post
async def outbox_dismiss(request: Request) -> Response:
    outbox_id = request.path_params["outbox_id"]
    return await _act_with_reason(
        request,
        _show_outbox,
        _dismiss_outbox,
        outbox_id,
        field="reason",
        limit=500,
        missing="Enter why the email will not be sent",
        anchor="dismiss",
        done=f"Email {outbox_id} was dismissed and will not be sent.",
        url=f"/outbox/{outbox_id}",
    )


def _accept_outbox(session: Session, outbox_id: int, by: str, reason: str) -> None:
    mail.accept_as_sent(session, outbox_id, by=by, reason=reason)


@form_post
async def outbox_accept(request: Request) -> Response:
    outbox_id = request.path_params["outbox_id"]
    return await _act_with_reason(
        request,
        _show_outbox,
        _accept_outbox,
        outbox_id,
        field="accept_reason",
        limit=500,
        missing="Enter why the email can be left as sent",
        anchor="accept",
        done=f"Email {outbox_id} is left as sent.",
        url=f"/outbox/{outbox_id}",
    )


routes = [
    Route(f"/messages/{{message_id:{ROW_ID}}}", message_page, methods=["GET"]),
    Route(
        f"/messages/{{message_id:{ROW_ID}}}/attachments/{{number:int}}",
        message_attachment,
        methods=["GET"],
    ),
    Route(f"/messages/{{message_id:{ROW_ID}}}/original", message_original, methods=["GET"]),
    Route(f"/messages/{{message_id:{ROW_ID}}}/retry", message_retry, methods=["POST"]),
    Route(f"/messages/{{message_id:{ROW_ID}}}/dismiss", message_dismiss, methods=["POST"]),
    Route(f"/outbox/{{outbox_id:{ROW_ID}}}", outbox_page, methods=["GET"]),
    Route(f"/outbox/{{outbox_id:{ROW_ID}}}/retry", outbox_retry, methods=["POST"]),
    Route(f"/outbox/{{outbox_id:{ROW_ID}}}/dismiss", outbox_dismiss, methods=["POST"]),
    Route(f"/outbox/{{outbox_id:{ROW_ID}}}/accept", outbox_accept, methods=["POST"]),
]
