"""Approving with a preview, and changing a case's kind.

Approve first shows the plan (workflow.approval_plan: the grants, removals and Main
Contact replacement that the applying code itself finds in a rolled-back dry run), and
the confirmation carries the plan's digest: if the case or the directory changed in
between, the confirmation is refused and the new plan shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker import source_mail
from caseworker.auth import current_user
from caseworker.casepage import case_page
from caseworker.labels import KIND_LABELS
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import WebSettings, in_transaction, settings
from core.errors import PcseError
from workflow import actions
from workflow.approval_plan import Plan, open_proposal, plan_for
from workflow.cases import CaseNotFound, get_case
from workflow.env import WorkflowEnv


async def load_case_page(request: Request, ref: str) -> dict[str, Any]:
    """What the case page shows, for the signed-in caseworker (404 for no such case)."""
    web = settings(request)
    try:
        return await in_transaction(
            request,
            case_page,
            ref,
            web.raw_dir,
            supervisor=current_user(request).is_supervisor,
            seconds=web.message_seconds,
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None


async def _case_page(
    request: Request,
    ref: str,
    *,
    values: dict[str, str],
    problems: Problems | None = None,
    errors: list | None = None,
    status_code: int,
) -> Response:
    """The case page again, with what was wrong in a form posted from it."""
    page = await load_case_page(request, ref)
    problems = problems or Problems()
    page["approver_items"] = [{**choice, "checked": False} for choice in page["approvers"]]
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


def _preview(session: Session, env: WorkflowEnv, ref: str, by: str) -> dict[str, Any]:
    case = get_case(session, ref)
    actions.require_allowed(case, "approve")
    plan = plan_for(session, env, case, actor=by)
    return {
        "plan": plan,
        "proposal": open_proposal(case),
        "supervisor": env.is_supervisor(session, by),
    }


async def _show_preview(
    request: Request,
    ref: str,
    reason: str,
    *,
    errors: list | None = None,
    plan: Plan | None = None,
    status_code: int = 200,
) -> Response:
    user = current_user(request)
    try:
        found = await in_transaction(request, _preview, settings(request).env, ref, user.email)
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except PcseError as refused:
        return await _case_page(
            request, ref, errors=refusal(f"Approve: {refused}"), values={}, status_code=409
        )
    shown = plan or found["plan"]
    proposal = found["proposal"]
    return render(
        request,
        "approve_preview.html",
        {
            "title": f"Check the changes – {ref}",
            "ref": ref,
            "plan": shown,
            "proposal": proposal,
            "own_proposal": bool(proposal and proposal.get("by") == user.email),
            "proposal_matches": bool(proposal and proposal.get("plan") == shown.digest),
            "supervisor": found["supervisor"],
            "reason": reason,
            "errors": errors or [],
            "field_errors": {},
        },
        status_code=status_code,
    )


@form_post
async def approve_preview(request: Request) -> Response:
    """Step one of Approve: what it will change, with the reason kept for step two."""
    ref = request.path_params["ref"]
    reason = text(request, "reason")
    if not reason:
        problems = Problems()
        problems.add("approve-reason", "Enter why the case is approved")
        return await _case_page(request, ref, problems=problems, values={}, status_code=400)
    return await _show_preview(request, ref, reason)


def _confirm(
    session: Session, env: WorkflowEnv, ref: str, by: str, reason: str, digest: str
) -> actions.Approval:
    return actions.approve_plan(session, env, ref, by=by, reason=reason, plan_digest=digest)


async def confirm_approve(request: Request) -> Response:
    """Step two: apply the plan that was shown, or refuse and show the new one."""
    ref = request.path_params["ref"]
    reason = text(request, "reason")
    digest = text(request, "plan", limit=64)
    if not reason or not digest:
        return await _show_preview(
            request,
            ref,
            reason,
            errors=refusal("Check the changes below, then confirm them.", "plan"),
            status_code=400,
        )
    user = current_user(request)
    try:
        done = await in_transaction(
            request, _confirm, settings(request).env, ref, user.email, reason, digest
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except actions.StalePlan as stale:
        return await _show_preview(
            request,
            ref,
            reason,
            errors=refusal(str(stale), "plan"),
            plan=stale.plan,
            status_code=409,
        )
    except PcseError as refused:
        return await _show_preview(
            request, ref, reason, errors=refusal(f"Approve: {refused}", "plan"), status_code=409
        )
    if done.proposed:
        flash(
            request,
            "Your approval is recorded. The case has open findings, so a second caseworker "
            "or a supervisor must confirm the same changes before they are applied.",
            kind="warning",
        )
    else:
        state = done.case.state.replace("_", " ")
        flash(request, f"Approve: done. The case is now {state}.")
    return RedirectResponse(f"/cases/{ref}", status_code=303)


def _change_kind(
    session: Session, request_settings: WebSettings, ref: str, kind: str, by: str, reason: str
) -> str:
    case = source_mail.change_kind(
        session,
        request_settings.env,
        request_settings.raw_dir,
        ref,
        kind=kind,
        by=by,
        reason=reason,
        seconds=request_settings.message_seconds,
    )
    return case.kind


@form_post
async def change_kind(request: Request) -> Response:
    ref = request.path_params["ref"]
    kind = text(request, "kind", limit=40)
    reason = text(request, "reason")
    values = {"kind": kind, "kind-reason": reason}
    problems = Problems()
    if kind not in KIND_LABELS:
        problems.add("kind", "Choose the kind of request this is")
    if not reason:
        problems.add("kind-reason", "Enter why the kind is changed")
    if problems:
        return await _case_page(request, ref, problems=problems, values=values, status_code=400)
    user = current_user(request)
    try:
        new = await in_transaction(
            request, _change_kind, settings(request), ref, kind, user.email, reason
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except PcseError as refused:
        return await _case_page(
            request,
            ref,
            errors=refusal(f"Change the kind: {refused}", "change-kind"),
            values=values,
            status_code=409,
        )
    flash(request, f"The case is now a {KIND_LABELS[new]} and was read again. It is in triage.")
    return RedirectResponse(f"/cases/{ref}", status_code=303)


routes = [
    Route("/cases/{ref}/approve/preview", approve_preview, methods=["POST"]),
    Route("/cases/{ref}/kind", change_kind, methods=["POST"]),
]
