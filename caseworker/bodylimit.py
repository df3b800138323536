"""A cap on the size of a request's body, before anything reads it.

Every form the caseworker pages post is small (no file uploads: `form_post` allows none),
but Starlette reads a posted form whole, up to a mebibyte a field, before the CSRF check can
refuse it: one request from anyone could make the service hold hundreds of megabytes. The
reverse proxy's own cap (docs/nginx-pcse.conf) does not help where `pcse serve` listens
itself. A body declared or found larger than the cap is answered 413, unread.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Far above any form here (a long reply typed by a caseworker is a few kilobytes).
MAX_BODY_BYTES = 256 * 1024

TOO_LARGE = "This request is too large for the caseworker pages."


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await PlainTextResponse(TOO_LARGE, status_code=413)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # chunked, or longer than it said
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await PlainTextResponse(TOO_LARGE, status_code=413)(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
