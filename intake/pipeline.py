"""One round of intake from the configuration: poll every mailbox, then process what is pending."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.db import Database
from core.errors import PcseError
from core.redact import without_addresses
from core.timeutil import utcnow
from intake.imap import ImapSource, credentials_for
from intake.maildir import MaildirSource
from intake.poller import (
    DEFAULT_MESSAGE_MAX_BYTES,
    Backoff,
    Hook,
    Poller,
    PollReport,
    record_poll,
)
from intake.process import CaseLink, Handler, Processor, ProcessReport, ProcessSettings
from intake.rawstore import RawStore
from intake.source import MailboxSource

if TYPE_CHECKING:
    from intake.settings import IntakeConfig as Config
    from intake.settings import MailboxConfig

log = logging.getLogger(__name__)

SourceFactory = Callable[["MailboxConfig"], MailboxSource]


@dataclass
class IntakeReport:
    polls: list[PollReport] = field(default_factory=list)
    processing: ProcessReport = field(default_factory=ProcessReport)

    @property
    def fetched(self) -> int:
        return sum(p.fetched for p in self.polls)

    @property
    def errors(self) -> list[str]:
        return [f"{p.mailbox}: {p.error}" for p in self.polls if p.error]

    def as_json(self) -> dict[str, Any]:
        """The `pcse poll --once --json` document."""
        return {
            "fetched": self.fetched,
            "processed": self.processing.processed,
            "duplicates": self.processing.duplicates,
            "ignored": self.processing.ignored,
            "failed": self.processing.failed + sum(p.unreadable for p in self.polls),
            "errors": self.errors,
        }


def open_source(box: MailboxConfig) -> MailboxSource:
    """A (not yet connected) source for one [[mailboxes]] entry."""
    if box.maildir:
        return MaildirSource(box.name, box.maildir, folder=box.folder)
    return ImapSource.from_config(box, credentials_for(box))


def raw_store(config: Config) -> RawStore:
    return RawStore(config.storage.raw_dir)


def message_max_bytes(config: Config) -> int:
    """The largest message fetched: room for a capped attachment, base64-encoded, and more."""
    return max(DEFAULT_MESSAGE_MAX_BYTES, 4 * config.limits.attachment_max_bytes)


def process_settings(config: Config) -> ProcessSettings:
    return ProcessSettings(
        our_addresses=frozenset(config.our_addresses),
        sender_policy=config.security.policy(),
        attachment_max_bytes=config.limits.attachment_max_bytes,
        message_seconds=config.limits.message_seconds,
    )


def make_poller(
    db: Database,
    config: Config,
    box: MailboxConfig,
    *,
    stop: threading.Event | None = None,
    hook: Hook | None = None,
    source_factory: SourceFactory = open_source,
    backoff: Backoff | None = None,
) -> Poller:
    return Poller(
        db,
        raw_store(config),
        source_factory(box),
        processed_folder=box.processed_folder,
        failed_folder=box.failed_folder,
        batch_size=box.batch_size,
        message_max_bytes=message_max_bytes(config),
        backoff=backoff,
        stop=stop,
        hook=hook,
    )


def poll_mailbox(
    db: Database,
    config: Config,
    box: MailboxConfig,
    *,
    stop: threading.Event | None = None,
    **kwargs: Any,
) -> PollReport:
    started = utcnow()
    try:
        poller = make_poller(db, config, box, stop=stop, **kwargs)
    except PcseError as exc:
        # A setting that stops the mailbox being opened at all (no password, no token).
        log.error("mailbox %s: %s", box.name, without_addresses(exc))
        report = PollReport(box.name, error=str(exc))
        record_poll(db, report, started)
        return report
    return poller.poll()


def poll_all(
    db: Database, config: Config, *, stop: threading.Event | None = None, **kwargs: Any
) -> list[PollReport]:
    reports = []
    for box in config.mailboxes:
        if stop is not None and stop.is_set():
            break
        reports.append(poll_mailbox(db, config, box, stop=stop, **kwargs))
    return reports


def process_pending(
    db: Database,
    config: Config,
    handler: Handler,
    *,
    stop: threading.Event | None = None,
    worker: str | None = None,
    limit: int | None = None,
    cases: CaseLink | None = None,
) -> ProcessReport:
    processor = Processor(
        db,
        raw_store(config),
        handler,
        process_settings(config),
        worker=worker,
        stop=stop,
        cases=cases,
    )
    return processor.run(limit=limit)


def run_round(
    db: Database,
    config: Config,
    handler: Handler,
    *,
    stop: threading.Event | None = None,
    worker: str | None = None,
    cases: CaseLink | None = None,
    **kwargs: Any,
) -> IntakeReport:
    """Poll every mailbox and process everything pending (rows left by earlier rounds too).

    Processing runs in a second thread while the mailboxes are polled, taking each batch as
    soon as its ledger rows are committed; the poller spends most of its time waiting on
    the network and the disk, so the two overlap well.
    """
    stop = stop or threading.Event()
    report = IntakeReport()
    polled = threading.Event()
    processor = Processor(
        db,
        raw_store(config),
        handler,
        process_settings(config),
        worker=worker,
        stop=stop,
        cases=cases,
    )
    failure: list[BaseException] = []

    def process_while_polling() -> None:
        try:
            first = True
            while not stop.is_set():
                last_call = polled.is_set()
                part = processor.run(release=first)
                first = False
                report.processing.add(part)
                if last_call and part.total == 0:
                    return
                if part.total == 0:
                    polled.wait(0.05)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=process_while_polling, name="intake-process", daemon=True)
    thread.start()
    try:
        report.polls = poll_all(db, config, stop=stop, **kwargs)
    finally:
        polled.set()
        thread.join()
    if failure:
        raise failure[0]
    return report
