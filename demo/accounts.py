"""Caseworker accounts kept across runs of the demo.

The demo starts its database afresh each run, but the accounts someone added to sign in
to the pages (`pcse caseworker add`, as the demo's closing lines suggest) are theirs, not
the demo's: they are read from the old database before it is cleared and put back in the
new one, with their passwords, so that signing in works as before. Until they are back,
they wait in a file of their own beside the database (PENDING, readable by its owner
only): a run that fails between clearing the old database and making the new one loses
none, and the next run puts them back.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from core.db import Database

TABLE = "caseworkers"
PENDING = ".pcse-demo-accounts.json"


def hold_accounts(database: Path) -> list[dict[str, Any]]:
    """The accounts to carry over: the old database's, and any an earlier run did not put
    back; written to PENDING (next to the database) before the database is cleared."""
    pending = database.with_name(PENDING)
    held = {row["email"]: row for row in _pending(pending)}
    held.update({row["email"]: row for row in saved_accounts(database)})
    accounts = list(held.values())
    if accounts:
        descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(accounts, out)
    return accounts


def _pending(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [row for row in rows if isinstance(row, dict) and "email" in row]


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
    ids = [account.get("id") for account in accounts]
    with db.engine.begin() as conn:
        columns = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({TABLE})")}
        if len(set(ids)) < len(ids):
            columns.discard("id")  # held from two databases: new ids, sessions sign in again
        kept = sorted({name for account in accounts for name in account} & columns)
        names = ", ".join(kept)
        marks = ", ".join("?" for _ in kept)
        conn.exec_driver_sql(
            f"INSERT INTO {TABLE} ({names}) VALUES ({marks})",
            [tuple(account.get(name) for name in kept) for account in accounts],
        )
    return [str(account["email"]) for account in accounts]


def forget_pending(database: Path) -> None:
    """The accounts are back in the new database: the file that held them goes."""
    database.with_name(PENDING).unlink(missing_ok=True)
