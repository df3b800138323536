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
from sqlalchemy import Engine

# Each import registers its package's tables on Base.metadata.
import caseworker.models  # noqa: F401
import intake.models  # noqa: F401
import notifications.models  # noqa: F401
import service.models  # noqa: F401
import workflow.models  # noqa: F401
from core.db import Base

metadata = Base.metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def revision(url: str, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
