"""What the pages need from the service, and how they reach the database off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.db import Database
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
    # However active, a caseworker signs in again after this long.
    session_absolute_hours: float = 12
    # Password checks (sign-in, change password): per client address and overall, within
    # a sliding window; and how many Argon2 hashes may run at once.
    password_checks_per_client: int = 10
    password_checks_overall: int = 100
    password_check_window_seconds: float = 60
    concurrent_hashes: int = 2
    hash_wait_seconds: float = 2.0
    # What an operator must put right (an OAuth2 client secret about to expire), for the
    # banner on every page; computed per page, so a date passing shows at once.
    operator_warnings: Callable[[], list[str]] = list
    # CPU seconds a page may spend reading one email ([limits] message_seconds, as intake).
    message_seconds: float = 30


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
