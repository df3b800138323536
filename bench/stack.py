"""What every proof runs against: Dovecot, an SMTP sink, a database, a directory, a backlog.

`Stack` starts a Dovecot of its own (tests/fixtures/dovecot.py), an aiosmtpd sink in this
process, and a migrated PostgreSQL database (a scratch database on a given server, or on a
private cluster the caller controls); it loads a generated directory, writes the service's
configuration, and can deliver a backlog to the inbox and tell when it has all been done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import func, select

from bench.audit import Audit, audit
from bench.dovecot import DovecotServer, ImapAccount, discard_dovecot, start_dovecot
from bench.mailmix import Backlog, load_directory, organisations
from bench.service_proc import PcseRun, Settings, write_config
from core.db import Database
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from notifications.sink import SmtpSink
from service.schema import upgrade


@dataclass
class Stack:
    folder: Path
    db_url: str
    dovecot: DovecotServer
    account: ImapAccount
    sink: SmtpSink
    db: Database
    settings: Settings
    delivered: list[str] = field(default_factory=list)  # Message-IDs sent to the inbox
    runs: list[PcseRun] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.folder / "pcse.toml"

    def write_config(self, **changes: object) -> Path:
        self.settings = replace(self.settings, **changes)
        return write_config(self.config, self.settings)

    def service(self, name: str = "pcse-run") -> PcseRun:
        run = PcseRun(self.config, self.folder / f"{name}.log")
        self.runs.append(run)
        return run

    def deliver(self, backlog: Backlog) -> None:
        self.account.append(backlog.messages)
        self.delivered += backlog.message_ids

    # ------------------------------------------------------------------ progress

    def remaining(self) -> dict[str, int]:
        """What is still to do: messages in the inbox, ledger rows pending, emails to send."""
        with self.db.transaction() as session:
            pending = (
                session.scalar(
                    select(func.count())
                    .select_from(InboundMessage)
                    .where(InboundMessage.status == "pending")
                )
                or 0
            )
            rows = session.scalar(select(func.count()).select_from(InboundMessage)) or 0
            outbox = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            )
        inbox = self.account.count("INBOX")
        return {
            "inbox": inbox,
            "unrecorded": max(0, len(self.delivered) - rows),
            "pending": pending,
            "outbox": outbox or 0,
        }

    def done(self) -> bool:
        left = self.remaining()
        return not any(left.values())

    def wait_done(self, timeout: float, run: PcseRun | None = None, interval: float = 0.5) -> float:
        """Seconds until everything is done; raises when `run` dies or time runs out."""
        started = time.monotonic()
        while not self.done():
            if run is not None and not run.alive:
                raise RuntimeError(
                    f"pcse run exited ({run.process.returncode}) before the "
                    f"work was done; see {run.log_path}"
                )
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"not done after {timeout:.0f} s: {self.remaining()}")
            time.sleep(interval)
        return time.monotonic() - started

    def audit(self) -> Audit:
        result = audit(self.db, self.delivered, [m.data for m in self.sink.messages])
        moved = self.account.count("Processed") + self.account.count("Failed")
        result.extra_copies = moved - len(self.delivered) + self.account.count("INBOX")
        return result

    def close(self) -> None:
        for run in self.runs:
            run.stop(timeout=10)
        self.db.dispose()
        self.sink.stop()
        discard_dovecot(self.dovecot)


@contextlib.contextmanager
def stack(
    folder: Path, db_url: str, *, organisations_count: int = 200, **settings: object
) -> Iterator[Stack]:
    """A ready stack on `db_url` (an empty database); everything is stopped afterwards."""
    dovecot = start_dovecot()
    sink = SmtpSink().start()
    db = Database(db_url)
    made: Stack | None = None
    try:
        upgrade(db.engine)
        load_directory(db, organisations(organisations_count), folder / "directory")
        account = dovecot.add_user()
        base = Settings(
            db_url=db_url,
            imap_port=dovecot.port,
            imap_user=account.username,
            imap_password=account.password,
            smtp_port=sink.port,
            raw_dir=folder / "raw",
        )
        made = Stack(folder, db_url, dovecot, account, sink, db, replace(base, **settings))
        made.write_config()
        yield made
    finally:
        if made is not None:
            made.close()
        else:
            db.dispose()
            sink.stop()
            discard_dovecot(dovecot)
