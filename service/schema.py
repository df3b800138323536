"""Create or migrate the database with Alembic (`pcse db upgrade`).

One schema, one Alembic history: each package owns its tables (workflow.models,
intake.models, notifications.models, caseworker.models, service.models); this module,
in the composition root, gathers them on `core.db.Base.metadata`. The revisions keep
their ids (0001…), so databases made before the tables were split upgrade as before.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, func, select

# Each import registers its package's tables on Base.metadata.
import caseworker.models  # noqa: F401
import intake.models  # noqa: F401
import notifications.models  # noqa: F401
import service.models  # noqa: F401
import workflow.models  # noqa: F401
from core.db import Base
from core.timeutil import utcnow

metadata = Base.metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # A SQLite migration that changes a table copies it and drops the old one,
            # which the foreign keys of the tables pointing at it would refuse. The pragma
            # holds only outside a transaction; the keys are checked before committing.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
                if sqlite:
                    _check_foreign_keys(connection)
                else:
                    _make_case_numbers(connection)
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _make_case_numbers(connection: Connection) -> None:
    """On PostgreSQL, this year's and next year's case-number sequences (migration 0008):
    what stops them being made (a schema, a privilege) shows here, not at a year's first
    request, and a year's first case finds its sequence ready."""
    this_year = utcnow().year
    for year in (this_year, this_year + 1):
        connection.execute(select(func.pcse_make_case_numbers(year)))


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(
            f"the upgrade would leave rows pointing at nothing in {', '.join(tables)}; "
            "nothing was changed"
        )


def revision(url: str, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
