"""Case history lines are written together, and savepoints and rollbacks treat them as rows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import Database
from workflow.cases import create_case, record
from workflow.models import CaseEvent


def details(db: Database) -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(CaseEvent.detail).order_by(CaseEvent.id)))


def test_lines_kept_and_dropped_as_rows_would_be(database: Database) -> None:
    with database.transaction() as session:
        case = create_case(session, kind="gpp_admin_form", requester="r@example.org")
        record(session, case, "note", "before the savepoint")
        with pytest.raises(RuntimeError), session.begin_nested():
            record(session, case, "note", "inside, rolled back")
            raise RuntimeError("this message failed")
        with session.begin_nested():
            record(session, case, "note", "inside, kept")
        record(session, case, "note", "after")
        # A query in the same transaction sees every line recorded so far.
        seen = session.scalars(select(CaseEvent.detail).where(CaseEvent.case_id == case.id))
        assert "after" in set(seen)
    with pytest.raises(RuntimeError), database.transaction() as session:
        record(session, case, "note", "in a transaction rolled back")
        raise RuntimeError("rolled back")

    assert details(database) == [
        "Case opened as gpp_admin_form.",
        "before the savepoint",
        "inside, kept",
        "after",
    ]
