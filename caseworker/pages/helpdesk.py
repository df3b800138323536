"""The case page's helpdesk forms: correct a value, add an internal note, reply to the
requester, merge a duplicate into the original. Each goes through the workflow's own
module (workflow.corrections, workflow.notes, workflow.merge_cases); a refusal shows the
case page again with the workflow's sentence beside the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.labels import state_label
from caseworker.pages.cases import _show as show_case
from caseworker.pages.forms import Problems, text
from caseworker.rendering import flash
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings
from core.errors import PcseError
from workflow import corrections, merge_cases, notes
from workflow.cases import CaseNotFound
from workflow.env import WorkflowEnv


@dataclass(frozen=True)
class Posted:
    """A form field: the posted name, its element id on the page, the error when empty."""

    name: str
    element: str
    missing: str
    limit: int = 5000


FORMS: dict[str, tuple[Posted, ...]] = {
    "correct": (
        Posted("field", "correct-field", "Choose the value to correct", 60),
        Posted("value", "correct-value", "Enter the corrected value", 254),
        Posted("reason", "correct-reason", "Enter why the value is corrected"),
    ),
    "note": (Posted("text", "note-text", "Enter the note", notes.TEXT_LIMIT),),
    "reply": (Posted("message", "reply-message", "Enter your reply", notes.TEXT_LIMIT),),
    "merge": (
        Posted("into", "merge-into", "Enter the reference of the case to keep", 40),
        Posted("reason", "merge-reason", "Enter why the cases are the same request"),
    ),
}
# Where a refusal is shown: the field it is about.
REFUSAL_AT = {
    "correct": "correct-value",
    "note": "note-text",
    "reply": "reply-message",
    "merge": "merge-into",
}


def _correct(session: Session, env: WorkflowEnv, ref: str, by: str, name: str, v: dict) -> str:
    done = corrections.correct(
        session, env, ref, field=v["field"], value=v["value"], by=by, reason=v["reason"]
    )
    state = state_label(done.case.state).lower()
    voided = " The open approval request no longer counts." if done.voided else ""
    return f"Corrected. The case was read again and is now {state}.{voided}"


def _note(session: Session, env: WorkflowEnv, ref: str, by: str, name: str, v: dict) -> str:
    notes.add_note(session, env, ref, by=by, text=v["text"])
    return "Note added. Only caseworkers can see it."


def _reply(session: Session, env: WorkflowEnv, ref: str, by: str, name: str, v: dict) -> str:
    row = notes.reply(session, env, ref, by=by, message=v["message"], signature=name)
    return f"Your reply to {row.to_address} is in the outbox."


def _merge(session: Session, env: WorkflowEnv, ref: str, by: str, name: str, v: dict) -> str:
    original = merge_cases.merge(session, env, ref, into=v["into"], by=by, reason=v["reason"])
    return f"Merged into {original.ref}. The requester was told to use {original.ref}."


WORK: dict[str, Callable[..., str]] = {
    "correct": _correct,
    "note": _note,
    "reply": _reply,
    "merge": _merge,
}
# Where each form sends the caseworker afterwards.
AFTER: dict[str, Callable[[str, dict[str, str]], str]] = {
    "correct": lambda ref, v: f"/cases/{ref}#read",
    "note": lambda ref, v: f"/cases/{ref}#history",
    "reply": lambda ref, v: f"/cases/{ref}#emails",
    "merge": lambda ref, v: f"/cases/{v['into'].strip().upper()}",
}


@form_post
async def helpdesk_post(request: Request) -> Response:
    ref = request.path_params["ref"]
    what = request.path_params["what"]
    posted = FORMS.get(what)
    if posted is None:
        raise HTTPException(status_code=404, detail="There is no such form.")
    user = current_user(request)
    values = {p.name: text(request, p.name, limit=p.limit) for p in posted}
    shown = {p.element: values[p.name] for p in posted}
    problems = Problems()
    for p in posted:
        if not values[p.name]:
            problems.add(p.element, p.missing)
    if problems:
        return await show_case(request, ref, problems=problems, values=shown, status_code=400)
    try:
        message = await in_transaction(
            request, WORK[what], settings(request).env, ref, user.email, user.name, values
        )
    except CaseNotFound as missing:
        if what == "merge" and missing.ref != ref:
            problems.add("merge-into", f"There is no case {missing.ref}.")
            return await show_case(request, ref, problems=problems, values=shown, status_code=409)
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except PcseError as refused:
        # The transaction rolled back: nothing changed. Say why, beside the field.
        problems.add(REFUSAL_AT[what], str(refused))
        return await show_case(request, ref, problems=problems, values=shown, status_code=409)
    flash(request, message)
    return RedirectResponse(AFTER[what](ref, values), status_code=303)


routes = [Route("/cases/{ref}/helpdesk/{what}", helpdesk_post, methods=["POST"])]
