"""What the pages need from the service, and how they reach the database off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from workflow.db import Database
from workflow.env import WorkflowEnv

T = TypeVar("T")


@dataclass
class WebSettings:
    database: Database
    env: WorkflowEnv
    raw_dir: Path
    secret_key: str
    secure_cookies: bool = False
    page_size: int = 25


def settings(request: Request) -> WebSettings:
    return request.app.state.web


async def in_transaction(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `work(session, *args, **kwargs)` in one transaction on a worker thread.

    Work returns plain values (dicts, dataclasses), not ORM rows, so that nothing
    lazy-loads after the session has closed.
    """
    database = settings(request).database

    def run() -> T:
        with database.transaction() as session:
            return work(session, *args, **kwargs)

    return await run_in_threadpool(run)
