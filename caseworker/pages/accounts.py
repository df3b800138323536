"""Supervisors' pages: the caseworker accounts (list, add, deactivate, reset a password)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.accounts import (
    AccountError,
    add_caseworker,
    check_new_password,
    deactivate_caseworker,
    list_caseworkers,
    reset_password,
)
from caseworker.auth import SignedIn, current_user, supervisor_only
from caseworker.ids import ROW_ID
from caseworker.models import Caseworker
from caseworker.pages.forms import Problems, refusal, text
from caseworker.passwordcheck import new_password_hash
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.timeutil import when
from caseworker.webcontext import in_transaction, settings
from core.timeutil import as_utc


def _accounts(session: Session, now) -> list[dict]:
    rows = []
    for account in list_caseworkers(session):
        locked = as_utc(account.locked_until)
        rows.append(
            {
                "id": account.id,
                "email": account.email,
                "name": account.name,
                "supervisor": account.is_supervisor,
                "active": account.active,
                "locked_until": when(locked) if locked and locked > now else None,
                "must_change_password": account.must_change_password,
            }
        )
    return rows


async def _page(
    request: Request,
    *,
    problems: Problems | None = None,
    values: dict | None = None,
    errors: list | None = None,
    status_code: int = 200,
) -> Response:
    problems = problems or Problems()
    accounts = await in_transaction(request, _accounts, settings(request).env.clock.now())
    return render(
        request,
        "accounts.html",
        {
            "title": "Caseworker accounts",
            "accounts": accounts,
            "values": values or {},
            "errors": errors or problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


@supervisor_only
async def accounts_page(request: Request) -> Response:
    return await _page(request)


def _add(session: Session, email: str, name: str, password: str, supervisor: bool) -> str:
    return add_caseworker(
        session, email=email, name=name, password=password, supervisor=supervisor
    ).email


@form_post
@supervisor_only
async def add_account(request: Request) -> Response:
    values = {
        "email": text(request, "email", limit=254),
        "name": text(request, "name", limit=200),
        "supervisor": request.state.form.get("supervisor") == "yes",
    }
    password = request.state.form.get("password", "")
    password = password if isinstance(password, str) else ""
    problems = Problems()
    if not values["email"]:
        problems.add("email", "Enter the caseworker's email address")
    if not values["name"]:
        problems.add("name", "Enter the caseworker's name")
    if not password:
        problems.add("password", "Enter a password for the account")
    if problems:
        return await _page(request, problems=problems, values=values, status_code=400)
    try:
        email = await in_transaction(
            request, _add, values["email"], values["name"], password, values["supervisor"]
        )
    except AccountError as refused:
        field = "password" if "password" in str(refused) else "email"
        problems.add(field, str(refused))
        return await _page(request, problems=problems, values=values, status_code=409)
    flash(request, f"Added an account for {email}.")
    return RedirectResponse("/accounts", status_code=303)


def _deactivate(session: Session, account_id: int, by: SignedIn) -> str:
    me = session.get_one(Caseworker, by.id)
    return deactivate_caseworker(session, account_id, by=me).email


@form_post
@supervisor_only
async def deactivate_account(request: Request) -> Response:
    account_id = request.path_params["account_id"]
    try:
        email = await in_transaction(request, _deactivate, account_id, current_user(request))
    except AccountError as refused:
        return await _page(request, errors=refusal(str(refused), "accounts-table"), status_code=409)
    flash(request, f"Deactivated the account for {email}.")
    return RedirectResponse("/accounts", status_code=303)


def _account(session: Session, account_id: int) -> dict | None:
    account = session.get(Caseworker, account_id)
    return {"id": account.id, "name": account.name, "email": account.email} if account else None


async def _reset_form(
    request: Request, *, problems: Problems | None = None, status_code: int = 200
) -> Response:
    account = await in_transaction(request, _account, request.path_params["account_id"])
    if account is None:
        raise HTTPException(status_code=404, detail="There is no such account.")
    problems = problems or Problems()
    return render(
        request,
        "reset_password.html",
        {
            "title": f"Reset the password for {account['name']}",
            "account": account,
            "errors": problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


@supervisor_only
async def reset_password_page(request: Request) -> Response:
    return await _reset_form(request)


@form_post
@supervisor_only
async def reset_account_password(request: Request) -> Response:
    password = request.state.form.get("password", "")
    password = password if isinstance(password, str) else ""
    problems = Problems()
    try:
        check_new_password(password)
    except AccountError as refused:
        problems.add("password", str(refused) if password else "Enter a temporary password")
        return await _reset_form(request, problems=problems, status_code=400)
    new_hash = await new_password_hash(request, password)
    try:
        email = await in_transaction(
            request,
            reset_password,
            request.path_params["account_id"],
            new_hash,
            by=current_user(request).id,
        )
    except AccountError as refused:
        problems.add("password", str(refused))
        return await _reset_form(request, problems=problems, status_code=409)
    flash(
        request,
        f"Reset the password for {email}. They are signed out, and must choose a "
        "new password when they next sign in.",
    )
    return RedirectResponse("/accounts", status_code=303)


routes = [
    Route("/accounts", accounts_page, methods=["GET"]),
    Route(f"/accounts/{{account_id:{ROW_ID}}}/password", reset_password_page, methods=["GET"]),
    Route(f"/accounts/{{account_id:{ROW_ID}}}/password", reset_account_password, methods=["POST"]),
    Route("/accounts/add", add_account, methods=["POST"]),
    Route(f"/accounts/{{account_id:{ROW_ID}}}/deactivate", deactivate_account, methods=["POST"]),
]
