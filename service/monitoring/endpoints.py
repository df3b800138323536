"""/metrics, /healthz and /readyz as a small ASGI app, for `pcse serve` (in front of the
caseworker pages, outside their sign-in) and for `pcse run`'s metrics port."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from service.monitoring.health import Readiness

PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
NO_TOKEN = (
    "Metrics are off here until a bearer token is set: [metrics] token, or the variable "
    "named by [metrics] token_env.\n"
)
READY_TIMEOUT_SECONDS = 5.0


@dataclass
class Monitor:
    registry: CollectorRegistry
    readiness: Callable[[], Readiness]
    token: str | None = None
    # `pcse serve` shares its port with the pages: there /metrics needs a token.
    token_required: bool = True
    # Problems that mean the process is not alive (e.g. its scheduler has stopped).
    liveness: Callable[[], list[str]] = field(default=lambda: [])


def _refusal(monitor: Monitor, authorization: str | None) -> Response | None:
    """None when the request may read the metrics; else the answer that refuses it."""
    if monitor.token is None:
        return PlainTextResponse(NO_TOKEN, status_code=403) if monitor.token_required else None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), monitor.token.encode()
    ):
        return None
    return PlainTextResponse(
        "A valid bearer token is needed.\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="pcse metrics"'},
    )


def _monitor(request: Request) -> Monitor:
    return request.app.state.monitor


async def metrics(request: Request) -> Response:
    monitor = _monitor(request)
    refused = _refusal(monitor, request.headers.get("authorization"))
    if refused is not None:
        return refused
    body = await run_in_threadpool(generate_latest, monitor.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


async def healthz(request: Request) -> Response:
    problems = _monitor(request).liveness()
    if problems:
        return PlainTextResponse("not alive: " + "; ".join(problems) + "\n", status_code=503)
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    monitor = _monitor(request)
    try:
        verdict = await asyncio.wait_for(
            run_in_threadpool(monitor.readiness), timeout=READY_TIMEOUT_SECONDS
        )
    except TimeoutError:
        verdict = Readiness({"database": "no answer in time"})
    return JSONResponse(
        verdict.as_json(),
        status_code=200 if verdict.ready else 503,
        headers={"Cache-Control": "no-store"},
    )


def monitoring_app(monitor: Monitor) -> Starlette:
    app = Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
        ]
    )
    app.state.monitor = monitor
    return app


ASGIApp = Callable[..., Any]


class WithMonitoring:
    """The monitoring paths answered by `monitor`, everything else by `app` (the pages)."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app = app
        self.monitoring = monitoring_app(monitor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # e.g. `state`, as the pages' app has it

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path") in PATHS:
            await self.monitoring(scope, receive, send)
        else:
            await self.app(scope, receive, send)
