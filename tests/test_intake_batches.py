"""Claimed messages are processed in batches: one transaction, worked straight through,
and again with a savepoint per message when one of them fails.

A failing message is rolled back alone (test_intake_process covers that) and never run a
second time; a batch cut short by the database leaves nothing of itself behind, and is
done again once, whole.
"""

from __future__ import annotations

import contextlib
import email.policy
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from core.db import Database
from core.timeutil import utcnow
from intake import ledger, process
from intake.models import InboundMessage
from intake.pipeline import poll_all, process_pending, process_settings
from intake.process import Processor
from intake.rawstore import RawStore
from notifications.models import OutboxMessage
from tests.fixtures.dovecot import opening_handler, plain_request
from tests.test_intake_process import Recorder, count, deliver, maildir_config, rows
from tests.test_workflow_helpers import seed
from workflow.cases import create_case, hold_case_by_id, record
from workflow.models import Case, Organisation


class DatabaseGoesAway(Recorder):
    """Opens its case, then the database is lost on the third message of the batch."""

    def __call__(self, session, inbound, mail, classification) -> str:
        outcome = super().__call__(session, inbound, mail, classification)
        if len(self.calls) == 3:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return outcome


def test_a_batch_cut_short_by_the_database_leaves_nothing_and_is_done_once(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "BATCH_SECONDS", 60.0)  # one batch, however busy the machine
    config = maildir_config(database, tmp_path)
    deliver(
        config,
        plain_request(1),
        plain_request(2),
        plain_request(3),
        plain_request(4),
    )
    poll_all(database, config)
    store = RawStore(config.storage.raw_dir)
    handler = DatabaseGoesAway()
    cut_short = Processor(database, store, handler, process_settings(config))

    report = cut_short.run()

    assert report.total == 0  # nothing of the batch was kept
    assert len(handler.calls) == 3  # two handled, then rolled back with the batch
    assert count(database, Case) == 0
    assert count(database, OutboxMessage) == 0
    assert all(r.status == "pending" and r.claimed_by is None for r in rows(database))

    again = process_pending(database, config, Recorder())
    assert again.processed == 4
    assert count(database, Case) == 4
    assert sorted(r.case_id for r in rows(database)) == sorted(
        {r.case_id for r in rows(database) if r.case_id is not None}
    )


def test_messages_of_one_batch_are_all_recorded_with_their_sender(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, *(plain_request(n) for n in range(1, 26)))  # more than one batch
    poll_all(database, config)

    report = process_pending(database, config, Recorder())

    assert report.processed == 25
    assert count(database, Case) == 25
    recorded = rows(database)
    assert {r.status for r in recorded} == {"processed"}
    assert all(r.sender_status and r.from_address for r in recorded)
    assert all(r.claimed_by is None and r.processed_at is not None for r in recorded)


def test_a_batch_that_has_run_its_time_commits_and_the_rest_go_on(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time allowed, each message commits on its own: the database lost on the
    third loses only the third (and what was not reached), never the two before it."""
    monkeypatch.setattr(process, "BATCH_SECONDS", 0.0)
    config = maildir_config(database, tmp_path)
    deliver(config, *(plain_request(n) for n in range(1, 5)))
    poll_all(database, config)
    store = RawStore(config.storage.raw_dir)

    report = Processor(database, store, DatabaseGoesAway(), process_settings(config)).run()

    assert report.processed == 2
    assert count(database, Case) == 2
    statuses = sorted(r.status for r in rows(database))
    assert statuses == ["pending", "pending", "processed", "processed"]
    again = process_pending(database, config, Recorder())
    assert again.processed == 2
    assert count(database, Case) == 4


def deliver_in_order(database: Database, config, *messages: bytes) -> None:
    for message in messages:  # one poll each: ledger ids in this order
        deliver(config, message)
        poll_all(database, config)


def poisoned(session, inbound, mail, classification) -> str:
    """Opens the case as the workflow does; for a POISON message also records a history
    line the database refuses when it is written, as the batch commits (it names a case
    that does not exist)."""
    case = create_case(
        session, kind="other", requester=mail.from_addresses[0][1], source_message_id=inbound.id
    )
    ledger.link_case(session, inbound, case.id)
    if "POISON" in mail.subject:
        record(session, Case(id=987654), "note", "refused by the foreign key")
    return f"Opened {case.ref}."


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_write_refused_at_the_commit_is_blamed_on_its_own_message(
    database: Database, tmp_path: Path, where: str
) -> None:
    config = maildir_config(database, tmp_path)
    subjects = ["first", "POISON", "third"] if where == "middle" else ["first", "POISON"]
    deliver_in_order(
        database, config, *(plain_request(n, subject=s) for n, s in enumerate(subjects))
    )

    report = process_pending(database, config, poisoned)

    assert {r.subject: r.status for r in rows(database)} == {
        s: "failed" if s == "POISON" else "processed" for s in subjects
    }
    assert report.failed == 1
    assert count(database, Case) == len(subjects) - 1


def test_a_failure_met_as_the_worker_is_stopped_is_recorded_not_met_again(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver_in_order(
        database, config, plain_request(1, subject="fine"), plain_request(2, subject="BREAK")
    )
    calls: list[str] = []
    stop = threading.Event()

    def handler(session, inbound, mail, classification) -> str:
        calls.append(mail.subject)
        outcome = opening_handler(session, inbound, mail, classification)
        if mail.subject == "BREAK":
            stop.set()  # the service is told to stop while this message is worked
            raise RuntimeError("the workflow could not cope with this one")
        return outcome

    process_pending(database, config, handler, stop=stop)
    process_pending(database, config, handler)

    assert calls.count("BREAK") == 1
    assert {r.subject: r.status for r in rows(database)} == {"fine": "processed", "BREAK": "failed"}


def linking(session, inbound, mail, classification) -> str:
    """Opens a case and links the message to it as the workflow does; a BREAK message
    fails after its link."""
    case = create_case(
        session, kind="other", requester=mail.from_addresses[0][1], source_message_id=inbound.id
    )
    ledger.link_case(session, inbound, case.id)
    if "BREAK" in mail.subject:
        raise RuntimeError("the workflow could not cope with this one")
    return f"Opened {case.ref}."


def links(database: Database) -> dict[str, tuple[str, int | None]]:
    """Each message's subject: its status, and the message its case was opened for."""
    with database.transaction() as session:
        opened_for = dict(session.execute(select(Case.id, Case.source_message_id)).all())
    return {r.subject: (r.status, opened_for.get(r.case_id)) for r in rows(database)}


def test_a_case_link_is_written_with_the_result_in_one_update(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver_in_order(database, config, *(plain_request(n, subject=f"s{n}") for n in range(3)))
    sent: list[str] = []

    def note(_conn, _cursor, statement: str, *_: object) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        report = process_pending(database, config, linking)
    finally:
        event.remove(database.engine, "before_cursor_execute", note)

    assert report.processed == 3
    ids = {r.subject: r.id for r in rows(database)}
    assert links(database) == {s: ("processed", ids[s]) for s in ("s0", "s1", "s2")}
    updates = [s for s in sent if s.startswith("UPDATE inbound_messages SET")]
    assert not [s for s in updates if s.startswith("UPDATE inbound_messages SET case_id")]
    assert len([s for s in updates if "case_id=" in s]) == 3  # one result each, with its link


def test_a_message_that_fails_after_its_link_is_left_unlinked(
    database: Database, tmp_path: Path
) -> None:
    """The link of the one that failed goes with its case (the batch is worked again with
    a savepoint for each message), and the others keep theirs."""
    config = maildir_config(database, tmp_path)
    subjects = ["first", "BREAK", "third"]
    deliver_in_order(
        database, config, *(plain_request(n, subject=s) for n, s in enumerate(subjects))
    )

    process_pending(database, config, linking)

    ids = {r.subject: r.id for r in rows(database)}
    assert links(database) == {
        "first": ("processed", ids["first"]),
        "BREAK": ("failed", None),
        "third": ("processed", ids["third"]),
    }
    assert count(database, Case) == 2


def test_a_link_made_outside_processing_is_written_at_once(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver_in_order(database, config, plain_request(1))
    [row] = rows(database)
    with database.transaction() as session:
        inbound = session.get(InboundMessage, row.id)
        case = create_case(session, kind="other", requester="someone@example.nhs.uk")
        ledger.link_case(session, inbound, case.id)
        written = session.connection().execute(
            select(InboundMessage.case_id).where(InboundMessage.id == row.id)
        )
        assert written.scalar_one() == case.id


class ReadingAhead(Recorder):
    """A handler that reads ahead (intake.batch_reading.ReadsAhead), noting what it is
    given; `while_reading` runs as it is handed messages, `work_seconds` of CPU each."""

    def __init__(self, while_reading=None, work_seconds: float = 0.0) -> None:
        super().__init__()
        self.ahead: list[int] = []
        self.while_reading = while_reading
        self.work_seconds = work_seconds

    def read_ahead(self, found, message_seconds) -> contextlib.AbstractContextManager[object]:
        self.ahead.append(len(found))
        if self.while_reading is not None:
            self.while_reading()
        return contextlib.nullcontext()

    def __call__(self, session, inbound, mail, classification) -> str:
        burn(self.work_seconds)
        return super().__call__(session, inbound, mail, classification)


def burn(seconds: float) -> None:
    """Spend `seconds` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def with_form(number: int) -> bytes:
    """A plain request that carries a PDF, so that it is parsed ahead."""
    msg = message_from_bytes(plain_request(number), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(b"%PDF-1.4 " + bytes(500), maintype="application", subtype="pdf")
    return bytes(msg)


def test_messages_after_the_batch_are_read_ahead_with_one_look_up_of_copies_a_batch(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, *(plain_request(n) for n in range(1, 8)))
    poll_all(database, config)
    sent: list[str] = []

    def note(_conn, _cursor, statement: str, *_: object) -> None:
        sent.append(" ".join(statement.split()))

    handler = ReadingAhead()
    settings = replace(process_settings(config), claim_batch=3)
    processor = Processor(database, RawStore(config.storage.raw_dir), handler, settings)
    event.listen(database.engine, "before_cursor_execute", note)
    try:
        report = processor.run()
    finally:
        event.remove(database.engine, "before_cursor_execute", note)

    assert report.processed == 7 and len(handler.calls) == 7
    # Each batch's messages and the pending ones after it: looked up for copies together,
    # never one message at a time.
    assert not [s for s in sent if s.startswith("SELECT min(inbound_messages.id)")]
    assert count(database, Case) == 7


def test_messages_are_parsed_ahead_with_no_write_lock_held(
    sqlite_database: Database, tmp_path: Path
) -> None:
    """The poller and the sender write while a batch's messages are parsed ahead."""
    config = maildir_config(sqlite_database, tmp_path)
    deliver(config, *(with_form(n) for n in range(1, 4)))
    poll_all(sqlite_database, config)
    path = sqlite_database.url.split("///", 1)[1]

    def another_writer() -> None:
        conn = sqlite3.connect(path, timeout=0.2)
        try:
            conn.execute("UPDATE outbox SET id = id WHERE 0")
            conn.commit()
        finally:
            conn.close()

    handler = ReadingAhead(while_reading=another_writer)
    report = process_pending(sqlite_database, config, handler)
    assert report.processed == 3 and handler.ahead == [3]


@pytest.mark.parametrize(("lease_left", "first_read_ahead"), [(60, 3), (-60, 6)])
def test_the_messages_after_a_batch_are_left_alone_while_another_worker_is_at_work(
    database: Database, tmp_path: Path, lease_left: int, first_read_ahead: int
) -> None:
    """Its next batch may be the other worker's, which reads those forms itself; a claim
    whose lease has run out is no worker at work."""
    config = maildir_config(database, tmp_path)
    deliver_in_order(database, config, *(with_form(n) for n in range(1, 8)))
    with database.transaction() as session:
        claimed_at = utcnow() - ledger.CLAIM_LEASE + timedelta(seconds=lease_left)
        [theirs] = ledger.claim_pending(session, "elsewhere:1:0badc0de", 1, now=claimed_at)
    handler = ReadingAhead()
    settings = replace(process_settings(config), claim_batch=3)
    Processor(database, RawStore(config.storage.raw_dir), handler, settings).run()

    # Three claimed, and the three after them only when nobody else is at work. A claim
    # whose lease ran out may have died on its message: that one is claimed alone and not
    # read ahead, and the batch after it is read ahead with the three after that.
    assert handler.ahead[0] == first_read_ahead
    handled = {row.id for row in rows(database) if row.status == "processed"}
    assert (theirs in handled) is (lease_left < 0)


def test_the_cpu_a_message_took_to_parse_ahead_counts_against_its_budget(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, with_form(1))
    poll_all(database, config)
    real = Processor._parse

    def slow_parse(self: Processor, data: bytes):
        burn(0.4)
        return real(self, data)

    monkeypatch.setattr(Processor, "_parse", slow_parse)
    settings = replace(process_settings(config), message_seconds=0.6)
    handler = ReadingAhead(work_seconds=0.4)  # 0.4 s parsing and 0.4 s working: too slow
    processor = Processor(database, RawStore(config.storage.raw_dir), handler, settings)
    report = processor.run()
    assert handler.ahead == [1]  # parsed ahead, then worked
    assert report.failed == 1
    [row] = rows(database)
    assert row.status == "failed" and "message_seconds" in (row.error or "")


class Holding:
    """Opens a case for each message and, for one whose subject says HOLD, holds it as an
    approver's answer does (workflow.cases.hold_case_by_id); notes each message's
    transaction."""

    def __init__(self) -> None:
        self.transactions: dict[str, object] = {}

    def __call__(self, session, inbound, mail, classification) -> str:
        case = create_case(
            session, kind="other", requester=mail.from_addresses[0][1], source_message_id=inbound.id
        )
        ledger.link_case(session, inbound, case.id)
        if "HOLD" in mail.subject:
            hold_case_by_id(session, case.id)
        self.transactions[mail.subject] = session.get_transaction()
        return f"Opened {case.ref}."


def test_a_message_that_holds_a_case_ends_its_batch_transaction(
    database: Database, tmp_path: Path
) -> None:
    """After a message that held a case (its row, then its organisation's), the next
    message goes in a transaction of its own: a transaction holding two cases, in an order
    another holder may reverse, could deadlock with it on PostgreSQL."""
    config = maildir_config(database, tmp_path)
    subjects = ["first", "second HOLD", "third", "fourth"]
    deliver_in_order(
        database, config, *(plain_request(n, subject=s) for n, s in enumerate(subjects, 1))
    )
    handler = Holding()
    report = process_pending(database, config, handler)
    assert report.processed == 4
    seen = handler.transactions
    assert seen["first"] is seen["second HOLD"]  # the batch went on up to the hold
    assert seen["third"] is not seen["second HOLD"]
    assert seen["third"] is seen["fourth"]  # and on again, in the next transaction


class Deadlocking(Recorder):
    """On its first message, locks one organisation, lets another transaction lock a
    second, then asks for that one, while the other asks for the first: PostgreSQL ends one
    of the two. The other transaction asks a moment later, so it is intake's wait that
    runs out first (deadlock_timeout) and intake that is ended."""

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database
        self.other_holds = threading.Event()
        self.other: threading.Thread | None = None
        self.other_error: list[BaseException] = []

    def __call__(self, session, inbound, mail, classification) -> str:
        if self.other is None:
            lock(session, "A81001")
            self.other = threading.Thread(target=self._other, daemon=True)
            self.other.start()
            assert self.other_holds.wait(10)
            lock(session, "B82002")  # ended by PostgreSQL: a deadlock
        return super().__call__(session, inbound, mail, classification)

    def _other(self) -> None:
        try:
            with self.database.transaction() as session:
                lock(session, "B82002")
                self.other_holds.set()
                time.sleep(0.3)
                lock(session, "A81001")
        except BaseException as exc:
            self.other_error.append(exc)


def lock(session, code: str) -> None:
    session.execute(select(Organisation.id).where(Organisation.code == code).with_for_update())


def test_a_batch_ended_by_a_deadlock_is_worked_again_at_once(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no deadlock between two")
    with database.transaction() as session:
        seed(session)
    config = maildir_config(database, tmp_path)
    deliver(config, plain_request(1), plain_request(2), plain_request(3))
    poll_all(database, config)
    handler = Deadlocking(database)
    processor = Processor(
        database, RawStore(config.storage.raw_dir), handler, process_settings(config)
    )
    with caplog.at_level(logging.WARNING, logger="intake.process"):
        report = processor.run()
    assert handler.other is not None
    handler.other.join(10)
    assert handler.other_error == []  # the other transaction went on
    assert report.processed == 3  # in the same round, not the next
    assert len(handler.calls) == 3 and count(database, Case) == 3
    said = [r.getMessage() for r in caplog.records]
    assert any("in favour of another transaction (a deadlock)" in s for s in said)
    assert not any("unavailable" in s for s in said)
