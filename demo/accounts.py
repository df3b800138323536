"""Caseworker accounts kept across runs of the demo.

The demo starts its database afresh each run, but the accounts someone added to sign in
to the pages (`pcse caseworker add`, as the demo's closing lines suggest) are theirs, not
the demo's: they are read from the old database before it is cleared and put back in the
new one, with their passwords, so that signing in works as before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core.db import Database

TABLE = "caseworkers"


def saved_accounts(path: Path) -> list[dict[str, Any]]:
    """Every account in the old database, as stored; none if it cannot be read."""
    if not path.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as old:
            old.row_factory = sqlite3.Row
            return [dict(row) for row in old.execute(f"SELECT * FROM {TABLE} ORDER BY id")]
    except sqlite3.Error:
        return []  # not a database, or one from before accounts existed


def put_back(db: Database, accounts: list[dict[str, Any]]) -> list[str]:
    """Insert the accounts into the new database; their addresses.

    Values are copied as stored (one SQLite file to another, the same code having written
    both); columns the new schema no longer has are left out, new ones take their defaults.
    """
    if not accounts:
        return []
    with db.engine.begin() as conn:
        columns = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({TABLE})")}
        kept = [name for name in accounts[0] if name in columns]
        names = ", ".join(kept)
        marks = ", ".join("?" for _ in kept)
        conn.exec_driver_sql(
            f"INSERT INTO {TABLE} ({names}) VALUES ({marks})",
            [tuple(account[name] for name in kept) for account in accounts],
        )
    return [str(account["email"]) for account in accounts]
