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

from caseworker.models import Caseworker
from caseworker.security import csrf_token

PUBLIC_PATHS = frozenset({"/sign-in"})
PUBLIC_PREFIXES = ("/assets/", "/static/")
CHANGE_PASSWORD = "/account/password"
# All an account whose password was reset may reach until it chooses a new one.
WHILE_MUST_CHANGE = frozenset({CHANGE_PASSWORD, "/sign-out"})
SUPERVISORS_ONLY = "Only a supervisor can do this."
SESSION_ENDED = "Your session has ended: a session lasts at most {hours}. Sign in again."


@dataclass(frozen=True)
class SignedIn:
    id: int
    email: str
    name: str
    is_supervisor: bool
    must_change_password: bool = False


def start_session(request: Request, account_id: int, epoch: int) -> None:
    """A fresh session (and CSRF token) for the account, issued now."""
    now = request.app.state.web.env.clock.now()
    request.session.clear()
    request.session.update(uid=account_id, epoch=epoch, iat=int(now.timestamp()))
    csrf_token(request)


def session_expired(session_data: dict, now_seconds: float, absolute_hours: float) -> bool:
    """True once the session is older than its absolute lifetime, however active it was."""
    issued = session_data.get("iat")
    return not isinstance(issued, int) or now_seconds - issued >= absolute_hours * 3600


def load_signed_in(session: Session, account_id: int, epoch: int) -> SignedIn | None:
    """The signed-in caseworker, or None when the account is gone, deactivated, or signed
    out since the session's cookie was issued (`epoch`)."""
    account = session.get(Caseworker, account_id)
    if account is None or not account.active:
        return None
    if epoch != account.session_epoch:
        return None
    return SignedIn(
        account.id, account.email, account.name, account.is_supervisor, account.must_change_password
    )


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
        if (
            user is not None
            and user.must_change_password
            and scope["path"] not in WHILE_MUST_CHANGE
            and not is_public(scope["path"])
        ):
            await RedirectResponse(CHANGE_PASSWORD, status_code=303)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _user(self, scope: Scope) -> SignedIn | None:
        session_data = scope.get("session", {})
        account_id, epoch = session_data.get("uid"), session_data.get("epoch")
        if not isinstance(account_id, int) or not isinstance(epoch, int):
            return None
        web = scope["app"].state.web
        if session_expired(
            session_data, web.env.clock.now().timestamp(), web.session_absolute_hours
        ):
            session_data.clear()
            hours = f"{web.session_absolute_hours:g} hours"
            session_data["flash"] = {"text": SESSION_ENDED.format(hours=hours), "kind": "warning"}
            return None
        database = web.database

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
