"""Protections on every response and every form: security headers with a per-request CSP
nonce, and a CSRF token bound to the session."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_FIELD = "csrf_token"
CSRF_REFUSED = (
    "This form could not be accepted because it was not sent from a page of this site, "
    "or the page was too old. Go back, reload the page and try again."
)


def content_security_policy(nonce: str) -> str:
    # Scripts only from this site (plus the page template's one nonce'd line); nothing from
    # elsewhere, so an email's HTML can neither run code nor fetch tracking images.
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(nonce: str, *, cached: bool = False) -> dict[str, str]:
    """The headers every response carries; `cached` for the static files alone."""
    headers = {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if not cached:
        headers["Cache-Control"] = "no-store"
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cached = scope["path"].startswith(("/assets/", "/static/"))
                for name, value in security_headers(nonce, cached=cached).items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: FormData) -> None:
    expected = request.session.get("csrf")
    sent = form.get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)
    origin = request.headers.get("origin")
    if origin and origin != "null" and _host_of(origin) != request.url.netloc.lower():
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)


def _host_of(origin: str) -> str:
    # The host only: behind a TLS proxy the app may see http while the browser says https.
    return origin.split("://", 1)[-1].rstrip("/").lower()


Endpoint = Callable[[Request], Awaitable[Response]]


def form_post(endpoint: Endpoint) -> Endpoint:
    """Read the posted form, refuse it without the session's CSRF token, keep it on
    request.state.form for the endpoint."""

    @wraps(endpoint)
    async def checked(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=200)
        check_csrf(request, form)
        request.state.form = form
        return await endpoint(request)

    checked.csrf_protected = True  # type: ignore[attr-defined]
    return checked
