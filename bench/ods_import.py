"""Time `import_ods` on a whole epraccur.csv, on SQLite and PostgreSQL.

    .venv/bin/python bench/ods_import.py FILE [--pg-url URL]

Each database starts empty and migrated. Four runs per database: the first load (every
practice new), a re-run of the same file (nothing changed), a copy of the file with every
name changed (every row updated), and --include-non-gp (the cost centres that are not GP
practices added). Prints rows/s and seconds for each.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pgcluster import scratch_database
from core.db import Database
from service.schema import upgrade
from workflow.imports import import_ods

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/bench.sqlite3")
        upgrade(db.engine)
        yield db
        db.dispose()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[Database]:
    with scratch_database(admin_url, prefix="pcse_bench_") as scratch:
        db = Database(scratch)
        try:
            upgrade(db.engine)
            yield db
        finally:
            db.dispose()


def renamed_copy(path: str, folder: str) -> str:
    """The file with every practice renamed, as if a month of changes had come at once."""
    with open(path, encoding="utf-8", newline="") as source:
        rows = list(csv.reader(source))
    for row in rows:
        row[1] = f"{row[1][:44]} (NEW)"
    copy = Path(folder) / "epraccur-renamed.csv"
    with copy.open("w", encoding="utf-8", newline="") as target:
        csv.writer(target, quoting=csv.QUOTE_ALL).writerows(rows)
    return str(copy)


def timed_runs(label: str, db: Database, path: str, renamed: str) -> None:
    runs = (
        ("first load", path, False),
        ("re-run", path, False),
        ("every name changed", renamed, False),
        ("--include-non-gp", renamed, True),
    )
    for run, file, include_non_gp in runs:
        started = time.perf_counter()
        with db.transaction() as session:
            report = import_ods(session, file, actor="bench", include_non_gp=include_non_gp)
        seconds = time.perf_counter() - started
        print(
            f"{label:10} {run:18} {report.rows:6d} rows  {seconds:6.2f} s  "
            f"{report.rows / seconds:9,.0f} rows/s  (added {report.added}, "
            f"updated {report.updated}, unchanged {report.unchanged}, "
            f"skipped {report.skipped}, failed {report.failed})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="NHS ODS epraccur.csv (the whole monthly file)")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG,
        help="a PostgreSQL server's maintenance database (default: %(default)s)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        renamed = renamed_copy(args.file, folder)
        with sqlite_database() as db:
            timed_runs("sqlite", db, args.file, renamed)
        try:
            with postgres_database(args.pg_url) as db:
                timed_runs("postgresql", db, args.file, renamed)
        except sa.exc.OperationalError as exc:
            print(f"postgresql skipped: cannot connect ({exc.orig})")


if __name__ == "__main__":
    main()
