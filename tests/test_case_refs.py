"""Case references: never given twice, never held by a batch.

On PostgreSQL each number comes from the year's sequence (migration 0008): a worker's
transaction (a batch of messages) that has opened a case does not make another worker
wait for its own next reference; a transaction that rolls back leaves a gap. The year's
sequence starts after the numbers the year already has. On SQLite the counter is raised
once per transaction and its last value written at commit.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, select, text

from core.db import Database, make_engine
from core.timeutil import utcnow
from intake.process import database_gone
from service.schema import MIGRATIONS, alembic_config, upgrade
from tests.fixtures.databases import empty_postgres
from workflow.cases import CaseNumbersUnavailable, create_case, format_ref
from workflow.models import Case, RefCounter

ROOT = Path(__file__).resolve().parent.parent


def open_case(session, n: int) -> str:
    case = create_case(session, kind="gpp_admin_form", requester=f"r{n}@example.org")
    return case.ref


@pytest.mark.postgres
def test_a_transaction_holding_a_new_case_does_not_hold_up_the_next_reference(
    pg_url: str,
) -> None:
    empty_postgres(pg_url)
    first, second = Database(pg_url), Database(pg_url)  # two workers
    try:
        with first.transaction() as batch:
            held = open_case(batch, 1)  # the batch goes on; its transaction stays open
            with second.transaction() as other:
                # Waiting for the first transaction's row lock would fail at once.
                other.execute(text("SET LOCAL lock_timeout = '1s'"))
                meanwhile = open_case(other, 2)
        assert {held[-6:], meanwhile[-6:]} == {"000001", "000002"}
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.postgres
def test_a_rolled_back_case_leaves_a_gap_and_no_number_twice(pg_url: str) -> None:
    empty_postgres(pg_url)
    db = Database(pg_url)
    try:
        with pytest.raises(RuntimeError), db.transaction() as session:
            open_case(session, 1)
            raise RuntimeError("the message failed")
        with db.transaction() as session:
            kept = [open_case(session, n) for n in (2, 3)]
    finally:
        db.dispose()
    assert [ref[-6:] for ref in kept] == ["000002", "000003"]


@pytest.mark.postgres
def test_two_workers_taking_turns_never_share_a_number(pg_url: str) -> None:
    empty_postgres(pg_url)
    workers = [Database(pg_url), Database(pg_url)]
    try:
        refs = []
        for n in range(30):
            with workers[n % 2].transaction() as session:
                refs.append(open_case(session, n))
    finally:
        for db in workers:
            db.dispose()
    assert len(set(refs)) == len(refs)
    assert [int(ref[-6:]) for ref in refs] == list(range(1, 31))


@pytest.mark.postgres
def test_the_case_takes_its_number_in_its_own_insert(pg_url: str) -> None:
    """One round trip opens a case: the INSERT takes the sequence's next number itself."""
    empty_postgres(pg_url)
    db = Database(pg_url)
    sent: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        sent.append(statement)

    try:
        with db.transaction() as session:
            open_case(session, 1)  # the pool's first connection, its checks, out of the way
            event.listen(db.engine, "before_cursor_execute", seen)
            try:
                ref = open_case(session, 2)
            finally:
                event.remove(db.engine, "before_cursor_execute", seen)
            # What intake then reads is what was written.
            stored = session.execute(select(Case.ref).where(Case.ref == ref)).scalar_one()
    finally:
        db.dispose()
    assert len(sent) == 1 and sent[0].lstrip().startswith("WITH case_number")
    assert stored == ref and ref.endswith("-000002")


def test_the_numbered_insert_binds_every_column_typed_whatever_was_imported_first() -> None:
    """Built once, from the cases table as it stands then: a foreign key's type comes from
    the table it points to, which must be loaded with the cases' own models."""
    check = (
        "from sqlalchemy.sql.sqltypes import NullType\n"
        "from workflow.cases import _numbered_insert\n"
        "binds = _numbered_insert().compile().binds.values()\n"
        "print(sorted(b.key for b in binds if isinstance(b.type, NullType)))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "[]"


@pytest.mark.postgres
def test_a_reference_past_six_digits_reads_as_the_counter_would_write_it(pg_url: str) -> None:
    """The reference made in the database is format_ref's, past 999999 too."""
    empty_postgres(pg_url)
    year = utcnow().year
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            open_case(session, 0)  # the year's first case makes its sequence
        with db.engine.begin() as conn:
            conn.execute(text(f"SELECT setval('pcse_case_numbers_{year}', 999998)"))
        with db.transaction() as session:
            refs = [open_case(session, n) for n in (1, 2)]
    finally:
        db.dispose()
    assert refs == [format_ref(year, 999999), format_ref(year, 1_000_000)]
    assert refs[1] == f"PCSE-{year}-1000000"


def counter(db: Database) -> int | None:
    with db.transaction() as session:
        return session.scalar(select(RefCounter.last))


def test_sqlite_counts_in_the_transaction_and_writes_the_last_number(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    with db.transaction() as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")  # as intake's batches do
        # The year's first case, in a savepoint that rolls back with the counter's row.
        with pytest.raises(RuntimeError), session.begin_nested():
            open_case(session, 1)
            raise RuntimeError("this message failed")
        kept = [open_case(session, n) for n in (2, 3, 4)]
        assert counter_in(session) is None  # written only as the transaction commits
    assert [ref[-6:] for ref in kept] == ["000002", "000003", "000004"]
    assert counter(db) == 4
    with pytest.raises(RuntimeError), db.transaction() as session:
        open_case(session, 5)
        raise RuntimeError("the whole batch failed")
    assert counter(db) == 4
    with db.transaction() as session:
        assert open_case(session, 6)[-6:] == "000005"  # a rolled-back transaction's number
    assert counter(db) == 5


def counter_in(session) -> int | None:
    return session.connection().exec_driver_sql("SELECT last FROM ref_counters").scalar()


@pytest.mark.postgres
def test_a_counter_set_back_under_a_running_worker_never_gives_a_number_twice(
    pg_url: str,
) -> None:
    """As a restore, or a test resetting its database, would: nothing held in memory."""
    empty_postgres(pg_url)
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            first = open_case(session, 1)
        empty_postgres(pg_url)
        with db.transaction() as session:
            again = [open_case(session, n) for n in (2, 3)]
    finally:
        db.dispose()
    assert first[-6:] == "000001" and [ref[-6:] for ref in again] == ["000001", "000002"]


def year_without_sequence(url: str) -> int:
    """An empty database whose current year has no sequence yet, as before migration 0008
    or on the year's first day."""
    empty_postgres(url)
    year = utcnow().year
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SEQUENCE IF EXISTS pcse_case_numbers_{year}"))
    engine.dispose()
    return year


@pytest.mark.postgres
def test_the_year_goes_on_from_the_numbers_it_already_has(pg_url: str) -> None:
    """Counted in ref_counters before the upgrade, or held by a case's reference."""
    year = year_without_sequence(pg_url)
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            session.add(RefCounter(year=year, last=41))
            for ref in (f"PCSE-{year}-000057", f"PCSE-{year}-IMPORTED"):
                session.add(Case(ref=ref, kind="other", state="received", requester="a@x.org"))
        with db.transaction() as session:
            refs = [open_case(session, n) for n in (1, 2)]
    finally:
        db.dispose()
    assert refs == [f"PCSE-{year}-000058", f"PCSE-{year}-000059"]


@pytest.mark.postgres
def test_workers_starting_the_year_together_never_share_a_number(pg_url: str) -> None:
    """One worker's transaction looked for the year's sequence before another made it:
    it still takes numbers after the other's, never one of them."""
    year = year_without_sequence(pg_url)
    first, second = Database(pg_url), Database(pg_url)
    try:
        with first.transaction() as early:
            missing = early.execute(text(f"SELECT pcse_next_case_number({year})")).scalar()
            with second.transaction() as other:
                made = [open_case(other, n) for n in (1, 2)]
            later = [open_case(early, n) for n in (3, 4)]
        with first.transaction() as session:
            after = open_case(session, 5)
    finally:
        first.dispose()
        second.dispose()
    assert missing is None
    numbers = [int(ref[-6:]) for ref in (*made, *later, after)]
    assert numbers == [1, 2, 3, 4, 5]


@pytest.mark.postgres
def test_a_downgrade_hands_the_numbers_back_to_the_counter(pg_url: str) -> None:
    """Migration 0008 undone: the year's last number is in ref_counters, where the code
    before it counts, and the sequence is gone (kept, an upgrade again would go on from its
    old value, below the numbers counted meanwhile)."""
    year = year_without_sequence(pg_url)
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            [open_case(session, n) for n in range(3)]
        command.downgrade(alembic_config(pg_url), "0007")
        try:
            with db.engine.begin() as conn:
                sequence = f"pcse_case_numbers_{year}"
                assert conn.execute(text(f"SELECT to_regclass('{sequence}')")).scalar() is None
            assert counter(db) == 3
        finally:
            command.upgrade(alembic_config(pg_url), "head")
        with db.transaction() as session:  # upgraded again: on from the counter
            assert open_case(session, 4)[-6:] == "000004"
    finally:
        db.dispose()


def migration_0008():
    path = MIGRATIONS / "versions" / "0008_case_numbers_from_a_sequence.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def case_number_schemas(db: Database, year: int) -> list[str]:
    with db.engine.connect() as conn:
        found = conn.execute(
            text("SELECT schemaname FROM pg_sequences WHERE sequencename = :name"),
            {"name": f"pcse_case_numbers_{year}"},
        )
        return list(found.scalars())


@pytest.mark.postgres
def test_a_year_is_started_beside_the_tables_whatever_the_search_path(pg_url: str) -> None:
    """A schema named after the signed-in role comes first in the default search path;
    the sequence still goes beside ref_counters, where it must be found."""
    year = year_without_sequence(pg_url)
    db = Database(pg_url)
    with db.engine.begin() as conn:
        role = conn.execute(text("SELECT current_user")).scalar_one()
        conn.execute(text(f'CREATE SCHEMA "{role}"'))
    try:
        with db.transaction() as session:
            refs = [open_case(session, n) for n in (1, 2)]
        assert [ref[-6:] for ref in refs] == ["000001", "000002"]
        assert case_number_schemas(db, year) == ["public"]
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{role}" CASCADE'))
        db.dispose()


@pytest.mark.postgres
def test_the_upgrade_makes_this_year_and_the_next(pg_url: str) -> None:
    year = year_without_sequence(pg_url)
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    db = Database(pg_url)
    try:
        assert case_number_schemas(db, year) == ["public"]
        assert case_number_schemas(db, year + 1) == ["public"]
        with db.transaction() as session:
            assert open_case(session, 1)[-6:] == "000001"
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_year_the_database_will_not_start_is_a_clear_error(pg_url: str) -> None:
    """Refused (here as for a sequence another schema would hold, SQLSTATE 55000, which the
    driver raises as an OperationalError): the error says why, and processing does not
    take it for the database being away (which would hold the batch back, again and again)."""
    year_without_sequence(pg_url)
    db = Database(pg_url)
    refuse = """
        CREATE OR REPLACE FUNCTION pcse_make_case_numbers(for_year integer) RETURNS text
        LANGUAGE plpgsql AS $$ BEGIN
            RAISE EXCEPTION 'sequence must be in same schema as table it is linked to'
                USING ERRCODE = '55000';
        END $$
    """
    with db.engine.begin() as conn:
        conn.execute(text(refuse))
    said = "must be in same schema as table it is linked to\\. Run `pcse db upgrade`"
    try:
        with (
            pytest.raises(CaseNumbersUnavailable, match=said) as refused,
            db.transaction() as session,
        ):
            open_case(session, 1)
        assert not database_gone(refused.value)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(migration_0008().MAKE_CASE_NUMBERS))
        db.dispose()
