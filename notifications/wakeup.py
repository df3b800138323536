"""Waking the sender the moment a reply is committed, not at the next outbox sweep.

Where an outbox row becomes due (`enqueue`, a caseworker's retry) the writer calls
`queued(session)`. When that session's transaction commits, `WAKE` is set in this process;
a transaction rolled back wakes no one, so nothing is sent that was not committed. On
PostgreSQL the transaction issues one `NOTIFY pcse_outbox` as it commits, which the
database delivers to every listener (`Listener`, in other `pcse run` processes and in
this one) only if and when the commit succeeds. The periodic sweep stays as the safety net: a
wake-up that is lost (a listener reconnecting) costs at most one sweep interval.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction

from core.db import is_postgres
from core.rowwrites import outermost, pending_may_wait

log = logging.getLogger(__name__)

CHANNEL = "pcse_outbox"
_QUEUED = "pcse_outbox_queued"

# Set when a transaction that queued an email has committed; the sender waits on it.
WAKE = threading.Event()


def queued(session: Session) -> None:
    """An outbox row written in `session` is due: wake the senders once this commits."""
    session.info[_QUEUED] = True


# One NOTIFY per transaction, however many emails it queued, sent as it commits. Built once.
_NOTIFY = pending_may_wait(text(f"NOTIFY {CHANNEL}"))


@event.listens_for(Session, "before_commit")
def _committing(session: Session) -> None:
    if session.info.get(_QUEUED) and outermost(session) and is_postgres(session):
        session.execute(_NOTIFY)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if outermost(session) and session.info.pop(_QUEUED, False):
        WAKE.set()


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, ended: SessionTransaction) -> None:
    # A savepoint rolled back leaves what the transaction queued before it; a spare
    # wake-up for an email it took with it finds nothing and costs nothing.
    if ended.parent is None:  # the transaction itself, not a savepoint
        session.info.pop(_QUEUED, None)


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener(threading.Thread):
    """`LISTEN pcse_outbox` on a connection of its own; each notification sets `wake`.

    The connection is opened again with a pause when it is lost; on every (re)connection
    `wake` is set once, since notifications sent meanwhile were missed.
    """

    def __init__(
        self,
        url: str,
        stop: threading.Event,
        wake: threading.Event = WAKE,
        *,
        check_seconds: float = 1.0,
        retry_seconds: float = 5.0,
    ) -> None:
        super().__init__(name="outbox-listener", daemon=True)
        self.url = url
        self.stop_event = stop
        self.wake = wake
        self.check_seconds = check_seconds
        self.retry_seconds = retry_seconds
        self.listening = threading.Event()
        self.heard = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database restarting, say: the sweep goes on
                self.listening.clear()
                log.warning(
                    "outbox listener: %s; listening again in %.0f s",
                    type(exc).__name__,
                    self.retry_seconds,
                )
                self.stop_event.wait(self.retry_seconds)

    def _listen(self) -> None:
        import psycopg  # only `pcse run` on PostgreSQL listens

        conn: Any = psycopg.connect(conninfo(self.url), autocommit=True)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            self.wake.set()
            while not self.stop_event.is_set():
                for _ in conn.notifies(timeout=self.check_seconds, stop_after=1):
                    self.heard += 1
                    self.wake.set()
        finally:
            self.listening.clear()
            conn.close()
