"""Checking and hashing passwords from the pages: limited per client address and overall,
counted against the account before the check, and never more than a few hashes at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from caseworker.accounts import (
    Attempt,
    begin_attempt,
    dummy_hash,
    hash_password,
    is_active_account,
    verify_password,
)
from caseworker.known_browsers import known_account
from caseworker.throttle import HashBusy, client_key
from caseworker.webcontext import in_transaction, settings

TOO_MANY = (
    "There have been too many attempts to sign in or change a password. Wait {wait} and try again."
)
BUSY = "The service is busy checking other passwords. Wait a few seconds and try again."
BUSY_RETRY_AFTER = "5"

Endpoint = Callable[[Request], Awaitable[Response]]


def limit_password_checks(endpoint: Endpoint) -> Endpoint:
    """Refuse with 429 and Retry-After when the client, or everyone together, has made too
    many attempts; before any hash is computed. It goes inside `form_post`: posts without
    the session's form token, which anyone can send by the hundred, would otherwise use up
    the limit that everyone shares and lock every caseworker out. A caseworker signed in
    (changing a password) or signing in to the account their browser signed in to before
    (known_browsers) is held to the limit for their address only: anyone can use up the
    shared one. That account is left in `request.state.known_account` (None: not one)."""

    @wraps(endpoint)
    async def limited(request: Request) -> Response:
        now = settings(request).env.clock.now().timestamp()
        known = await _known_for_sign_in(request) if request.state.user is None else None
        request.state.known_account = known
        shared = request.state.user is None and known is None
        refusal = request.app.state.password_checks.attempt(
            client_key(request.scope), now, shared=shared
        )
        if refusal is not None:
            raise HTTPException(
                status_code=429,
                detail=TOO_MANY.format(wait=_in_words(refusal.retry_after)),
                headers={"Retry-After": str(refusal.retry_after)},
            )
        return await endpoint(request)

    return limited


async def _known_for_sign_in(request: Request) -> int | None:
    """The account this sign-in is to, when this browser signed in to it before and it is
    still active; else None. A forged or stale cookie costs no database query."""
    account_id = known_account(request)
    if account_id is None:
        return None
    email = request.state.form.get("email", "")
    email = email if isinstance(email, str) else ""
    same = await in_transaction(request, is_active_account, account_id, email)
    return account_id if same else None


async def check_password(
    request: Request,
    password: str,
    now: datetime,
    *,
    email: str | None = None,
    account_id: int | None = None,
    spared: int | None = None,
) -> tuple[Attempt, bool]:
    """Count the attempt, then check the password unless the account is locked (and not
    `spared`: see begin_attempt)."""
    try:
        async with request.app.state.hash_gate.slot():
            attempt = await in_transaction(
                request, begin_attempt, now, email=email, account_id=account_id, spared=spared
            )
            if attempt.locked_until is not None:
                # Checked against the stand-in all the same, so that a locked account takes
                # as long to refuse as any other: the time would tell it apart.
                await run_in_threadpool(verify_password, dummy_hash(), password)
                return attempt, False
            return attempt, await run_in_threadpool(
                verify_password, attempt.password_hash, password
            )
    except HashBusy:
        raise _busy() from None


async def new_password_hash(request: Request, password: str) -> str:
    try:
        async with request.app.state.hash_gate.slot():
            return await run_in_threadpool(hash_password, password)
    except HashBusy:
        raise _busy() from None


def _busy() -> HTTPException:
    return HTTPException(status_code=503, detail=BUSY, headers={"Retry-After": BUSY_RETRY_AFTER})


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'}"
