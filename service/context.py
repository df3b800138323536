"""What a command needs, built once and lazily: the configuration and the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import inspect, make_url

from caseworker.accounts import account_of, is_supervisor
from core.db import Database
from core.errors import PcseError
from forms.sandbox import PdfLimits
from service.config import Config
from service.revisions import database_revision, head_revision, mismatch
from workflow.env import WorkflowEnv


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
        """The database, after checking that `pcse db upgrade` has brought its schema to
        the revision this release needs (code and schema of different releases would
        fail message by message, or worse)."""
        if not self._checked:
            self._require_sqlite_file()
        database = self.database
        if not self._checked:
            if not inspect(database.engine).has_table("alembic_version"):
                shown = shown_url(self.config.database.url)
                raise DatabaseNotReady(
                    f"The database {shown} has no schema yet; run `pcse db upgrade` first "
                    f"(configuration: {self.config.source})."
                )
            problem = mismatch(database_revision(database.engine), head_revision())
            if problem:
                raise DatabaseNotReady(problem)
            self._checked = True
        return database

    def _require_sqlite_file(self) -> None:
        """A SQLite file that is not there is named, not made: a command run from the
        wrong folder, or without the service's configuration, would otherwise create an
        empty database beside it."""
        url = make_url(self.config.database.url)
        path = url.database or ""
        on_disk = url.get_backend_name() == "sqlite" and path not in ("", ":memory:")
        if on_disk and not Path(path).exists():
            raise DatabaseNotReady(
                f"There is no database at {path} (configuration: {self.config.source}); "
                "run the command where the service's data is, give its configuration "
                "with --config or $PCSE_CONFIG, or make a new database with `pcse db "
                "upgrade`."
            )


def shown_url(url: str) -> str:
    """The database's URL for a message: no password, and no query, which may hold one
    (`?password=`)."""
    return make_url(url).set(query={}).render_as_string(hide_password=True)


def workflow_env(config: Config) -> WorkflowEnv:
    """The workflow's view of the configuration."""
    return WorkflowEnv(
        reminder_after_days=config.workflow.reminder_after_days,
        expire_after_days=config.workflow.expire_after_days,
        sender_policy=config.security.policy(),
        from_address=config.smtp.from_address.lower(),
        from_name=config.smtp.from_name,
        our_addresses=frozenset(config.our_addresses),
        templates_dir=config.notifications.templates_dir,
        max_replies_per_hour=config.notifications.max_replies_per_hour,
        pdf_limits=PdfLimits.from_config(config.limits),
        is_supervisor=is_supervisor,
        targets=config.targets,
        account_of=account_of,
    )
