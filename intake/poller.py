"""The poller: take every message out of a mailbox exactly once.

For each batch of new UIDs: fetch with BODY.PEEK[], write the raw bytes durably, commit
the ledger rows, and only then move the messages out of the inbox folder. A crash at any
point leaves either a message still in the inbox with no row (fetched again next time) or
a message with a row (just moved next time); never a row without bytes, never a message
gone without a row. A UIDVALIDITY change renumbers the folder: rows whose message never
left the old numbering are matched by digest and take their new UIDs.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import exc as sql_errors
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import Database
from core.redact import without_addresses
from core.timeutil import utcnow
from intake import ledger
from intake.ledger import HeaderFacts, NewMessage, header_facts
from intake.models import MailboxState
from intake.rawstore import RawStore
from intake.source import MailboxSource, SourceError, SourceUnavailable

log = logging.getLogger(__name__)

# What a driver raises for a value it will not store (a lone surrogate, NUL, an overlong
# string on PostgreSQL), as against a database that cannot be reached.
_REFUSED_VALUES = (sql_errors.DataError, UnicodeError, ValueError)

Hook = Callable[[str], None]

DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
DEFAULT_MESSAGE_MAX_BYTES = 100 * 1024 * 1024


@dataclass
class PollReport:
    mailbox: str
    fetched: int = 0  # new messages stored and recorded
    unreadable: int = 0  # recorded as failed and moved to the failed folder
    healed: int = 0  # already recorded, moved out now (an earlier poll stopped short)
    rekeyed: int = 0  # recorded under an old UIDVALIDITY, matched by digest
    uidvalidity_changed: bool = False
    reconnects: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 30.0
    retries: int = 4

    def delay(self, attempt: int) -> float:
        raw = min(self.cap, self.base * 2 ** (attempt - 1))
        return raw * random.uniform(0.8, 1.2)


class Poller:
    def __init__(
        self,
        db: Database,
        store: RawStore,
        source: MailboxSource,
        *,
        processed_folder: str,
        failed_folder: str,
        batch_size: int = 100,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        message_max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES,
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
        hook: Hook | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.store = store
        self.source = source
        self.name = source.name
        self.processed_folder = processed_folder
        self.failed_folder = failed_folder
        self.batch_size = max(1, batch_size)
        self.batch_bytes = batch_bytes
        self.message_max_bytes = message_max_bytes
        self.backoff = backoff or Backoff()
        self.stop = stop or threading.Event()
        self.hook = hook
        self.clock = clock

    # ------------------------------------------------------------------ one poll

    def poll(self) -> PollReport:
        """Take every new message; reconnect with backoff when the connection drops."""
        report = PollReport(self.name)
        started = self.clock()
        attempt = 0
        try:
            while True:
                try:
                    self._poll_once(report)
                    report.error = None
                    break
                except SourceUnavailable as exc:
                    attempt += 1
                    report.error = str(exc)
                    if attempt > self.backoff.retries or self.stop.is_set():
                        break
                    delay = self.backoff.delay(attempt)
                    log.warning(
                        "mailbox %s: %s; retrying in %.1f s",
                        self.name,
                        without_addresses(exc),
                        delay,
                    )
                    report.reconnects += 1
                    if self.stop.wait(delay):
                        break
                except SourceError as exc:
                    report.error = str(exc)
                    break
                except Exception as exc:
                    # The disk or the database, say: nothing has left the inbox unrecorded,
                    # so the next poll carries on from here.
                    log.exception("mailbox %s: poll failed", self.name)
                    report.error = f"The poll failed: {type(exc).__name__}: {exc}"
                    break
        finally:
            self.source.close()
        if report.error:
            log.error("mailbox %s: %s", self.name, without_addresses(report.error))
        self._record_state(report, started)
        return report

    def _step(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)

    def _poll_once(self, report: PollReport) -> None:
        self.source.connect()
        uidvalidity = self.source.select()
        if self._note_uidvalidity(uidvalidity):
            report.uidvalidity_changed = True
        uids = self.source.uids()
        with self.db.transaction() as session:
            known = ledger.known_uids(session, self.name, uidvalidity, uids)
            rekey = ledger.has_unmoved_elsewhere(session, self.name, uidvalidity)
        self._heal(known, uidvalidity, report)
        new = [uid for uid in uids if uid not in known]
        if not new:
            return
        sizes = self.source.sizes(new)
        for batch in self._batches(new, sizes):
            if self.stop.is_set():
                return
            self._take(batch, sizes, uidvalidity, rekey, report)

    def _heal(
        self, known: dict[int, ledger.KnownUid], uidvalidity: int, report: PollReport
    ) -> None:
        """Recorded messages still in the inbox: an earlier poll stopped before moving them."""
        good = [uid for uid, row in known.items() if not row.unreadable]
        bad = [uid for uid, row in known.items() if row.unreadable]
        if good or bad:
            log.info(
                "mailbox %s: moving %d message(s) recorded earlier", self.name, len(good) + len(bad)
            )
        self._move(good, self.processed_folder, uidvalidity)
        self._move(bad, self.failed_folder, uidvalidity)
        report.healed += len(good) + len(bad)

    def _batches(self, uids: Sequence[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        batch: list[int] = []
        total = 0
        for uid in uids:
            size = min(sizes.get(uid, 0), self.message_max_bytes)
            if batch and (len(batch) >= self.batch_size or total + size > self.batch_bytes):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch

    def _take(
        self,
        batch: list[int],
        sizes: dict[int, int],
        uidvalidity: int,
        rekey: bool,
        report: PollReport,
    ) -> None:
        now = self.clock()
        too_big = [uid for uid in batch if sizes.get(uid, 0) > self.message_max_bytes]
        wanted = [uid for uid in batch if uid not in too_big]
        fetched = self.source.fetch(wanted) if wanted else []
        readable = [f for f in fetched if f.data]
        unreadable = [
            self._unreadable(uid, sizes.get(uid, 0), now, self._too_big(uid, sizes))
            for uid in too_big
        ]
        unreadable += [
            self._unreadable(
                f.uid, 0, now, f"It could not be fetched: {f.problem or 'the message is empty'}"
            )
            for f in fetched
            if not f.data
        ]
        digests = self.store.put_many([f.data for f in readable if f.data])
        rows = [
            NewMessage(f.uid, digest, len(f.data or b""), header_facts(f.data or b""), now)
            for f, digest in zip(readable, digests, strict=True)
        ]
        self._step("stored")
        with self.db.transaction() as session:
            taken: set[int] = set()
            if rekey:
                by_sha: dict[str, list[int]] = defaultdict(list)
                for row in rows:
                    by_sha[row.sha256].append(row.uid)
                taken = ledger.rekey_unmoved(session, self.name, uidvalidity, by_sha)
            self._record(session, uidvalidity, [r for r in rows if r.uid not in taken] + unreadable)
        report.fetched += len(rows) - len(taken)
        report.rekeyed += len(taken)
        report.unreadable += len(unreadable)
        self._step("committed")
        self._move([r.uid for r in rows], self.processed_folder, uidvalidity)
        self._move([r.uid for r in unreadable], self.failed_folder, uidvalidity)
        self._step("moved")
        for row in unreadable:
            log.warning(
                "mailbox %s uid %d: unreadable, moved to %s: %s",
                self.name,
                row.uid,
                self.failed_folder,
                row.error,
            )

    def _record(self, session: Session, uidvalidity: int, rows: list[NewMessage]) -> None:
        """The batch's ledger rows. A row the database refuses is recorded without the facts
        read from its headers (processing reads the message properly): one header no
        database would store must not stop every poll of the mailbox at its message."""
        try:
            self._insert(session, uidvalidity, rows)
            return
        except _REFUSED_VALUES:
            log.warning("mailbox %s: header facts refused; recording each message", self.name)
        for row in rows:
            try:
                self._insert(session, uidvalidity, [row])
            except _REFUSED_VALUES as exc:
                log.warning(
                    "mailbox %s uid %d: header facts refused (%s); recorded without them",
                    self.name,
                    row.uid,
                    type(exc).__name__,
                )
                self._insert(
                    session, uidvalidity, [replace(row, facts=HeaderFacts(None, None, None))]
                )

    def _insert(self, session: Session, uidvalidity: int, rows: list[NewMessage]) -> None:
        """Ledger rows in a savepoint of their own, which a refused value rolls back alone."""
        with session.begin_nested():
            ledger.insert_new(session, self.name, uidvalidity, rows)

    def _too_big(self, uid: int, sizes: dict[int, int]) -> str:
        return (
            f"It is {sizes.get(uid, 0) / 1048576:.1f} MB, over the "
            f"{self.message_max_bytes / 1048576:.0f} MB this service reads."
        )

    def _unreadable(self, uid: int, size: int, now: datetime, why: str) -> NewMessage:
        return NewMessage(
            uid,
            ledger.UNREAD_SHA256,
            size,
            HeaderFacts(None, None, None),
            now,
            error=f"{why} The message is in the {self.failed_folder} folder.",
        )

    def _move(self, uids: list[int], folder: str, uidvalidity: int) -> None:
        if not uids:
            return
        with self.db.transaction() as session:
            # One mover per mailbox at a time: two workers moving the same UIDs at once
            # leave two copies in the target folder (the server copies, then expunges).
            # The second finds them gone and moves only what is left (see ImapSource.move).
            session.execute(
                update(MailboxState)
                .where(MailboxState.name == self.name)
                .values(uidvalidity=MailboxState.uidvalidity)
            )
            self.source.move(uids, folder)
            ledger.mark_moved(session, self.name, uidvalidity, uids, self.clock())

    # ------------------------------------------------------------------ mailbox_state

    def _note_uidvalidity(self, uidvalidity: int) -> bool:
        """Store the folder's UIDVALIDITY; True when it differs from the one seen before."""
        with self.db.transaction() as session:
            _ensure_state(session, self.name)
            state = session.get(MailboxState, self.name, with_for_update=True)
            assert state is not None
            changed = state.uidvalidity is not None and state.uidvalidity != uidvalidity
            if changed:
                log.warning(
                    "mailbox %s: UIDVALIDITY changed from %s to %s; rescanning",
                    self.name,
                    state.uidvalidity,
                    uidvalidity,
                )
            state.uidvalidity = uidvalidity
            return changed

    def _record_state(self, report: PollReport, started: datetime) -> None:
        record_poll(self.db, report, started, self.clock())


def _ensure_state(session: Session, name: str) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(MailboxState)
        .values(name=name, last_fetched=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def record_poll(
    db: Database, report: PollReport, started: datetime, now: datetime | None = None
) -> None:
    """Write the poll's outcome to mailbox_state (what `pcse status` shows)."""
    values: dict[str, object] = {"last_poll_at": started}
    if report.error:
        values["last_error"] = report.error[:2000]
    else:
        values.update(last_ok_at=now or utcnow(), last_error=None, last_fetched=report.fetched)
    try:
        with db.transaction() as session:
            _ensure_state(session, report.mailbox)
            session.execute(
                update(MailboxState).where(MailboxState.name == report.mailbox).values(**values)
            )
    except Exception:  # the poll's own result still stands
        log.exception("mailbox %s: could not record the poll's state", report.mailbox)
