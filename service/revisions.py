"""Which schema revision this release needs, and whether a database is at it.

Every command asks, so it is read from the migrations' file names rather than by loading
Alembic (about a tenth of a second at each start). Revisions are numbered there with four
digits (service/migrations/versions/0001_…, 0002_…), each revising the one before, so the
highest name is the head, and names compare in the order of the revisions;
tests/test_migration_chain.py checks both against Alembic's own reading.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def head_revision() -> str:
    return max(path.name[:4] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def database_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at; None when it has none."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def mismatch(found: str | None, needed: str) -> str | None:
    """Why a database at revision `found` cannot serve this release, or None if it can."""
    if found == needed:
        return None
    if found is None or found < needed:
        return (
            f"The database's schema is at revision {found or 'none'}; this release needs "
            f"{needed}. Run `pcse db upgrade` first (see docs/operations.md, Upgrading)."
        )
    return (
        f"The database's schema is at revision {found}, newer than this release knows "
        f"({needed}): run the release that upgraded it."
    )
