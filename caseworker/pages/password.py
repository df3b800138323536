"""A caseworker changes their own password; required after a supervisor's reset."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.accounts import (
    AccountError,
    check_new_password,
    finish_attempt,
    locked_out,
    set_password,
)
from caseworker.auth import CHANGE_PASSWORD, current_user, start_session
from caseworker.pages.forms import Problems
from caseworker.passwordcheck import check_password, limit_password_checks, new_password_hash
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings

log = logging.getLogger(__name__)

FIELDS = ("current_password", "new_password", "confirm_password")


def _form(
    request: Request, *, problems: Problems | None = None, status_code: int = 200
) -> Response:
    problems = problems or Problems()
    return render(
        request,
        "change_password.html",
        {
            "title": "Change your password",
            "must_change": current_user(request).must_change_password,
            "errors": problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def change_password_page(request: Request) -> Response:
    return _form(request)


def _posted(request: Request) -> dict[str, str]:
    # Passwords are taken as typed: no trimming, since spaces may be part of them.
    values = {name: request.state.form.get(name, "") for name in FIELDS}
    return {name: value if isinstance(value, str) else "" for name, value in values.items()}


def _problems(values: dict[str, str]) -> Problems:
    problems = Problems()
    if not values["current_password"]:
        problems.add("current_password", "Enter your current password")
    if not values["new_password"]:
        problems.add("new_password", "Enter a new password")
    else:
        try:
            check_new_password(values["new_password"])
        except AccountError as refused:
            problems.add("new_password", str(refused))
        if values["new_password"] == values["current_password"]:
            problems.add("new_password", "The new password must be different from the current one")
    if values["new_password"] and values["confirm_password"] != values["new_password"]:
        problems.add("confirm_password", "The passwords you entered do not match")
    return problems


@form_post  # a post without the form's token is refused before it is counted
@limit_password_checks
async def change_password(request: Request) -> Response:
    user = current_user(request)
    values = _posted(request)
    problems = _problems(values)
    if problems:
        return _form(request, problems=problems, status_code=400)
    now = settings(request).env.clock.now()
    attempt, ok = await check_password(request, values["current_password"], now, account_id=user.id)
    if attempt.locked_until is not None:
        problems.add("current_password", str(locked_out(attempt.locked_until)))
        return _form(request, problems=problems, status_code=401)
    if not ok:
        await in_transaction(request, finish_attempt, attempt, False, now)
        problems.add("current_password", "Your current password is not right")
        return _form(request, problems=problems, status_code=401)
    new_hash = await new_password_hash(request, values["new_password"])
    epoch = await in_transaction(
        request, set_password, user.id, new_hash, expected_hash=attempt.password_hash
    )
    if epoch is None:  # changed elsewhere since it was checked
        problems.add("current_password", "Your current password is not right")
        return _form(request, problems=problems, status_code=409)
    log.info("caseworker account %d changed its password", user.id)
    # Every other session of the account has ended; this one goes on with the new epoch.
    start_session(request, user.id, epoch)
    flash(request, "Your password has been changed. You have been signed out everywhere else.")
    return RedirectResponse("/", status_code=303)


routes = [
    Route(CHANGE_PASSWORD, change_password_page, methods=["GET"]),
    Route(CHANGE_PASSWORD, change_password, methods=["POST"]),
]
