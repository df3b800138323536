"""Signed session cookies: HttpOnly, SameSite=Lax, and Secure whenever the request came over TLS.

Starlette's own SessionMiddleware fixes the Secure flag when the app is built; here it follows
the request's scheme (or is forced for deployments behind a TLS-terminating proxy).
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from typing import Any

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseworker.secretkey import MIN_KEY_LENGTH

COOKIE_NAME = "pcse_session"
# A working day; a caseworker signs in again the next morning.
MAX_AGE_SECONDS = 10 * 3600


class SignedSessionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        *,
        force_secure: bool = False,
        cookie_name: str = COOKIE_NAME,
        max_age: int = MAX_AGE_SECONDS,
    ) -> None:
        if len(secret_key) < MIN_KEY_LENGTH:  # a short key lets anyone sign a session
            raise ValueError(f"the session signing key must be {MIN_KEY_LENGTH}+ characters")
        self.app = app
        self.signer = itsdangerous.TimestampSigner(secret_key, salt="pcse-caseworker-session")
        self.force_secure = force_secure
        self.cookie_name = cookie_name
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        had_cookie = self.cookie_name in connection.cookies
        scope["session"] = self._load(connection.cookies.get(self.cookie_name))
        secure = self.force_secure or scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                session = scope["session"]
                if session:
                    headers.append(
                        "Set-Cookie", self._cookie(self._dump(session), secure, self.max_age)
                    )
                elif had_cookie:
                    headers.append("Set-Cookie", self._cookie("", secure, 0))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _load(self, cookie: str | None) -> dict[str, Any]:
        if not cookie:
            return {}
        try:
            raw = self.signer.unsign(cookie.encode(), max_age=self.max_age)
            data = json.loads(b64decode(raw))
        except (BadSignature, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _dump(self, session: dict[str, Any]) -> str:
        return self.signer.sign(b64encode(json.dumps(session).encode())).decode()

    def _cookie(self, value: str, secure: bool, max_age: int) -> str:
        flags = f"{self.cookie_name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return flags + ("; Secure" if secure else "")
