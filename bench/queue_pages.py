"""Time the queue's pages at volume: the default view, the overdue filter and `pcse queue
--needs-person`'s list, on SQLite and PostgreSQL.

    .venv/bin/python bench/queue_pages.py [--cases N] [--pg-url URL]

N cases (default 5,000) in a spread of states and ages, one in ten closed with a new reply.
The overdue filter checks every open or marked case in Python (working days do not fit a
SQL interval), so its cost grows with the open cases; the figures say by how much.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pgcluster import scratch_database
from caseworker.queue import QueueFilters, needs_person_rows, queue_page
from core.db import Database
from service.schema import upgrade
from workflow.models import Case
from workflow.targets import TargetsConfig

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
STATES = ["triage", "needs_info", "awaiting_approval", "completed", "rejected", "answered"]


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/bench.sqlite3")
        upgrade(db.engine)
        yield db
        db.dispose()


@contextmanager
def postgres_database(url: str) -> Iterator[Database]:
    with scratch_database(url) as scratch:
        db = Database(scratch)
        upgrade(db.engine)
        yield db
        db.dispose()


def fill(db: Database, count: int) -> None:
    """Cases written straight to the table: the bench times reading, not the workflow."""
    rows = []
    for n in range(count):
        state = STATES[n % len(STATES)]
        at = NOW - timedelta(hours=n % 400)
        rows.append(
            {
                "ref": f"PCSE-2026-{n + 1:06d}",
                "kind": "pl_admin",
                "state": state,
                "organisation_code": f"A{n % 900:05d}",
                "requester": f"person{n}@nhs.net",
                "fields": {},
                "findings": [],
                "reason": "Waiting.",
                "created_at": at,
                "updated_at": at,
                "new_reply_at": at if n % 10 == 3 else None,
                "assigned_to": "casey@nhs.net" if n % 7 == 0 else None,
            }
        )
    with db.transaction() as session:
        session.execute(sa.insert(Case), rows)


def timed(label: str, work: Callable[[], int], runs: int = 5) -> None:
    best = float("inf")
    found = 0
    for _ in range(runs):
        start = time.perf_counter()
        found = work()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<34} {best * 1000:8.1f} ms  ({found} rows)")


def measure(name: str, db: Database, count: int) -> None:
    fill(db, count)
    targets = TargetsConfig()
    print(f"{name}: {count:,} cases")

    def page(filters: QueueFilters) -> Callable[[], int]:
        def run() -> int:
            with db.transaction() as session:
                result = queue_page(
                    session, filters, page=1, page_size=25, now=NOW, targets=targets
                )
                return result.total

        return run

    def needs_person() -> int:
        with db.transaction() as session:
            return len(needs_person_rows(session, now=NOW, targets=targets))

    timed("default view (page 1 of 25 rows)", page(QueueFilters()))
    timed("overdue, all states (page 1)", page(QueueFilters(state="all", overdue=True)))
    timed("new replies (page 1)", page(QueueFilters(new_reply=True)))
    timed("pcse queue --needs-person (all)", needs_person, runs=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args()
    with sqlite_database() as db:
        measure("sqlite", db, args.cases)
    try:
        with postgres_database(args.pg_url) as db:
            measure("postgresql", db, args.cases)
    except sa.exc.OperationalError as exc:
        print(f"postgresql skipped: cannot connect ({exc.orig})")


if __name__ == "__main__":
    main()
