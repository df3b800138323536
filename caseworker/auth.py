"""Who is signed in: every page but sign-in needs a caseworker; some need a supervisor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from workflow.models import Caseworker

PUBLIC_PATHS = frozenset({"/sign-in"})
PUBLIC_PREFIXES = ("/assets/", "/static/")
SUPERVISORS_ONLY = "Only a supervisor can do this."


@dataclass(frozen=True)
class SignedIn:
    id: int
    email: str
    name: str
    is_supervisor: bool


def load_signed_in(session: Session, account_id: int, epoch: int) -> SignedIn | None:
    """The signed-in caseworker, or None when the account is gone, deactivated, or signed
    out since the session's cookie was issued (`epoch`)."""
    account = session.get(Caseworker, account_id)
    if account is None or not account.active:
        return None
    if epoch != account.session_epoch:
        return None
    return SignedIn(account.id, account.email, account.name, account.is_supervisor)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(target: str | None) -> str:
    """A local path to return to after signing in; anything else goes to the queue."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


class RequireSignInMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = await self._user(scope)
        scope.setdefault("state", {})["user"] = user
        if user is None and not is_public(scope["path"]):
            request = Request(scope)
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target = "/sign-in" if wanted == "/" else f"/sign-in?next={quote(wanted, safe='')}"
            await RedirectResponse(target, status_code=303)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _user(self, scope: Scope) -> SignedIn | None:
        session_data = scope.get("session", {})
        account_id, epoch = session_data.get("uid"), session_data.get("epoch")
        if not isinstance(account_id, int) or not isinstance(epoch, int):
            return None
        database = scope["app"].state.web.database

        def load() -> SignedIn | None:
            with database.transaction() as session:
                return load_signed_in(session, account_id, epoch)

        user = await run_in_threadpool(load)
        if user is None:
            # A deactivated or signed-out account loses its session at once.
            session_data.clear()
        return user


def current_user(request: Request) -> SignedIn:
    user = getattr(request.state, "user", None)
    if user is None:
        raise HTTPException(status_code=401, detail="Sign in to continue.")
    return user


Endpoint = Callable[[Request], Awaitable[Response]]


def supervisor_only(endpoint: Endpoint) -> Endpoint:
    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        if not current_user(request).is_supervisor:
            raise HTTPException(status_code=403, detail=SUPERVISORS_ONLY)
        return await endpoint(request)

    return guarded
