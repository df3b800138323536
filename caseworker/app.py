"""The caseworker web application (Starlette), built from the service's configuration."""

from __future__ import annotations

import logging
import secrets
import traceback
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from caseworker.accounts import LOCK_OUT_FOR, MAX_FAILED_SIGN_INS
from caseworker.auth import RequireSignInMiddleware
from caseworker.bodylimit import BodyLimitMiddleware
from caseworker.pages import (
    accounts,
    case_plan,
    cases,
    directory,
    directory_edits,
    failures,
    helpdesk,
    new_replies,
    password,
    queue,
    reports,
    scans,
    signin,
)
from caseworker.rendering import make_templates, render
from caseworker.security import SecurityHeadersMiddleware, security_headers
from caseworker.sessions import SignedSessionMiddleware
from caseworker.throttle import FailureWindow, HashGate, SlidingWindowLimiter
from caseworker.webcontext import WebSettings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)

ERROR_TITLES = {
    400: "The request could not be read",
    401: "Sign in to continue",
    403: "You cannot do this",
    404: "Page not found",
    405: "You cannot do this",
    429: "Too many attempts",
    503: "The service is busy",
}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = ERROR_TITLES.get(exc.status_code, "Something went wrong")
    # Starlette's own 404 says only "Not Found"; ours name what is missing.
    message = (
        exc.detail
        if exc.detail and exc.detail != "Not Found"
        else ("If you typed the web address, check it is correct.")
    )
    response = render(
        request, "error.html", {"title": title, "message": message}, status_code=exc.status_code
    )
    for name, value in (exc.headers or {}).items():  # Retry-After on 429 and 503
        response.headers[name] = value
    return response


SERVER_ERROR_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>Sorry, there is a problem with the service – PCSE user management</title>"
    '<link rel="stylesheet" href="/assets/nhsuk-frontend.min.css"></head><body>'
    '<main class="nhsuk-width-container nhsuk-main-wrapper" id="maincontent">'
    '<h1 class="nhsuk-heading-l">Sorry, there is a problem with the service</h1>'
    "<p>Try again later. If the problem goes on, tell the service's operator.</p>"
    '<p><a href="/">Go to the queue</a></p></main></body></html>'
)


async def server_error(request: Request, exc: Exception) -> Response:
    # Runs outside the session middleware, so the page is plain and needs no session.
    # The route's name, not the path: paths and queries can hold addresses and names.
    endpoint = getattr(request.scope.get("endpoint"), "__name__", "unknown page")
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    log.error(
        "page %s (%s) failed: %s at %s",
        endpoint,
        request.method,
        type(exc).__name__,
        f"{where.filename}:{where.lineno}" if where else "?",
    )
    # Starlette answers a 500 outside every middleware: the headers are set here.
    headers = security_headers(secrets.token_urlsafe(16))
    return HTMLResponse(SERVER_ERROR_PAGE, status_code=500, headers=headers)


def create_app(web: WebSettings) -> Starlette:
    routes = [
        *signin.routes,
        *password.routes,
        *queue.routes,
        *accounts.routes,
        *cases.routes,
        *scans.routes,
        *helpdesk.routes,
        *case_plan.routes,
        *failures.routes,
        *directory.routes,
        *new_replies.routes,
        *directory_edits.routes,
        *reports.routes,
        Mount("/assets", StaticFiles(directory=STATIC / "nhsuk"), name="assets"),
        Mount("/static", StaticFiles(directory=STATIC / "app"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(BodyLimitMiddleware),
        Middleware(
            SignedSessionMiddleware, secret_key=web.secret_key, force_secure=web.secure_cookies
        ),
        Middleware(RequireSignInMiddleware),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.web = web
    app.state.templates = make_templates()
    app.state.password_checks = SlidingWindowLimiter(
        per_client=web.password_checks_per_client,
        overall=web.password_checks_overall,
        window=web.password_check_window_seconds,
    )
    app.state.hash_gate = HashGate(web.concurrent_hashes, web.hash_wait_seconds)
    # A known browser's own wrong passwords: past these, the account's lock-out holds it too.
    app.state.known_browser_failures = FailureWindow(
        limit=MAX_FAILED_SIGN_INS, window=LOCK_OUT_FOR.total_seconds()
    )
    return app
