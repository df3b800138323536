"""Processing stored messages: one transaction per message, classify, hand over, record.

New requests, case replies and approval answers go to the injected Handler (the
workflow). Automatic replies, bounces, duplicates and unrelated mail are recorded and
never answered. An exception rolls that one message back; a fresh transaction then marks
its row failed with the error, parked for a caseworker, and the next message goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from core.db import Database, begin_writing, is_holding
from core.errors import PcseError
from core.inbound import BATCH_SENDERS, Classification, IncomingMail, MessageKind
from core.redact import without_addresses
from core.senderauth import SenderPolicy, verdict_for
from core.workers import worker_id
from intake import ledger
from intake.batch_reading import BatchReading
from intake.budget import WATCHDOG, MessageTooSlow
from intake.classify import Facts, Knowledge, LedgerKnowledge, classify, find_earlier_copies
from intake.mailparse import DEFAULT_ATTACHMENT_MAX_BYTES, ParsedMail, parse_mail
from intake.models import InboundMessage
from intake.rawstore import RawStore

log = logging.getLogger(__name__)

Handler = Callable[[Session, InboundMessage, IncomingMail, Classification], str]

HANDLED = frozenset({MessageKind.NEW_REQUEST, MessageKind.CASE_REPLY, MessageKind.APPROVAL_ANSWER})
NOTED_ON_CASE = frozenset({MessageKind.BOUNCE, MessageKind.AUTOMATIC})


class UnreadableMessage(PcseError):
    pass


class TooSlow(PcseError):
    """A message whose processing spent its time budget ([limits] message_seconds)."""


class DatabaseUnavailable(RuntimeError):
    """The database went away mid-message: the message stays pending, the round stops."""


# A batch commits once it has worked this long (wall clock), and the rest of its claimed
# messages go on in the next transaction: a crash loses at most this much work, and on
# SQLite the write lock is never held longer than this, so the poller and the sender keep
# their turns.
BATCH_SECONDS = 1.0

# Another worker's claims are looked for among this many batches' worth of pending
# messages at the front of the queue (intake.ledger.others_at_work).
OTHERS_WINDOW = 10

# After this many tries cut short by the database, a message is parked as failed after
# all, in case the fault is in the message.
DATABASE_TRIES = 5
# A message claimed more often than this without finishing is failed unread: its worker
# died each time (killed for its memory, say). More than DATABASE_TRIES, which fails a
# message the database kept cutting short.
MOST_CLAIMS = DATABASE_TRIES + 1


def database_gone(exc: BaseException) -> bool:
    """Is this the database being unreachable (a restart, the network, a lock)?

    The error that says so may be the cause or context of the one raised: a connection lost
    inside a savepoint surfaces as the failure to roll back to it."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OperationalError | InterfaceError):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# PostgreSQL's SQLSTATEs for a transaction it ended so that another could go on. Nothing is
# wrong with the database or with the message.
_CONFLICTS = {"40P01": "a deadlock", "40001": "a serialization failure"}

# A batch ended so is worked again at once, this many times, before the round stops.
CONFLICT_RETRIES = 3


def lost_to_another(exc: BaseException) -> str | None:
    """Did the database end this transaction to let another go on? In words (_CONFLICTS)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        state = getattr(getattr(seen, "orig", None), "sqlstate", None)
        if state in _CONFLICTS:
            return _CONFLICTS[state]
        seen = seen.__cause__ or seen.__context__
    return None


def _stop_if_database_gone(exc: BaseException, seen: dict[str, Any]) -> None:
    """A message cut short by the database: the batch stays pending, to be done again,
    unless this message has been cut short so DATABASE_TRIES times (the fault may be in it,
    and it is then failed like any other)."""
    if database_gone(exc) and seen.get("attempts", 0) < DATABASE_TRIES:
        raise DatabaseUnavailable(str(exc)) from exc


class StoppedItsWorker(PcseError):
    """Every earlier try at the message ended with the process working it gone."""

    def __init__(self, tries: int) -> None:
        super().__init__(
            f"Processing this message began {tries} times and never finished: the process "
            "working it stopped each time (it may have run out of memory). It was not read "
            "again; open the original to see what it holds, and retry it once the cause is "
            "known."
        )


class LostClaim(RuntimeError):
    """Another worker took the message (our claim's lease ran out); ours is rolled back."""


@dataclass
class ProcessReport:
    processed: int = 0
    duplicates: int = 0
    ignored: int = 0
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, status: str, kind: str | None) -> None:
        if status == ledger.PROCESSED:
            self.processed += 1
        elif status == ledger.DUPLICATE:
            self.duplicates += 1
        elif status == ledger.IGNORED:
            self.ignored += 1
        elif status == ledger.FAILED:
            self.failed += 1
        if kind:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def add(self, other: ProcessReport) -> None:
        self.processed += other.processed
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.failed += other.failed
        for kind, count in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + count

    @property
    def total(self) -> int:
        return self.processed + self.duplicates + self.ignored + self.failed


@dataclass(frozen=True)
class ProcessSettings:
    our_addresses: frozenset[str]
    sender_policy: SenderPolicy = field(default_factory=SenderPolicy)
    attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES
    claim_batch: int = 20
    # CPU seconds one message may take to read, classify and hand over (None: no limit).
    message_seconds: float | None = 30.0


@dataclass(frozen=True)
class Outcome:
    status: str
    classification: Classification
    outcome: str
    case_ref: str | None
    case_state: str | None = None


class CaseLink(Protocol):
    """What intake asks of the cases above it; workflow.intake_link.WorkflowLink answers.
    Intake itself writes no case history."""

    def knowledge(self, session: Session) -> Knowledge:
        """What classification may ask of the database."""
        ...

    def note(self, session: Session, row: InboundMessage, found: Classification) -> None:
        """A bounce or an automatic reply on a known case: show it there."""
        ...

    def describe(self, session: Session, case_id: int) -> tuple[str, str] | None:
        """The case's reference and state, for the log."""
        ...


class LedgerOnly:
    """A CaseLink that knows the ledger only (for intake on its own, and its tests)."""

    def knowledge(self, session: Session) -> Knowledge:
        return LedgerKnowledge(session)

    def note(self, session: Session, row: InboundMessage, found: Classification) -> None:
        if found.case_id is not None:
            ledger.link_case(session, row, found.case_id)

    def describe(self, session: Session, case_id: int) -> tuple[str, str] | None:
        return None


class Processor:
    def __init__(
        self,
        db: Database,
        store: RawStore,
        handler: Handler,
        settings: ProcessSettings,
        *,
        worker: str | None = None,
        stop: threading.Event | None = None,
        cases: CaseLink | None = None,
    ) -> None:
        self.db = db
        self.cases: CaseLink = cases or LedgerOnly()
        self.store = store
        self.handler = handler
        self.settings = settings
        self.worker = worker or worker_id()
        self.stop = stop or threading.Event()
        self._reading: BatchReading | None = None  # what this run has read ahead

    def run(self, limit: int | None = None, *, release: bool = True) -> ProcessReport:
        """Process pending messages until none are left (or `limit`, or a stop request).

        `release` first takes back what dead workers on this host had claimed. Claims this
        worker still holds from an earlier run (the database went away before their result
        could be written) are taken up again; claims not worked are given back on the way
        out, so that an outage never leaves messages waiting out their lease.
        """
        report = ProcessReport()
        if release:
            self.release_abandoned()
        self._release_own()
        held: list[int] = []
        try:
            with self._reading_ahead():
                return self._claim_and_work(limit, report, held)
        except DatabaseUnavailable as exc:
            # Nothing is parked for a caseworker because of it; what is claimed stays
            # pending, given back below or taken up again by the next run.
            said = without_addresses(str(exc).splitlines()[0][:300])
            if lost_to_another(exc):
                log.warning(
                    "intake: a batch was ended by the database in favour of other transactions "
                    "%d times; it waits for the next round: %s",
                    CONFLICT_RETRIES + 1,
                    said,
                )
            else:
                log.error(
                    "intake: the database is unavailable, so processing stops until the next "
                    "round: %s",
                    said,
                )
            return report
        finally:
            if held:
                # Stopped between messages, what is held was never begun; after a failure
                # it may have been, and counts.
                self._give_back(held, unbegun=self.stop.is_set())

    def _claim_and_work(
        self, limit: int | None, report: ProcessReport, held: list[int]
    ) -> ProcessReport:
        """Claim batches and work them until none is left; `held` holds what is claimed
        and not worked yet (given back by the caller should this stop early)."""
        while limit is None or report.total < limit:
            want = self.settings.claim_batch
            if limit is not None:
                want = min(want, limit - report.total)
            with self.db.transaction() as session:
                claimed = ledger.claim_pending(session, self.worker, want)
            if not claimed:
                break
            held[:] = claimed
            self._read_ahead(held, upcoming=limit is None)
            conflicts = 0
            while held and not self.stop.is_set():
                try:
                    worked = self.process_batch(list(held))
                except Exception as exc:
                    conflict = lost_to_another(exc)
                    if conflict is None or conflicts >= CONFLICT_RETRIES:
                        raise
                    conflicts += 1
                    # Rolled back whole; the messages are still claimed by this worker.
                    log.warning(
                        "intake: a batch of %d message(s) was ended by the database in favour "
                        "of another transaction (%s); working it again",
                        len(held),
                        conflict,
                    )
                    continue
                for inbound_id, status, kind in worked:
                    held.remove(inbound_id)
                    report.count(status, kind)
            if self.stop.is_set():
                return report
        return report

    def _release_own(self) -> None:
        with self.db.transaction() as session:
            ledger.release(session, self.worker, ledger.claimed_by(session, self.worker))

    def _give_back(self, ids: list[int], *, unbegun: bool = False) -> None:
        try:
            with self.db.transaction() as session:
                ledger.release(session, self.worker, ids, unbegun=unbegun)
        except Exception:  # the next run of this worker takes them up again
            log.warning("could not give back %d claimed message(s) now", len(ids), exc_info=True)

    def release_abandoned(self) -> None:
        """Take back at once what a worker killed on this host had claimed."""
        with self.db.transaction() as session:
            released = ledger.release_abandoned(session)
        for holder, count in released.items():
            log.warning(
                "released %d message(s) claimed by worker %s, which is no longer running",
                count,
                holder,
            )

    def process_one(self, inbound_id: int) -> tuple[str, str | None]:
        """(status, classification) for one claimed row."""
        [(_, status, kind)] = self.process_batch([inbound_id]) or [(inbound_id, "skipped", None)]
        return status, kind

    def process_batch(self, ids: list[int]) -> list[tuple[int, str, str | None]]:
        """Process claimed rows in one transaction.

        Nothing is visible to anyone (no case, no reply, no ledger result) until the batch
        commits, so a crash or a lost database leaves the whole batch pending, to be done
        again from scratch. A stop request ends the batch after the message in hand, and so
        does BATCH_SECONDS spent: the rows not reached stay claimed by this worker for its
        next transaction.

        The batch is first worked straight through. Should a message fail, that transaction
        is rolled back and the batch is worked again with a savepoint for each message: the
        one that failed is recorded as failed (not run a second time) and the others keep
        their work. Savepoints for every batch would cost two round trips per message, and
        a failure is rare.
        """
        with self._reading_ahead():
            return self._both_passes(ids)

    @contextmanager
    def _reading_ahead(self) -> Iterator[None]:
        """One read-ahead (intake.batch_reading) for the run: across the batches claimed
        one after another, and the transactions BATCH_SECONDS cuts each into."""
        if self._reading is not None:
            yield
            return
        self._reading = BatchReading(
            self.handler, self._raw, self._parse, self.settings.message_seconds, self.stop
        )
        try:
            yield
        finally:
            self._reading.close()
            self._reading = None

    def _both_passes(self, ids: list[int]) -> list[tuple[int, str, str | None]]:
        if len(ids) > 1:
            try:
                return self._work(ids, careful=False)
            except _Redo as redo:
                known = {} if redo.again else {redo.inbound_id: (redo.error, redo.seen)}
                return self._work(ids, careful=True, known=known)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                if database_gone(exc):
                    raise
                # The batch failed outside any one message: as it began, or as it committed
                # (its history lines refused, say). With a savepoint each, what fails is
                # blamed on its own message; what fails again at the start is raised.
                log.warning(
                    "a batch failed outside its messages (%s); working it again with savepoints",
                    type(exc).__name__,
                )
        return self._work(ids, careful=True)

    def _work(
        self,
        ids: list[int],
        *,
        careful: bool,
        known: dict[int, tuple[BaseException, dict[str, Any]]] | None = None,
    ) -> list[tuple[int, str, str | None]]:
        """One transaction over the batch; `careful` puts each message in a savepoint, and
        `known` holds failures already met, recorded without running the message again."""
        done: list[tuple[int, str, str | None, _Logged | None]] = []
        began = time.monotonic()
        with self.db.transaction() as session:
            begin_writing(session)
            session.info[ledger.RESULT_FOLLOWS] = True  # each message ends with ledger.finish
            loaded = _load_rows(session, ids)  # held: the identity map keeps rows weakly
            session.info[BATCH_SENDERS] = _senders(loaded)
            # Failures already met are recorded first, whatever else stops the batch: a
            # message is never run again for having failed in a batch that was redone.
            for inbound_id, (error, seen) in (known or {}).items():
                done.append((inbound_id, *self._failed(session, inbound_id, error, seen)))
            for inbound_id in ids:
                if known and inbound_id in known:
                    continue
                if self.stop.is_set() or (done and time.monotonic() - began > BATCH_SECONDS):
                    break
                if done and is_holding(session):
                    # A message held a case, an organisation or a person (an answer, a grant):
                    # the next goes in a transaction of its own, so that no transaction holds
                    # two cases' locks, taken in an order another holder could reverse.
                    break
                if careful:
                    done.append((inbound_id, *self._in_savepoint(session, inbound_id)))
                else:
                    done.append((inbound_id, *self._straight(session, inbound_id)))
            del loaded
        # Logged once committed: a line says what the database now holds.
        for _, _, _, logged in done:
            if logged is not None:
                logged.emit()
        return [(inbound_id, status, kind) for inbound_id, status, kind, _ in done]

    def _straight(
        self, session: Session, inbound_id: int
    ) -> tuple[str, str | None, _Logged | None]:
        """One message with no savepoint: any failure undoes the batch (see process_batch)."""
        seen: dict[str, Any] = {}
        try:
            return self._one(session, inbound_id, seen)
        except (Exception, MessageTooSlow) as exc:
            _stop_if_database_gone(exc, seen)
            # A lost claim is met again, and judged, on the second pass.
            raise _Redo(inbound_id, exc, seen, again=isinstance(exc, LostClaim)) from exc

    def _in_savepoint(
        self, session: Session, inbound_id: int
    ) -> tuple[str, str | None, _Logged | None]:
        seen: dict[str, Any] = {}
        try:
            with session.begin_nested():
                return self._one(session, inbound_id, seen)
        except (Exception, MessageTooSlow) as exc:
            return self._failed(session, inbound_id, exc, seen)

    def _one(
        self, session: Session, inbound_id: int, seen: dict[str, Any]
    ) -> tuple[str, str | None, _Logged | None]:
        # Loaded with the batch (read again after a savepoint rolled back); a claim taken
        # over meanwhile is caught by ledger.finish.
        row = session.get(InboundMessage, inbound_id)
        if row is None or row.status != ledger.PENDING or row.claimed_by != self.worker:
            return "skipped", None, None
        seen["where"] = f"{row.mailbox} uid {row.uid}"
        seen["attempts"] = row.attempts
        if row.attempts > MOST_CLAIMS:
            raise StoppedItsWorker(row.attempts - 1)
        with WATCHDOG.limit(self._budget(inbound_id)):
            result = self._handle(session, row, seen)
        if not ledger.finish(
            session,
            inbound_id,
            self.worker,
            status=result.status,
            classification=str(result.classification.kind),
            outcome=result.outcome[:4000],
            sender=seen["sender"],
            # While processing, link_case leaves writing the link to this UPDATE.
            case_id=row.case_id,
        ):
            raise LostClaim(f"inbound message {inbound_id} was taken by another worker")
        # The outcome's words can name people; the log keeps to what an operator needs,
        # and the ledger row holds the rest.
        logged = _Logged(
            "inbound %d [%s uid %d] %s -> %s%s",
            (
                inbound_id,
                row.mailbox,
                row.uid,
                result.classification.kind,
                result.status,
                f" {result.case_ref} ({result.case_state})" if result.case_ref else "",
            ),
        )
        return result.status, str(result.classification.kind), logged

    def _failed(
        self, session: Session, inbound_id: int, exc: BaseException, seen: dict[str, Any]
    ) -> tuple[str, str | None, _Logged | None]:
        """What a message's failure means, its work already rolled back."""
        if isinstance(exc, LostClaim):
            log.warning("%s; left to that worker", exc)
            return "skipped", None, None
        if isinstance(exc, MessageTooSlow):  # the next message gets a budget of its own
            return self._fail(
                session,
                inbound_id,
                TooSlow(
                    f"Processing this message took more than the {self.settings.message_seconds:g} "
                    "s allowed ([limits] message_seconds), so it was stopped; nothing it would "
                    "have done was kept. Open the original to see what it holds."
                ),
                seen,
            )
        _stop_if_database_gone(exc, seen)
        return self._fail(session, inbound_id, exc, seen)  # parked for a caseworker, never lost

    def read(self, row: InboundMessage) -> ParsedMail:
        if row.sha256 == ledger.UNREAD_SHA256:
            raise UnreadableMessage(
                "This message could not be fetched from the mailbox, so there is nothing to "
                "process; open it in the mailbox's failed folder."
            )
        ahead = self._reading.take(row.id) if self._reading is not None else None
        if isinstance(ahead, ParsedMail):
            mail = ahead
        else:
            mail = self._parse(ahead if ahead is not None else self._raw(row))
        if mail.unreadable:
            raise UnreadableMessage(
                f"This message could not be read: {mail.unreadable}. Only its headers are "
                "shown; open the original to see the rest."
            )
        return mail

    def _read_ahead(self, ids: list[int], *, upcoming: bool) -> None:
        """Hand a claimed batch, and with `upcoming` the pending messages after it, to the
        run's read-ahead; in a transaction of its own that only reads, so that no write
        lock is held while the messages are parsed.

        A batch with a message claimed before (intake.ledger.claim_pending) is not read
        ahead, nor is a message after it that was claimed before: the worker may have died
        reading it, and reading ahead is charged to no claim.

        While another worker is at work, the messages after the batch are left alone: the
        next batch may well be the other worker's, which reads its forms itself, and a
        scanned form read twice costs a second of CPU that both workers share."""
        reading = self._reading
        if reading is None or reading.handler is None:
            return
        batch = self.settings.claim_batch
        with self.db.transaction() as session:
            if upcoming and ledger.others_at_work(session, self.worker, OTHERS_WINDOW * batch):
                upcoming = False
            after = ledger.upcoming(session, max(ids), batch) if upcoming else []
            rows = _load_rows(session, ids, also=after)
            if any(row.attempts > 1 for row in rows if row.id in ids):
                # Claimed before and not finished: the worker may have died reading it.
                # Read in its turn, after its claims are counted (MOST_CLAIMS), and alone.
                return
            rows = [row for row in rows if row.id in ids or not row.attempts]
            knowledge = self.cases.knowledge(session)
            ours = self.settings.our_addresses

            def classified(row: InboundMessage, mail: ParsedMail) -> Classification:
                return classify(mail, Facts.of(row), knowledge, ours)

            reading.add(rows, _copy_in(session), classified)

    def _budget(self, inbound_id: int) -> float | None:
        """The CPU seconds the message may still take: [limits] message_seconds, less what
        parsing it ahead took (intake.batch_reading)."""
        budget = self.settings.message_seconds
        spent = self._reading.spent(inbound_id) if self._reading is not None else 0.0
        if not budget or budget <= 0 or not spent:
            return budget
        if spent >= budget:
            raise MessageTooSlow  # it ran over while being parsed ahead
        return budget - spent

    def _raw(self, row: InboundMessage) -> bytes:
        return self.store.get(row.sha256)

    def _parse(self, data: bytes) -> ParsedMail:
        return parse_mail(data, attachment_max_bytes=self.settings.attachment_max_bytes)

    def _handle(self, session: Session, row: InboundMessage, seen: dict[str, Any]) -> Outcome:
        mail = self.read(row)
        if not mail.headers.get("from") and mail.header_break:
            # The email package ended the headers early: the From may stand below the break,
            # so this is not mail with nobody to answer, and a person must read it.
            raise UnreadableMessage(
                f"Its header section is malformed ({mail.header_break}), and no From header "
                "was read before the break, so who sent it is not known. Open the original "
                "to read it."
            )
        seen["sender"] = self._sender_facts(mail)
        found = classify(
            mail,
            Facts.of(row),
            self.cases.knowledge(session),
            self.settings.our_addresses,
        )
        seen["classification"] = found
        if found.kind in HANDLED:
            outcome = self.handler(session, row, mail, found)
            status = ledger.PROCESSED
        else:
            outcome = found.reason
            status = ledger.DUPLICATE if found.kind == MessageKind.DUPLICATE else ledger.IGNORED
            self._link(session, row, found)
        case_ref = case_state = None
        if row.case_id is not None:
            case_ref, case_state = self.cases.describe(session, row.case_id) or (None, None)
        return Outcome(status, found, outcome or found.reason, case_ref, case_state)

    def _sender_facts(self, mail: ParsedMail) -> dict[str, str | None]:
        """The strict From reading and the trust model's verdict, for the ledger row that
        caseworkers see beside the message (the workflow reaches the same verdict). Written
        with the row's result, so the row is not locked while the handler works."""
        identity = mail.sender_identity
        verdict = verdict_for(self.settings.sender_policy, mail)
        vouched = f" Vouched for by {verdict.vouched_by}." if verdict.vouched_by else ""
        return {
            "from_address": identity.address,
            "from_name": identity.display_name[:200] or None,
            "sender_status": str(verdict.status),
            "sender_detail": (verdict.detail + vouched)[:1000],
        }

    def _link(self, session: Session, row: InboundMessage, found: Classification) -> None:
        """Show a bounce or automatic reply on its case, and a duplicate beside its original."""
        if found.kind == MessageKind.DUPLICATE:
            original = found.details.get("original_inbound_id")
            case_id = original and session.scalar(
                select(InboundMessage.case_id).where(InboundMessage.id == int(original))
            )
            if case_id:
                ledger.link_case(session, row, case_id)
            return
        if found.kind not in NOTED_ON_CASE or found.case_id is None:
            return
        self.cases.note(session, row, found)

    def _fail(
        self, session: Session, inbound_id: int, exc: BaseException, seen: dict[str, Any]
    ) -> tuple[str, str | None, _Logged | None]:
        error = str(exc) if isinstance(exc, PcseError) else f"{type(exc).__name__}: {exc}"
        found: Classification | None = seen.get("classification")
        kind = str(found.kind) if found else None
        try:
            with session.begin_nested():
                ledger.finish(
                    session,
                    inbound_id,
                    self.worker,
                    status=ledger.FAILED,
                    classification=kind,
                    outcome=None,
                    error=error[:4000],
                )
        except Exception as second:  # the claim runs out and the row is tried again
            if database_gone(second):
                raise DatabaseUnavailable(str(second)) from second
            log.exception("inbound %d: could not record its failure", inbound_id)
        # The row keeps the whole error; the log's copy names no address.
        log.error(
            "inbound %d [%s] %s -> failed: %s",
            inbound_id,
            seen.get("where", "?"),
            kind or "unclassified",
            without_addresses(error[:300]),
            exc_info=not isinstance(exc, PcseError),
        )
        return ledger.FAILED, kind, None


class _Redo(Exception):
    """A message failed in a batch worked without savepoints: work the batch again with them."""

    def __init__(
        self, inbound_id: int, error: BaseException, seen: dict[str, Any], *, again: bool
    ) -> None:
        super().__init__(f"inbound {inbound_id} failed; the batch is worked again")
        self.inbound_id = inbound_id
        self.error = error
        self.seen = seen
        self.again = again  # run the message again rather than record the failure


@dataclass(frozen=True)
class _Logged:
    """A log line held back until the batch it describes has committed."""

    message: str
    args: tuple[Any, ...]

    def emit(self) -> None:
        log.info(self.message, *self.args)


def _copy_in(session: Session) -> Callable[[InboundMessage], bool]:
    """Is a row a copy of an earlier message (answered by find_earlier_copies's look-up)?"""
    knowledge = LedgerKnowledge(session)
    return lambda row: knowledge.earlier_copy(row.message_id, Facts.of(row)) is not None


def _senders(rows: list[InboundMessage]) -> frozenset[str]:
    """The batch's From addresses, for those who will answer them (core.inbound)."""
    return frozenset(row.from_address for row in rows if row.from_address)


def _load_rows(
    session: Session, ids: list[int], also: list[InboundMessage] | None = None
) -> list[InboundMessage]:
    """Read the batch's ledger rows in one query, inside its transaction, and look up
    their earlier copies together (and those of rows `also` loaded, in the same query)."""
    rows = list(session.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids))))
    rows += also or []
    find_earlier_copies(session, rows)
    return rows
