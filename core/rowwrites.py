"""Rows written on every email's path by statements built once, kept in step in the session.

The ORM's unit of work plans each flush afresh, and building a statement costs more than
running it: on paths that run for every email, rows are written by prebuilt Core
statements instead. `add_inserted` and `set_written` keep the session's objects as if the
rows had been read back, and forget what a rolled-back savepoint or transaction wrote, as
the ORM does for its own writes. `pending_may_wait` marks statements that buffered history
lines (workflow.history_lines) may wait past.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, event, insert, inspect
from sqlalchemy.orm import Mapper, Session, SessionTransaction
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.session import make_transient_to_detached
from sqlalchemy.sql import Executable


@dataclass(frozen=True)
class _RowInsert:
    """How add_inserted writes one mapped class: its INSERT, built once, and its columns."""

    statement: Insert
    primary_key: str
    # (attribute, column, default) for each column but the primary key.
    columns: tuple[tuple[str, str, Any], ...]


_ROW_INSERTS: dict[type, _RowInsert] = {}


def add_inserted(session: Session, row: Any) -> None:
    """Insert a new mapped object with one Core statement and put it in `session` as a
    loaded row, as if read back.

    The ORM's own flush of a single new object costs several times a prebuilt INSERT (it
    plans a unit of work each time), which shows on paths that write a row per email. The
    object must be new and its primary key unset; columns it leaves unset take their Python
    default (a scalar or a function of no arguments), else NULL. Changes pending in the
    session are flushed first, as the ORM would before its own INSERT.
    """
    flush_pending(session)
    plan, values = _values_of(row)
    key = session.connection().execute(plan.statement, values).scalar_one()
    _adopt(session, row, {plan.primary_key: key})


def add_inserted_by(session: Session, row: Any, statement: Insert, **params: Any) -> bool:
    """add_inserted with the caller's own INSERT, built once: it takes the row's columns
    as named parameters (`insert_columns`), and `params` besides, and returns the primary
    key and then the columns it set in the database (`.returning()`). False when the
    statement inserted no row: the row is then not added, though the session was flushed
    and the row's unset attributes hold their defaults, as add_inserted would leave them."""
    flush_pending(session)
    _, values = _values_of(row)
    if clash := set(params) & set(values):
        raise ValueError(f"parameters named as the row's columns: {sorted(clash)}")
    found = session.connection().execute(statement, {**values, **params}).mappings().first()
    if found is None:
        return False
    mapper: Mapper[Any] = inspect(type(row))
    table = cast(Table, mapper.local_table)
    written = {mapper.get_property_by_column(table.c[k]).key: v for k, v in found.items()}
    _adopt(session, row, written)
    return True


def insert_columns(cls: type) -> list[str]:
    """The columns add_inserted_by's statement takes as parameters: all but the primary key."""
    plan = _ROW_INSERTS.get(cls) or _plan_insert(cls)
    return [column for _, column, _ in plan.columns]


def _values_of(row: Any) -> tuple[_RowInsert, dict[str, Any]]:
    """The row's plan and its column values, defaults filled in on the object."""
    plan = _ROW_INSERTS.get(type(row)) or _plan_insert(type(row))
    held = instance_state(row).dict  # a new object's attributes, read and set directly
    values: dict[str, Any] = {}
    for attribute, column, default in plan.columns:
        if attribute not in held:
            held[attribute] = default() if callable(default) else default
        values[column] = held[attribute]
    return plan, values


def _adopt(session: Session, row: Any, written: dict[str, Any]) -> None:
    """Put the inserted `row` in the session as loaded, with the values the database set."""
    instance_state(row).dict.update(written)
    make_transient_to_detached(row)  # every attribute now reads as loaded, none pending
    session.add(row)
    # The ORM forgets an object it inserted when the (sub)transaction that inserted it
    # rolls back; this one it sees as read, so the rollback is watched for here.
    _note_written(session, row, None)


def set_written(session: Session, row: Any, values: dict[str, Any]) -> None:
    """Show on a loaded `row` the column values a Core UPDATE has just written, as if read
    back, without the ORM writing them again; should the (sub)transaction that wrote them
    roll back, they are expired (read afresh), as the ORM does for what it wrote itself."""
    for key, value in values.items():
        set_committed_value(row, key, value)
    _note_written(session, row, tuple(values))


# session.info: (transaction, row, attributes) written with Core in this session;
# attributes None for a row inserted by add_inserted.
_WRITTEN = "core.rowwrites.written"


def _note_written(session: Session, row: Any, attributes: tuple[str, ...] | None) -> None:
    innermost = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_WRITTEN, []).append((innermost, row, attributes))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, ended: SessionTransaction) -> None:
    written = session.info.get(_WRITTEN)
    if not written:
        return
    kept = []
    for transaction, row, attributes in written:
        if not _within(transaction, ended):
            kept.append((transaction, row, attributes))
        elif row in session:
            if attributes is None:
                session.expunge(row)
            else:
                session.expire(row, list(attributes))
    session.info[_WRITTEN] = kept


def outermost(session: Session) -> bool:
    """Is the session's transaction event about the transaction itself? Session commit
    events (before_commit, after_commit) are also called as a savepoint is released."""
    return session.get_nested_transaction() is None


@event.listens_for(Session, "after_commit")
def _written_for_good(session: Session) -> None:
    # Rows written in a savepoint released are kept only when all is committed.
    if outermost(session):
        session.info.pop(_WRITTEN, None)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _plan_insert(cls: type) -> _RowInsert:
    mapper: Mapper[Any] = inspect(cls)
    table = cast(Table, mapper.local_table)
    [key] = table.primary_key.columns
    columns = tuple(
        (prop.key, prop.columns[0].key, _python_default(prop.columns[0]))
        for prop in mapper.column_attrs
        if not prop.columns[0].primary_key
    )
    plan = _RowInsert(
        # An INSERT reads and deletes nothing: what is kept pending may wait past it.
        pending_may_wait(insert(table).returning(key)),
        mapper.get_property_by_column(key).key,
        columns,
    )
    _ROW_INSERTS[cls] = plan
    return plan


def _python_default(column: Any) -> Any:
    """The column's Python default: a value, a function of no arguments, or None."""
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    if default.is_scalar:
        return default.arg
    # SQLAlchemy wraps a function of no arguments into one taking the execution context.
    return lambda: default.arg(None)


def flush_pending(session: Session) -> None:
    """Flush what the session holds unwritten, as the ORM's autoflush would before a query;
    for Core statements run on the session's connection, which skip autoflush."""
    if session.new or session.dirty or session.deleted:
        session.flush()


# Execution option: the statement neither reads nor deletes rows that are kept pending on
# the connection to be written together (workflow.history_lines), so they may wait.
PENDING_MAY_WAIT = "pcse_pending_may_wait"

_Statement = TypeVar("_Statement", bound=Executable)


def pending_may_wait(statement: _Statement) -> _Statement:
    """Mark a statement built once that does not touch what is kept pending (the history)."""
    return statement.execution_options(**{PENDING_MAY_WAIT: True})
