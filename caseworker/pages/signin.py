"""Sign in and sign out."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.accounts import SignInRefused, authenticate, end_sessions
from caseworker.auth import safe_next
from caseworker.pages.forms import Problems, text
from caseworker.rendering import flash, render
from caseworker.security import csrf_token, form_post
from caseworker.webcontext import in_transaction, settings


def _attempt(session: Session, email: str, password: str,
             now) -> tuple[tuple[int, int] | None, str | None]:
    """(account id, session epoch), or the refusal. Returned rather than raised, so that
    the failure count is committed."""
    try:
        account = authenticate(session, email, password, now=now)
        return (account.id, account.session_epoch), None
    except SignInRefused as refused:
        return None, str(refused)


def _form(request: Request, *, email: str = "", problems: Problems | None = None,
          status_code: int = 200) -> Response:
    problems = problems or Problems()
    return render(request, "sign_in.html", {
        "title": "Sign in",
        "email": email,
        "next_path": safe_next(request.query_params.get("next")),
        "errors": problems.summary(),
        "field_errors": problems.fields,
    }, status_code=status_code)


async def sign_in_page(request: Request) -> Response:
    if request.state.user is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _form(request)


@form_post
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
    signed_in, refusal = await in_transaction(request, _attempt, email, password, now)
    if signed_in is None:
        problems.add("email", refusal or "The email address or password is not right.")
        return _form(request, email=email, problems=problems, status_code=401)
    # A fresh session (and CSRF token) on every sign-in.
    request.session.clear()
    request.session["uid"], request.session["epoch"] = signed_in
    csrf_token(request)
    return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)


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
