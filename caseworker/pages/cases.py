"""The case page and the caseworker actions on it, each through workflow.actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import SUPERVISORS_ONLY, current_user
from caseworker.labels import ACTION_LABELS, state_label
from caseworker.pages import case_plan
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings
from core.errors import PcseError
from workflow import actions
from workflow.cases import CaseNotFound, hold_case
from workflow.env import WorkflowEnv


@dataclass(frozen=True)
class ActionForm:
    field: str  # the posted field the action needs
    missing: str  # the error when it is empty


ACTION_FORMS: dict[str, ActionForm] = {
    "approve": ActionForm("reason", "Enter why the case is approved"),
    "reject": ActionForm("reason", "Enter the reason for rejecting the request"),
    "request_info": ActionForm("message", "Enter the message to send to the requester"),
    "send_approval_request": ActionForm("approver_email", "Choose the approver to ask"),
    "reopen": ActionForm("reason", "Enter why the case is reopened"),
    "withdraw": ActionForm("reason", "Enter why the case is withdrawn"),
}


def _field_id(action: str, form: ActionForm) -> str:
    return form.field if action == "send_approval_request" else f"{action}-{form.field}"


async def _show(
    request: Request,
    ref: str,
    *,
    problems: Problems | None = None,
    errors: list | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    page = await case_plan.load_case_page(request, ref)
    problems = problems or Problems()
    values = values or {}
    page["approver_items"] = [
        {**choice, "checked": choice["value"] == values.get("approver_email")}
        for choice in page["approvers"]
    ]
    return render(
        request,
        "case.html",
        {
            "title": f"Case {page['case']['ref']}",
            **page,
            "values": values,
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def case_view(request: Request) -> Response:
    return await _show(request, request.path_params["ref"])


class ChangedSinceShown(PcseError):
    """The case is not as the page that posted the action showed it."""


def _as_shown(session: Session, ref: str, shown: dict[str, str | None]) -> None:
    """Refuse to act on a case that changed since its page was shown (another caseworker
    sent it to an approver, say): the caseworker looks again. A form without the field
    (not posted from the page) is not checked. The case is held from here to the end of
    the action (workflow.cases.hold_case), so that the check still holds when it acts."""
    case = hold_case(session, ref)
    if shown.get("state") and shown["state"] != case.state:
        raise ChangedSinceShown(
            f"the case changed since you opened it: it is now {state_label(case.state).lower()}. "
            "Look at it again before acting."
        )
    if "assignee" in shown and (shown["assignee"] or None) != case.assigned_to:
        raise ChangedSinceShown(
            f"the case is now with {case.assigned_to or 'nobody'}, not as the page showed. "
            "Look at it again before taking it."
        )


def _act(
    session: Session,
    env: WorkflowEnv,
    name: str,
    ref: str,
    by: str,
    value: str,
    shown: dict[str, str | None],
) -> dict[str, Any]:
    _as_shown(session, ref, shown)
    if name == "send_approval_request":
        asked = actions.send_approval_request(session, env, ref, by=by, approver_email=value)
        return {"text": f"An approval request was sent to {asked.approver_email}."}
    if name == "request_info":
        case = actions.request_info(session, env, ref, by=by, message=value)
    else:
        case = getattr(actions, name)(session, env, ref, by=by, reason=value)
    return {
        "text": f"{ACTION_LABELS[name]}: done. The case is now {state_label(case.state).lower()}."
    }


@form_post
async def case_action(request: Request) -> Response:
    ref = request.path_params["ref"]
    name = request.path_params["action"]
    form = ACTION_FORMS.get(name)
    if form is None:
        raise HTTPException(status_code=404, detail="There is no such action.")
    user = current_user(request)
    if name == "reopen" and not user.is_supervisor:
        raise HTTPException(status_code=403, detail=SUPERVISORS_ONLY)
    if name == "approve":  # confirmed from the preview of its changes
        return await case_plan.confirm_approve(request)
    field_id = _field_id(name, form)
    value = text(request, form.field, limit=254 if name == "send_approval_request" else 5000)
    values = {field_id: value}
    if not value:
        problems = Problems()
        problems.add(field_id, form.missing)
        return await _show(request, ref, problems=problems, values=values, status_code=400)
    try:
        shown = {"state": text(request, "shown_state", limit=40) or None}
        outcome = await in_transaction(
            request, _act, settings(request).env, name, ref, user.email, value, shown
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except PcseError as refused:
        # The transaction rolled back: nothing changed. Say why, in the workflow's words.
        return await _show(
            request,
            ref,
            errors=refusal(f"{ACTION_LABELS[name]}: {refused}"),
            values=values,
            status_code=409,
        )
    flash(request, outcome["text"])
    return RedirectResponse(f"/cases/{ref}", status_code=303)


def _assign(
    session: Session,
    env: WorkflowEnv,
    ref: str,
    to: str | None,
    by: str,
    shown: dict[str, str | None],
) -> None:
    _as_shown(session, ref, shown)
    actions.assign(session, env, ref, to=to, by=by)


@form_post
async def case_assign(request: Request) -> Response:
    """Take the case ("to" = "me") or release it (anything else)."""
    ref = request.path_params["ref"]
    user = current_user(request)
    to = user.email if text(request, "to", limit=10) == "me" else None
    shown: dict[str, str | None] = {}
    if "shown_assignee" in request.state.form:  # posted from the page, as it showed the case
        shown["assignee"] = text(request, "shown_assignee", limit=254)
    try:
        await in_transaction(request, _assign, settings(request).env, ref, to, user.email, shown)
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except ChangedSinceShown as changed:
        return await _show(request, ref, errors=refusal(f"Not done: {changed}"), status_code=409)
    except PcseError as refused:  # the account gone or not found meanwhile, say
        return await _show(request, ref, errors=refusal(f"Not done: {refused}"), status_code=409)
    flash(
        request,
        "The case is now with you." if to else "The case is released: it is with nobody now.",
    )
    return RedirectResponse(f"/cases/{ref}", status_code=303)


routes = [
    Route("/cases/{ref}", case_view, methods=["GET"]),
    Route("/cases/{ref}/actions/{action}", case_action, methods=["POST"]),
    Route("/cases/{ref}/assign", case_assign, methods=["POST"]),
]
