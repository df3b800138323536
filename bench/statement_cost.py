"""What a statement on every email's path costs through SQLAlchemy, and on the driver alone.

    .venv/bin/python bench/statement_cost.py [--n 5000] [--db sqlite|postgres]

Opening a case inserts its row with a Core INSERT built once (core.rowwrites). This runs
that same statement N times on a fresh database, first through SQLAlchemy's
`Connection.execute`, then on the driver's own cursor with the SQL SQLAlchemy compiled for
it and the parameters its type processors made (the JSON and dates encoded), reading the
new id back both ways, the two taking turns in ten rounds; and, as a floor, the same driver
call on a one-column table. It
prints CPU microseconds per statement for each, less the cost of building the values:
what leaving SQLAlchemy's statement layer for the driver's cursor would save on each of
the five or six statements a plain request runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, insert, text  # noqa: E402

from bench.pgcluster import database_url  # noqa: E402
from core.db import Database  # noqa: E402
from service.schema import upgrade  # noqa: E402
from workflow.models import Case  # noqa: E402

CASES = Case.__table__
COLUMNS = [c.key for c in CASES.columns if not c.primary_key]
ROUNDS = 10


def case_values(number: int) -> dict[str, Any]:
    """The columns a new case from a plain request sets, the rest NULL, as opening one does."""
    now = datetime.now(UTC)
    values: dict[str, Any] = dict.fromkeys(COLUMNS)
    values.update(
        ref=f"PCSE-2026-{number:06d}",
        kind="email_request",
        state="received",
        organisation_code=f"A8{number % 10000:04d}",
        requester=f"practice{number}@example.nhs.uk",
        requester_name=f"Practice Manager {number}",
        subject=f"PL Organisation Administrator request {number}",
        fields={"organisation_code": f"A8{number % 10000:04d}", "nominee": f"Jane Doe {number}"},
        findings=[],
        reason="",
        created_at=now,
        updated_at=now,
    )
    return values


def cpu_per_call(calls: int, work: Callable[[int], None], first: int) -> float:
    """CPU microseconds per call of `work(number)` for numbers from `first`."""
    started = time.process_time()
    for number in range(first, first + calls):
        work(number)
    return (time.process_time() - started) * 1e6 / calls


def measure(conn: Connection, n: int) -> dict[str, float]:
    statement = insert(CASES).returning(CASES.c.id)
    dialect = conn.dialect
    compiled = statement.compile(dialect=dialect, column_keys=COLUMNS)
    sql = str(compiled)
    processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
    positional = compiled.positiontup  # None where the driver takes named parameters
    driver = conn.connection.driver_connection
    assert driver is not None

    def bound(values: dict[str, Any]) -> Any:
        done = {k: processors[k](v) if k in processors else v for k, v in values.items()}
        return tuple(done[k] for k in positional) if positional is not None else done

    def through_sqlalchemy(number: int) -> None:
        conn.execute(statement, case_values(number)).scalar_one()

    def on_the_driver(number: int) -> None:
        cursor = driver.cursor()
        cursor.execute(sql, bound(case_values(number)))
        cursor.fetchone()
        cursor.close()

    conn.execute(text("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY)"))
    floor_sql = "INSERT INTO bench_floor (id) VALUES (" + ("?" if positional else "%s") + ")"

    def floor(number: int) -> None:
        cursor = driver.cursor()
        cursor.execute(floor_sql, (number,))
        cursor.close()

    values_only = lambda number: case_values(number)  # noqa: E731
    cpu_per_call(200, through_sqlalchemy, 0)  # warm-up: compiled statement cached, pages in
    cpu_per_call(200, on_the_driver, 200)
    # The two ways take turns, ROUNDS times, so that neither gains from going second
    # (PostgreSQL's and the machine's state drift over a run).
    part = max(n // ROUNDS, 1)
    totals = {"sqlalchemy": 0.0, "driver": 0.0}
    for round_ in range(ROUNDS):
        first = 1_000 + round_ * 2 * part
        totals["sqlalchemy"] += cpu_per_call(part, through_sqlalchemy, first) / ROUNDS
        totals["driver"] += cpu_per_call(part, on_the_driver, first + part) / ROUNDS
    results = {
        "values": cpu_per_call(n, values_only, 0),
        **totals,
        "floor": cpu_per_call(n, floor, 0),
    }
    results["sqlalchemy"] -= results["values"]
    results["driver"] -= results["values"]
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="statements timed each way")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="pcse-statements-") as tmp,
        database_url(args.db, Path(tmp), "pcse_statements_") as url,
    ):
        db = Database(url)
        upgrade(db.engine)
        with db.engine.begin() as conn:
            found = measure(conn, args.n)
        db.dispose()
    print(
        f"INSERT INTO cases … RETURNING id on {args.db}, CPU per statement ({args.n} each): "
        f"through SQLAlchemy {found['sqlalchemy']:.1f} µs, on the driver's cursor "
        f"{found['driver']:.1f} µs (saving {found['sqlalchemy'] - found['driver']:.1f} µs); "
        f"a one-column INSERT on the driver {found['floor']:.1f} µs"
    )


if __name__ == "__main__":
    main()
