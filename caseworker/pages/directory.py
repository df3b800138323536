"""The directory pages: look up an organisation or a person; end a role or deactivate a
person through workflow.directory, whose refusals are shown in its own words."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.directorypage import organisation_page, person_page, search
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction
from core.errors import PcseError
from workflow import directory


def org_href(code: str) -> str:
    return f"/directory/organisations/{quote(code, safe='')}"


def person_href(email: str) -> str:
    return f"/directory/people/{quote(email, safe='@')}"


async def directory_search(request: Request) -> Response:
    query = " ".join((request.query_params.get("q") or "").split())[:254]
    results = await in_transaction(request, search, query) if query else None
    if results and len(results["organisations"]) + len(results["people"]) == 1:
        # One match: go straight to it.
        if results["organisations"]:
            return RedirectResponse(org_href(results["organisations"][0]["code"]), 303)
        return RedirectResponse(person_href(results["people"][0]["email"]), 303)
    return render(
        request, "directory.html", {"title": "Directory", "query": query, "results": results}
    )


async def _show_org(
    request: Request,
    *,
    problems: Problems | None = None,
    errors: list | None = None,
    values: dict | None = None,
    status_code: int = 200,
) -> Response:
    code = request.path_params["code"]
    page = await in_transaction(request, organisation_page, code)
    if page is None:
        raise HTTPException(
            status_code=404, detail=f"There is no organisation {code} in the directory."
        )
    problems = problems or Problems()
    values = values or {}
    options: list[dict[str, Any]] = [{"value": "", "text": "Choose a role"}]
    for row in page["open_roles"]:
        key = f"{row['email']}|{row['role']}"
        options.append(
            {
                "value": key,
                "text": f"{row['name']} ({row['email']}) – {row['role']}",
                "selected": key == values.get("assignment"),
            }
        )
    return render(
        request,
        "organisation.html",
        {
            "title": f"{page['org']['code']} – {page['org']['name']}",
            **page,
            "end_role_options": options,
            "values": values,
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def organisation(request: Request) -> Response:
    return await _show_org(request)


def _outcome(done: str, warnings: list[str]) -> tuple[str, str]:
    if warnings:
        return done + " Warning: " + " ".join(warnings), "warning"
    return done, "success"


def _end_role(
    session: Session, code: str, email: str, role: str, by: str, reason: str
) -> tuple[str, str]:
    change = directory.revoke_role(
        session, org_code=code, email=email, role=role, actor=by, reason=reason
    )
    return _outcome(f"Ended {email}'s role {role} at {code}.", change.warnings)


@form_post
async def end_role(request: Request) -> Response:
    code = request.path_params["code"]
    chosen = text(request, "assignment", limit=400)
    reason = text(request, "reason", limit=2000)
    values = {"assignment": chosen, "reason": reason}
    problems = Problems()
    if "|" not in chosen:
        problems.add("assignment", "Choose the role to end")
    if not reason:
        problems.add("end-reason", "Enter why the role is ended")
    if problems:
        return await _show_org(request, problems=problems, values=values, status_code=400)
    email, role = chosen.split("|", 1)
    try:
        message, kind = await in_transaction(
            request, _end_role, code, email, role, current_user(request).email, reason
        )
    except PcseError as refused:
        return await _show_org(
            request, errors=refusal(str(refused), "end-role"), values=values, status_code=409
        )
    flash(request, message, kind=kind)
    return RedirectResponse(org_href(code), status_code=303)


async def _show_person(
    request: Request,
    *,
    problems: Problems | None = None,
    errors: list | None = None,
    values: dict | None = None,
    status_code: int = 200,
) -> Response:
    email = request.path_params["email"]
    page = await in_transaction(request, person_page, email)
    if page is None:
        raise HTTPException(status_code=404, detail=f"There is no person {email} in the directory.")
    problems = problems or Problems()
    return render(
        request,
        "person.html",
        {
            "title": page["person"]["name"],
            **page,
            "values": values or {},
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def person(request: Request) -> Response:
    return await _show_person(request)


def _deactivate(session: Session, email: str, by: str, reason: str) -> tuple[str, str]:
    change = directory.deactivate_person(session, email=email, actor=by, reason=reason)
    ended = len(change.assignments)
    return _outcome(
        f"Deactivated {email}; {ended} role{'' if ended == 1 else 's'} ended.", change.warnings
    )


@form_post
async def deactivate(request: Request) -> Response:
    email = request.path_params["email"]
    reason = text(request, "reason", limit=2000)
    if not reason:
        problems = Problems()
        problems.add("deactivate-reason", "Enter why the person is deactivated")
        return await _show_person(request, problems=problems, status_code=400)
    try:
        message, kind = await in_transaction(
            request, _deactivate, email, current_user(request).email, reason
        )
    except PcseError as refused:
        return await _show_person(
            request,
            errors=refusal(str(refused), "deactivate"),
            values={"reason": reason},
            status_code=409,
        )
    flash(request, message, kind=kind)
    return RedirectResponse(person_href(email), status_code=303)


routes = [
    Route("/directory", directory_search, methods=["GET"]),
    Route("/directory/organisations/{code}", organisation, methods=["GET"]),
    Route("/directory/organisations/{code}/end-role", end_role, methods=["POST"]),
    Route("/directory/people/{email}", person, methods=["GET"]),
    Route("/directory/people/{email}/deactivate", deactivate, methods=["POST"]),
]
