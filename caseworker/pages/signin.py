"""Sign in and sign out."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.accounts import (
    SIGN_IN_REFUSED,
    end_sessions,
    finish_attempt,
    needs_rehash,
    store_rehash,
)
from caseworker.auth import CHANGE_PASSWORD, safe_next, start_session
from caseworker.known_browsers import mark_known
from caseworker.pages.forms import Problems, text
from caseworker.passwordcheck import check_password, limit_password_checks, new_password_hash
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings


def _form(
    request: Request, *, email: str = "", problems: Problems | None = None, status_code: int = 200
) -> Response:
    problems = problems or Problems()
    return render(
        request,
        "sign_in.html",
        {
            "title": "Sign in",
            "email": email,
            "next_path": safe_next(request.query_params.get("next")),
            "errors": problems.summary(),
            "field_errors": problems.fields,
        },
        status_code=status_code,
    )


async def sign_in_page(request: Request) -> Response:
    if request.state.user is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _form(request)


@form_post  # a post without the form's token is refused before it is counted
@limit_password_checks
async def sign_in(request: Request) -> Response:
    email = text(request, "email", limit=254)
    password = request.state.form.get("password", "")
    password = password if isinstance(password, str) else ""
    problems = Problems()
    if not email:
        problems.add("email", "Enter your email address")
    if not password:
        problems.add("password", "Enter your password")
    if problems:
        return _form(request, email=email, problems=problems, status_code=400)
    now = settings(request).env.clock.now()
    spared = _spared(request, now.timestamp())
    attempt, ok = await check_password(request, password, now, email=email, spared=spared)
    if spared is not None and (ok or attempt.account_id != spared):
        # Reserved as a failure of this browser's own; it was none.
        request.app.state.known_browser_failures.release(spared, now.timestamp())
    signed_in = None
    if attempt.locked_until is None:
        signed_in = await in_transaction(request, finish_attempt, attempt, ok, now)
    if signed_in is None:
        problems.add("email", SIGN_IN_REFUSED)
        return _form(request, email=email, problems=problems, status_code=401)
    assert attempt.account_id is not None
    epoch, must_change = signed_in
    await _upgrade_hash(request, attempt.account_id, attempt.password_hash, password)
    start_session(request, attempt.account_id, epoch)
    target = CHANGE_PASSWORD if must_change else safe_next(request.query_params.get("next"))
    response = RedirectResponse(target, status_code=303)
    mark_known(request, response, attempt.account_id)
    return response


def _spared(request: Request, now: float) -> int | None:
    """The account whose lock-out this sign-in passes: the one this browser signed in to
    before (set by limit_password_checks), while the browser has wrong passwords to spare,
    one of which this try reserves. Anyone can lock an account; its owner's browser should
    still get in."""
    known: int | None = request.state.known_account
    if known is None or not request.app.state.known_browser_failures.reserve(known, now):
        return None
    return known


async def _upgrade_hash(request: Request, account_id: int, old_hash: str, password: str) -> None:
    """Rehash with the current Argon2 parameters when they have changed; best effort."""
    if not needs_rehash(old_hash):
        return
    try:
        new_hash = await new_password_hash(request, password)
    except HTTPException:  # busy: the old hash still works; next time, then
        return
    await in_transaction(request, store_rehash, account_id, old_hash, new_hash)


@form_post
async def sign_out(request: Request) -> Response:
    user = request.state.user
    if user is not None:
        await in_transaction(request, end_sessions, user.id)
    request.session.clear()
    flash(request, "You have signed out.")
    return RedirectResponse("/sign-in", status_code=303)


routes = [
    Route("/sign-in", sign_in_page, methods=["GET"]),
    Route("/sign-in", sign_in, methods=["POST"]),
    Route("/sign-out", sign_out, methods=["POST"]),
]
