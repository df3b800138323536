"""How `pcse serve` runs the pages under uvicorn, and its access log.

uvicorn's own access log writes each request's path and query: `/directory/people/<email>`,
searches by name or address, `next=` addresses. Those name people, so it is off; AccessLog
writes the method, the status and the time taken, and nothing the address bar held.

Behind a reverse proxy the pages learn the caseworker's address from X-Forwarded-For. Over
TCP that header is believed only from the addresses in [web] trusted_proxies; trusting
127.0.0.1 trusts every process on the machine. On a Unix socket ([web] unix_socket) there is
no TCP listener at all: whoever can connect to the socket is the proxy (the socket's folder
decides who can), and the last X-Forwarded-For entry, the address the proxy saw, is believed.
"""

from __future__ import annotations

import ipaddress
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
        status: list[int | None] = [None]  # until a response starts

        async def sending(message: dict) -> None:
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 0))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if status[0] != 500:
                raise
            # The page failed and its 500 page has gone out: the app's error handler logged
            # the route and the error's type. Raised on, uvicorn would log the whole
            # traceback, whose text can quote a person ("Key (email)=(…) already exists").
        finally:
            log.info(
                "%s %d %.1f ms",
                scope.get("method", "?"),
                status[0] or 500,  # none sent: the app failed before answering
                (time.perf_counter() - started) * 1000,
            )


class SocketProxyHeaders:
    """ASGI middleware for a Unix socket: the peer is the reverse proxy, so the client is
    the last X-Forwarded-For entry (the one the proxy added) and the scheme its
    X-Forwarded-Proto. Without them the client stays unknown."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket") and not scope.get("client"):
            forwarded_for: list[str] = []
            for name, value in scope.get("headers", []):
                if name == b"x-forwarded-for":
                    forwarded_for += value.decode("latin-1").split(",")
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").strip()
                    if proto in ("http", "https"):
                        secure = proto == "https"
                        ws = scope["type"] == "websocket"
                        scope["scheme"] = ("wss" if secure else "ws") if ws else proto
            client = _ip(forwarded_for[-1]) if forwarded_for else None
            if client is not None:
                scope["client"] = (client, 0)
        await self.app(scope, receive, send)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def trusted_hosts(entries: list[str] | None) -> list[str]:
    """[web] trusted_proxies as uvicorn reads them: each an IP address or a network in its
    canonical form (uvicorn would take anything else as a literal name, or "*" as everyone)."""
    hosts: list[str] = []
    for entry in (e.strip() for e in entries or []):
        if "/" in entry:
            hosts.append(str(ipaddress.ip_network(entry, strict=False)))
        elif entry:
            hosts.append(str(ipaddress.ip_address(entry)))
    return hosts


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    log_level: str = "info",
    trusted_proxies: list[str] | None = None,
    unix_socket: str | None = None,
) -> uvicorn.Config:
    """uvicorn as `pcse serve` runs it: without its access log, behind AccessLog, and
    believing X-Forwarded-For/-Proto only from `trusted_proxies` (uvicorn on its own
    believes them from 127.0.0.1, so any local process could claim another address), or,
    on `unix_socket`, from the socket's peer only."""
    if unix_socket:
        config = uvicorn.Config(
            AccessLog(SocketProxyHeaders(app)),
            log_config=None,  # its lines go to the service's handler, which redacts them
            uds=unix_socket,
            log_level=log_level,
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
    else:
        trusted = trusted_hosts(trusted_proxies)
        config = uvicorn.Config(
            AccessLog(app),
            log_config=None,  # its lines go to the service's handler, which redacts them
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
