"""What a command needs, built once and lazily: the configuration and the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import inspect

from service.config import Config
from workflow.db import Database
from workflow.errors import PcseError


class DatabaseNotReady(PcseError):
    pass


@dataclass
class AppContext:
    config: Config
    json_output: bool = False
    _checked: bool = field(default=False, repr=False)

    @cached_property
    def database(self) -> Database:
        return Database(self.config.database.url)

    def db(self) -> Database:
        """The database, after checking that `pcse db upgrade` has been run."""
        database = self.database
        if not self._checked:
            if not inspect(database.engine).has_table("alembic_version"):
                raise DatabaseNotReady(
                    "The database has no schema yet; run `pcse db upgrade` first."
                )
            self._checked = True
        return database
