"""Rows written by prebuilt Core statements (core.rowwrites.add_inserted, set_written) behave as
rows the ORM wrote, and history lines wait past the statements marked as not touching them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text

from core.db import Database
from core.rowwrites import add_inserted, pending_may_wait
from intake import ledger
from intake.models import InboundMessage
from workflow.cases import create_case, move, record
from workflow.models import Case, CaseEvent


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


def new_case(ref: str) -> Case:
    return Case(ref=ref, kind="other", state="received", requester="r@example.org")


def test_the_row_reads_as_loaded_with_its_defaults(database: Database) -> None:
    with database.transaction() as session:
        case = new_case("PCSE-2026-900001")
        with statements(database) as seen:
            add_inserted(session, case)
            # Every column is in memory: reading them asks the database nothing.
            assert (case.fields, case.findings, case.reason) == ({}, [], None)
            assert case.created_at is not None and case.id is not None
        assert len(seen) == 1 and seen[0].startswith("INSERT INTO cases")
        assert case in session and not session.dirty and not session.new
        case.reason = "changed later"  # an ordinary change of a loaded row
    with database.transaction() as session:
        stored = session.get(Case, case.id)
        assert stored is not None and stored.reason == "changed later" and stored.fields == {}


def test_a_savepoint_rolled_back_forgets_the_row(database: Database) -> None:
    with database.transaction() as session:
        with pytest.raises(RuntimeError), session.begin_nested():
            add_inserted(session, new_case("PCSE-2026-900002"))
            raise RuntimeError("this message failed")
        # SQLite gives the rolled-back id again: the session must not still hold that row.
        kept = new_case("PCSE-2026-900003")
        add_inserted(session, kept)
        assert [c.ref for c in session.scalars(select(Case))] == ["PCSE-2026-900003"]
    with database.transaction() as session:
        assert list(session.scalars(select(Case.ref))) == ["PCSE-2026-900003"]


def test_a_case_numbered_in_a_savepoint_rolled_back_is_forgotten(database: Database) -> None:
    """create_case's own INSERT (on PostgreSQL it numbers the case too) is forgotten as
    add_inserted's is."""
    with database.transaction() as session:
        # The year's first case (on PostgreSQL it makes the year's sequence).
        first = create_case(session, kind="other", requester="q@example.org")
        with (
            statements(database) as seen,
            pytest.raises(RuntimeError),
            session.begin_nested(),
        ):
            gone = create_case(session, kind="other", requester="r@example.org")
            raise RuntimeError("this message failed")
        # The case went in one statement, in the savepoint (on PostgreSQL, numbered in it);
        # the first case's history lines were written as the savepoint began.
        words = [s.split()[0] for s in seen]
        assert words[words.index("SAVEPOINT") :] == [
            "SAVEPOINT",
            cases_insert(database),
            "ROLLBACK",
        ]
        kept = create_case(session, kind="other", requester="s@example.org")
        assert gone not in session and kept in session
        found = [c.requester for c in session.scalars(select(Case).order_by(Case.id))]
        assert found == ["q@example.org", "s@example.org"]
    with database.transaction() as session:
        assert list(session.scalars(select(Case.ref).order_by(Case.id))) == [first.ref, kept.ref]


def cases_insert(database: Database) -> str:
    """How the case's INSERT starts: numbered in it on PostgreSQL."""
    return "WITH" if database.engine.dialect.name == "postgresql" else "INSERT"


def test_a_released_savepoint_still_rolls_back_with_its_transaction(database: Database) -> None:
    session = database.sessions()
    with session.begin():
        # A write first: SQLite's driver begins no transaction before a lone SAVEPOINT.
        outer = new_case("PCSE-2026-900004")
        add_inserted(session, outer)
        with session.begin_nested():
            inner = new_case("PCSE-2026-900005")
            add_inserted(session, inner)
        session.rollback()
    assert outer not in session and inner not in session
    session.close()
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_history_waits_past_marked_statements_only(database: Database) -> None:
    marked = pending_may_wait(text("SELECT 1"))
    with database.transaction() as session:
        case = create_case(session, kind="other", requester="r@example.org")
        with statements(database) as seen:
            record(session, case, "note", "one")
            session.execute(marked)
            record(session, case, "note", "two")
            session.execute(marked)
            written_early = sum("INSERT INTO case_events" in s for s in seen)
            # An unmarked query of the history sees every line recorded.
            details = set(session.scalars(select(CaseEvent.detail)))
        assert written_early == 0
        assert {"one", "two"} <= details
        assert sum("INSERT INTO case_events" in s for s in seen) == 1


def test_values_written_in_a_savepoint_rolled_back_are_read_afresh(database: Database) -> None:
    with database.transaction() as session:
        case = new_case("PCSE-2026-900006")
        add_inserted(session, case)
        row = InboundMessage(
            mailbox="enquiries", uidvalidity=1, uid=1, size=1, sha256="a" * 64, status="pending"
        )
        session.add(row)
        session.flush()
        with pytest.raises(RuntimeError), session.begin_nested():
            ledger.link_case(session, row, case.id)
            move(session, case, "triage", actor="system", reason="a person decides")
            assert (row.case_id, case.state) == (case.id, "triage")
            raise RuntimeError("this message failed")
        # What the database holds, not what the rolled-back statements wrote.
        assert (row.case_id, case.state) == (None, "received")
