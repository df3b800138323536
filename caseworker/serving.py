"""How `pcse serve` runs the pages under uvicorn, and its access log.

uvicorn's own access log writes each request's path and query: `/directory/people/<email>`,
searches by name or address, `next=` addresses. Those name people, so it is off; AccessLog
writes the method, the status and the time taken, and nothing the address bar held.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import uvicorn

log = logging.getLogger("caseworker.access")

ASGIApp = Any


class AccessLog:
    """ASGI middleware: one line per HTTP request, "GET 200 12.5 ms"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # unless a response starts: the app failed before answering

        async def sending(message: dict) -> None:
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 0))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "%s %d %.1f ms",
                scope.get("method", "?"),
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    log_level: str = "info",
    trusted_proxies: list[str] | None = None,
) -> uvicorn.Config:
    """uvicorn as `pcse serve` runs it: without its access log, behind AccessLog, and
    believing X-Forwarded-For/-Proto only from `trusted_proxies` (uvicorn on its own
    believes them from 127.0.0.1, so any local process could claim another address)."""
    trusted = [p.strip() for p in trusted_proxies or [] if p.strip()]
    config = uvicorn.Config(
        AccessLog(app),
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )
    # uvicorn still writes access lines when any handler listens on its access logger;
    # a disabled logger drops them whatever is attached.
    logging.getLogger("uvicorn.access").disabled = True
    return config
