"""The case page's new reply: reopen the closed case, or mark the reply as read, each with
a reason (workflow.new_replies)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.pages.cases import _show
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings
from core.errors import PcseError
from workflow import new_replies
from workflow.cases import CaseNotFound

FIELD = "new-reply-reason"
DONE = {
    "reopen": "The case is reopened and back in triage.",
    "clear": "The reply is marked as read.",
}


@form_post
async def new_reply(request: Request) -> Response:
    ref = request.path_params["ref"]
    do = text(request, "do", limit=10)
    if do not in DONE:
        raise HTTPException(
            status_code=400, detail="Choose to reopen the case or mark the reply read."
        )
    reason = text(request, "reason", limit=2000)
    values = {FIELD: reason}
    if not reason:
        problems = Problems()
        problems.add(FIELD, "Enter what you did about the reply")
        return await _show(request, ref, problems=problems, values=values, status_code=400)
    operation = new_replies.reopen if do == "reopen" else new_replies.clear
    try:
        await in_transaction(
            request,
            operation,
            settings(request).env,
            ref,
            by=current_user(request).email,
            reason=reason,
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    except PcseError as refused:
        return await _show(
            request, ref, errors=refusal(str(refused), "new-reply"), values=values, status_code=409
        )
    flash(request, DONE[do])
    return RedirectResponse(f"/cases/{ref}", status_code=303)


routes = [Route("/cases/{ref}/new-reply", new_reply, methods=["POST"])]
