"""Browsers that have signed in before, known by a signed cookie of their own.

The limit on password checks that everyone shares ([web] password_checks_overall) keeps a
spray of guesses from many addresses slow; but anyone can use it up, by fetching the
sign-in page once and posting its token from a handful of addresses, and then every
caseworker is refused. A browser that has signed in successfully carries this cookie
(OWASP's "device cookie"), and is held only to the limit for its own address and the
account's lock-out, not to the shared one. The cookie names the account it signed in to,
outlives signing out, and is worth nothing without the service's secret key. It counts only
for sign-ins to the account it names, and only while that account is active: a browser that
once signed in to one account must not lift the shared limit for guesses at every other,
nor for an account since deactivated.
"""

from __future__ import annotations

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "pcse_browser"
MAX_AGE_SECONDS = 90 * 24 * 3600  # a quarter: a caseworker signs in most working days


def _signer(request: Request) -> itsdangerous.TimestampSigner:
    return itsdangerous.TimestampSigner(request.app.state.web.secret_key, salt="pcse-known-browser")


def mark_known(request: Request, response: Response, account_id: int) -> None:
    """After a successful sign-in: this browser is known from now on."""
    web = request.app.state.web
    response.set_cookie(
        COOKIE_NAME,
        _signer(request).sign(str(account_id).encode()).decode(),
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies or request.url.scheme == "https",
    )


def known_account(request: Request) -> int | None:
    """The account this browser signed in to within MAX_AGE_SECONDS (a cookie signed by
    us), or None."""
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    try:
        value = _signer(request).unsign(cookie.encode(), max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return None
    return int(value) if value.isdigit() else None
