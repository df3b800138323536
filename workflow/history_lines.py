"""Case history lines written together: one INSERT for the lines recorded in a row.

Opening a case writes about ten history lines. Added one by one to the session, each is
its own ORM insert (on SQLite one statement each, as the ORM must read every new id
back). Lines are append-only and nothing holds on to their ids, so `record` keeps them on
the transaction's connection instead, and they are written in one executemany just
before whatever that connection does next: any other statement (so a query of the
history sees them), a savepoint, its release, or the session's commit. The statements
that run for every email and touch no history are built once and marked
`core.rowwrites.pending_may_wait`; the lines wait past those. A savepoint or a
transaction rolled back drops the lines recorded inside it, exactly as it drops rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event, insert
from sqlalchemy.orm import Session

from core.rowwrites import PENDING_MAY_WAIT
from workflow.models import CaseEvent

_PENDING = "pcse_history_lines"
_CONNECTIONS = "pcse_history_connections"  # in session.info: where lines may be pending
_INSERT = insert(CaseEvent.__table__)  # type: ignore[arg-type]


def append(session: Session, line: dict[str, Any]) -> None:
    """Keep one history line to be written before the transaction's next statement."""
    conn = session.connection()
    conn.info.setdefault(_PENDING, []).append(line)
    session.info.setdefault(_CONNECTIONS, set()).add(conn)


def write(conn: Connection) -> None:
    lines = conn.info.pop(_PENDING, None)
    if lines:
        conn.execute(_INSERT, lines)


def _drop(conn: Connection, *_: object) -> None:
    # A connection that was lost has no info to read (reading it would try to reconnect);
    # what was pending on it went with it.
    if not conn.invalidated:
        conn.info.pop(_PENDING, None)


@event.listens_for(Engine, "before_execute")
def _before_statement(
    conn: Connection, _statement: object, _multi: object, _params: object, options: Any
) -> None:
    if _PENDING in conn.info and not options.get(PENDING_MAY_WAIT):
        write(conn)


@event.listens_for(Engine, "savepoint")
def _before_savepoint(conn: Connection, *_: object) -> None:
    # Lines recorded before the savepoint belong to the transaction around it.
    write(conn)


@event.listens_for(Engine, "release_savepoint")
def _before_release(conn: Connection, *_: object) -> None:
    write(conn)


# Everything pending was recorded inside the savepoint (it was written when it began).
event.listen(Engine, "rollback_savepoint", _drop)
event.listen(Engine, "rollback", _drop)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    for conn in session.info.pop(_CONNECTIONS, ()):
        if not conn.closed:
            write(conn)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CONNECTIONS, None)


@event.listens_for(Engine, "commit")
def _at_commit(conn: Connection) -> None:
    if not conn.invalidated and conn.info.pop(_PENDING, None):
        # Unreachable through a Session (before_commit wrote them); a commit made some
        # other way must not lose history silently.
        raise RuntimeError("case history recorded but not written before the commit")
