"""Liveness and readiness, for load balancers and systemd.

Ready means the database answers and every configured mailbox was polled successfully
recently enough ([metrics] ready_poll_max_age_seconds, by the workflow's clock). The
answer names the failing check, never an address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from core.clock import Clock
from core.db import Database
from core.timeutil import as_utc
from intake.models import MailboxState

OK = "ok"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)  # check -> "ok" or the problem

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())

    def as_json(self) -> dict[str, object]:
        return {"ready": self.ready, "checks": self.checks}


def readiness(
    database: Database, mailboxes: Sequence[str], clock: Clock, max_age_seconds: float
) -> Readiness:
    """Can the service do its work now: the database, then each mailbox's last good poll."""
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            last_ok = dict(
                session.execute(select(MailboxState.name, MailboxState.last_ok_at)).all()
            )
    except SQLAlchemyError as exc:
        return Readiness({"database": f"unreachable ({type(exc).__name__})"})
    checks = {"database": OK}
    if max_age_seconds > 0:
        now = as_utc(clock.now())
        for name in mailboxes:
            checks[f"mailbox {name}"] = _poll_check(as_utc(last_ok.get(name)), now, max_age_seconds)
    return Readiness(checks)


def _poll_check(last_ok: datetime | None, now: datetime, max_age_seconds: float) -> str:
    if last_ok is None:
        return "never polled successfully"
    age = (now - last_ok).total_seconds()
    if age > max_age_seconds:
        return f"last good poll {age:.0f} s ago, more than {max_age_seconds:g} s"
    return OK
