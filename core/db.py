"""Engines and sessions: SQLite locally (WAL, foreign keys on), PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Engine, Result, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    pass


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs) -> Engine:
    # Error messages (and so logs and failed rows) leave out the bound values: they are
    # names, addresses and message text.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


# session.info: the transaction that began by taking SQLite's write lock (begin_writing).
_WRITING = "core.db.writing"


def begin_writing(session: Session) -> None:
    """Open the session's transaction for writing now.

    SQLite's driver begins a transaction only before its first INSERT, UPDATE or DELETE,
    not before a SAVEPOINT, which would then stand alone and commit on its release.
    BEGIN IMMEDIATE also takes the write lock up front, so that the transaction never has
    to upgrade a read to a write behind another writer's back.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        session.info[_WRITING] = session.get_transaction()


def write_now(session: Session) -> None:
    """On SQLite, take the write lock now, unless the transaction has it already; before
    reading what a write will depend on (workflow.cases.hold_case). SQLite's driver reads
    outside any transaction until the first write, so another writer could commit between
    the read and the write. A transaction that has written holds the lock already."""
    if session.get_bind().dialect.name != "sqlite" or holds_write_lock(session):
        return
    raw = session.connection().connection.driver_connection
    if not getattr(raw, "in_transaction", True):
        begin_writing(session)


# session.info: the transaction holds a row lock taken to order work on a case, an
# organisation or a person (note_holding).
_HOLDING = "core.db.holding"


def note_holding(session: Session) -> None:
    """Record that the transaction now holds such a lock. Intake ends its batch's
    transaction before the next message then, so that no transaction takes a second
    case's or organisation's lock after a first (two such could wait on each other)."""
    session.info[_HOLDING] = session.get_transaction()


def is_holding(session: Session) -> bool:
    return session.info.get(_HOLDING) is session.get_transaction()


def holds_write_lock(session: Session) -> bool:
    """Did the session's transaction begin by taking SQLite's write lock (begin_writing)?"""
    return session.info.get(_WRITING) is session.get_transaction()


def is_postgres(engine_or_session: Engine | Session) -> bool:
    if isinstance(engine_or_session, Session):
        return engine_or_session.get_bind().dialect.name == "postgresql"
    return engine_or_session.dialect.name == "postgresql"


class Database:
    """One engine and its session factory, shared by a process."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


# Every stored time is UTC and timezone-aware (core.timeutil.as_utc reads SQLite's naive ones).
Timestamp = DateTime(timezone=True)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE run through a Session changed (Session.execute is typed
    as returning a plain Result; for these statements it is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount
