"""Processing on both databases: one transaction per message, failures parked, noise never answered.

The mailbox here is a Maildir folder (the local source); the IMAP path is in
test_intake_poller.py.
"""

from __future__ import annotations

import contextlib
import mailbox
import multiprocessing
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from core.db import Database
from core.inbound import MessageKind
from core.timeutil import utcnow
from intake import ledger
from intake.models import InboundMessage
from intake.pipeline import poll_all, process_pending, process_settings, run_round
from intake.process import MOST_CLAIMS, Processor
from intake.rawstore import RawStore
from notifications.models import OutboxMessage
from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
from tests.fixtures.dovecot import opening_handler, plain_request
from workflow.cases import create_case
from workflow.intake_link import WorkflowLink
from workflow.models import Case, CaseEvent

CORPUS = Path(__file__).parent / "corpus" / "mail"


def maildir_config(db: Database, tmp_path: Path) -> Config:
    box = MailboxConfig(name="enquiries", maildir=str(tmp_path / "inbox"))
    return Config(
        database=DatabaseConfig(db.url),
        mailboxes=[box],
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
    )


def deliver(config: Config, *messages: bytes) -> None:
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    for data in messages:
        box.add(mailbox.MaildirMessage(data))
    box.close()


def rows(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def count(db: Database, model) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


class Recorder:
    """A real handler (it opens cases) that also remembers what it was given."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[int, MessageKind]] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, session, inbound, mail, classification) -> str:
        with self.lock:
            self.calls.append((inbound.id, classification.kind))
        outcome = opening_handler(session, inbound, mail, classification)
        if self.fail_on and self.fail_on in mail.subject:
            raise RuntimeError("the workflow could not cope with this one")
        return outcome


def test_handler_exception_rolls_back_that_message_only(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, plain_request(1), plain_request(2, subject="BREAK me please"), plain_request(3))
    handler = Recorder(fail_on="BREAK")

    report = run_round(database, config, handler)

    assert (report.processing.processed, report.processing.failed) == (2, 1)
    failed = next(r for r in rows(database) if r.status == "failed")
    # The batch ran straight through, then again with a savepoint for each message once
    # one failed: the failure was recorded, not met a second time.
    handled = [inbound_id for inbound_id, _ in handler.calls]
    assert handled.count(failed.id) == 1
    assert {n for n in handled if n != failed.id} == {r.id for r in rows(database)} - {failed.id}
    assert failed.subject == "BREAK me please"
    assert failed.error == "RuntimeError: the workflow could not cope with this one"
    assert failed.classification == "new_request"
    assert failed.case_id is None  # the handler's case was rolled back with it
    assert count(database, Case) == 2
    assert RawStore(config.storage.raw_dir).get(failed.sha256)  # the original stays

    # A caseworker retries it after the fault is fixed: processed once, no second row.
    with database.transaction() as session:
        ledger.retry(session, failed.id, by="caseworker@nhs.net")
    again = process_pending(database, config, Recorder())
    assert again.processed == 1
    with database.transaction() as session:
        row = session.get(InboundMessage, failed.id)
        assert row.status == "processed" and row.case_id is not None and row.error is None
    assert count(database, Case) == 3


def test_noise_is_recorded_and_never_answered(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    noise = [
        "exchange-automatic-reply",
        "gmail-vacation-responder",
        "outlook-ndr",
        "gmail-dsn",
        "postfix-dsn",
        "mailing-list",
        "read-receipt",
        "x-autoreply",
        "own-address-loop",
        "no-sender",
        "null-return-path",
    ]
    deliver(config, *[(CORPUS / f"{name}.eml").read_bytes() for name in noise])
    handler = Recorder()

    report = run_round(database, config, handler)

    assert handler.calls == []
    assert report.processing.ignored == len(noise)
    assert {r.classification for r in rows(database)} == {"automatic", "bounce", "unrelated"}
    assert all(r.status == "ignored" and r.outcome for r in rows(database))
    assert count(database, OutboxMessage) == 0
    assert count(database, Case) == 0


def test_a_bounce_is_shown_on_its_case(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    with database.transaction() as session:
        case = create_case(session, kind="pl_admin", requester="pm@a81001.nhs.uk")
        session.add(
            OutboxMessage(
                case_id=case.id,
                purpose="acknowledgement",
                message_id="<out-1@pcse.example>",
                to_address="x@example.org",
                subject="s",
                body_text="b",
            )
        )
    deliver(config, (CORPUS / "gmail-dsn.eml").read_bytes())

    run_round(database, config, Recorder(), cases=WorkflowLink())

    [row] = rows(database)
    assert (row.classification, row.status, row.case_id) == ("bounce", "ignored", case.id)
    with database.transaction() as session:
        notes = session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.event == "message")
        ).all()
        assert len(notes) == 1 and "delivery failure" in notes[0].detail


def test_two_workers_process_each_message_exactly_once(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, *[plain_request(i) for i in range(60)])
    poll_all(database, config)
    handler = Recorder()
    results = []

    def work() -> None:
        results.append(process_pending(database, config, handler))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert sum(r.processed for r in results) == 60
    assert sorted(i for i, _ in handler.calls) == sorted({i for i, _ in handler.calls})
    assert len(handler.calls) == 60
    assert count(database, Case) == 60
    assert all(r.status == "processed" and r.claimed_by is None for r in rows(database))


def test_a_lost_claim_rolls_back_the_slow_worker(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, plain_request(1))
    poll_all(database, config)
    store = RawStore(config.storage.raw_dir)
    slow = Processor(database, store, Recorder(), process_settings(config), worker="slow")
    fast = Processor(database, store, Recorder(), process_settings(config), worker="fast")
    with database.transaction() as session:
        [claimed] = ledger.claim_pending(session, "slow", 10)
    # The slow worker's lease runs out; another worker takes the row and finishes it.
    with database.transaction() as session:
        session.execute(update(InboundMessage).values(claimed_until=utcnow() - timedelta(1)))
    assert fast.run().processed == 1

    assert slow.process_one(claimed) == ("skipped", None)
    assert count(database, Case) == 1
    [row] = rows(database)
    assert row.status == "processed" and row.attempts == 2


def test_a_claim_taken_while_handling_rolls_the_handler_back(
    database: Database, tmp_path: Path
) -> None:
    if not database.url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: no other worker can write meanwhile")
    config = maildir_config(database, tmp_path)
    deliver(config, plain_request(1))
    poll_all(database, config)

    def overtaken(session, inbound, mail, classification) -> str:
        outcome = opening_handler(session, inbound, mail, classification)
        with database.transaction() as other:  # another worker whose claim is newer
            other.execute(update(InboundMessage).values(claimed_by="other"))
        return outcome

    report = process_pending(database, config, overtaken)

    assert report.total == 0
    assert count(database, Case) == 0
    [row] = rows(database)
    assert (row.status, row.claimed_by) == ("pending", "other")


def _killed_by_poison(url: str, inbox: str, raw: str) -> None:
    """A worker process whose handler dies, as a process killed for its memory dies, on
    the message whose subject says POISON."""
    db = Database(url)
    box = MailboxConfig(name="enquiries", maildir=inbox)
    config = Config(
        database=DatabaseConfig(url), mailboxes=[box], storage=StorageConfig(raw_dir=raw)
    )

    def dies(session, inbound, mail, classification) -> str:
        if "POISON" in (mail.subject or ""):
            os._exit(137)
        return opening_handler(session, inbound, mail, classification)

    process_pending(db, config, dies)


class _ReadsAhead:
    """The workflow's handler reads forms ahead (workflow.handler); this one only opens
    cases, but asks for the read-ahead all the same."""

    def __call__(self, session, inbound, mail, classification) -> str:
        return opening_handler(session, inbound, mail, classification)

    def read_ahead(self, found, message_seconds):
        return contextlib.nullcontext()


def _killed_reading_ahead(url: str, inbox: str, raw: str) -> None:
    """A worker that dies parsing the POISON message, which may be read ahead of its turn."""
    import intake.process

    real = intake.process.parse_mail

    def parse(data: bytes, **limits):
        if b"POISON" in data:
            os._exit(137)
        return real(data, **limits)

    intake.process.parse_mail = parse
    box = MailboxConfig(name="enquiries", maildir=inbox)
    config = Config(
        database=DatabaseConfig(url), mailboxes=[box], storage=StorageConfig(raw_dir=raw)
    )
    process_pending(Database(url), config, _ReadsAhead())


def _until_a_worker_lives(database: Database, config: Config, target) -> list[int | None]:
    """Worker processes started one after another, as systemd restarts a service that
    died, until one ends of itself; their exit codes."""
    spawn = multiprocessing.get_context("spawn")
    codes = []
    for _ in range(MOST_CLAIMS + 3):
        worker = spawn.Process(
            target=target,
            args=(database.url, config.mailboxes[0].maildir, config.storage.raw_dir),
        )
        worker.start()
        worker.join(120)
        codes.append(worker.exitcode)
        if worker.exitcode == 0:
            break
    return codes


def test_a_message_that_kills_its_worker_is_failed_and_takes_no_other(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, plain_request(0, subject="POISON"), *[plain_request(i) for i in (1, 2, 3)])
    poll_all(database, config)

    codes = _until_a_worker_lives(database, config, _killed_by_poison)

    # Killed in the first batch, then each time it was claimed again, alone; the others
    # were worked one by one, and it was failed unread at last.
    assert codes == [137] * MOST_CLAIMS + [0]
    [poison] = [r for r in rows(database) if r.subject == "POISON"]
    others = [r for r in rows(database) if r.id != poison.id]
    assert poison.status == "failed" and poison.case_id is None
    assert f"began {MOST_CLAIMS} times and never finished" in (poison.error or "")
    assert [r.status for r in others] == ["processed"] * 3
    # Those claimed with it in the first batch were claimed once more, alone.
    assert all(r.attempts in (1, 2) for r in others)
    assert count(database, Case) == 3

    # Retried by a caseworker, it is claimed afresh.
    with database.transaction() as session:
        assert ledger.retry(session, poison.id, by="caseworker@nhs.net").attempts == 0


def test_a_message_that_kills_its_worker_as_it_is_read_ahead_is_failed_too(
    database: Database, tmp_path: Path
) -> None:
    """Read ahead, a message is parsed before its claim is checked, and a message after
    the batch before anyone claims it: neither may kill the worker for good."""
    config = maildir_config(database, tmp_path)
    deliver(
        config,
        *[plain_request(i) for i in (1, 2, 3)],
        plain_request(0, subject="POISON", body="Form attached: form.pdf\n"),
    )
    poll_all(database, config)

    codes = _until_a_worker_lives(database, config, _killed_reading_ahead)

    assert codes[-1] == 0 and len(codes) <= MOST_CLAIMS + 2, codes
    [poison] = [r for r in rows(database) if r.subject == "POISON"]
    assert poison.status == "failed"
    assert f"began {MOST_CLAIMS} times and never finished" in (poison.error or "")
    others = [r for r in rows(database) if r.id != poison.id]
    assert [r.status for r in others] == ["processed"] * 3


def test_stopping_gives_back_the_claims_not_worked(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, *[plain_request(i) for i in range(5)])
    poll_all(database, config)
    stop = threading.Event()

    def stop_after_first(session, inbound, mail, classification) -> str:
        stop.set()
        return opening_handler(session, inbound, mail, classification)

    report = process_pending(database, config, stop_after_first, stop=stop)

    assert report.processed == 1
    waiting = [r for r in rows(database) if r.status == "pending"]
    assert len(waiting) == 4
    assert all(r.claimed_by is None and r.claimed_until is None for r in waiting)
    # Never begun, they count no try: the next run claims them as one batch, and a service
    # stopped and started often fails none of them for want of finishing.
    assert all(r.attempts == 0 for r in waiting)


def test_our_own_address_from_config_is_unrelated(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    config.mailboxes[0].address = "other.inbox@nhs.net"
    deliver(config, plain_request(1, sender="other.inbox@nhs.net"))
    handler = Recorder()
    run_round(database, config, handler)
    assert handler.calls == []
    assert rows(database)[0].classification == "unrelated"


@pytest.mark.parametrize("name", ["approval-answer-in-subject", "case-reply-by-ref"])
def test_answers_reach_the_handler_with_their_classification(
    name: str, database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, (CORPUS / f"{name}.eml").read_bytes())
    handler = Recorder()
    run_round(database, config, handler)
    expected = {
        "approval-answer-in-subject": MessageKind.APPROVAL_ANSWER,
        "case-reply-by-ref": MessageKind.NEW_REQUEST,
    }[name]
    # With no case PCSE-2026-000001 in this database, a reply naming it is a new request.
    assert [kind for _, kind in handler.calls] == [expected]


def test_nul_characters_never_reach_the_database(database: Database, tmp_path: Path) -> None:
    config = maildir_config(database, tmp_path)
    deliver(config, (CORPUS / "nul-bytes.eml").read_bytes())

    def echoing(session, inbound, mail, classification) -> str:
        opening_handler(session, inbound, mail, classification)
        return f"Read: {mail.text}"  # an outcome quoting what the sender wrote

    report = run_round(database, config, echoing)

    assert report.processing.processed == 1
    [row] = rows(database)
    assert "\x00" not in (row.subject or "") + (row.message_id or "") + row.outcome
    assert row.subject == "Request  with a NUL"


def test_a_from_below_a_malformed_header_line_goes_to_a_person(
    database: Database, tmp_path: Path
) -> None:
    """ "Organisation : X" (a space before the colon) ends the headers for the email package,
    so the From below it is not read: the message is failed with the reason, for a person,
    never filed away as mail with no sender."""
    config = maildir_config(database, tmp_path)
    deliver(config)  # the Maildir, empty: its own writer would rewrite the headers
    inbox = Path(config.mailboxes[0].maildir)
    (inbox / "new" / "1.odd.host").write_bytes(
        b"Subject: New admin\r\nOrganisation : The Surgery\r\n"
        b"From: Practice Manager <pm@nhs.net>\r\nMessage-ID: <odd1@nhs.net>\r\n\r\n"
        b"Please make Jane Doe a GPP admin.\r\n"
    )
    poll_all(database, config)
    handler = Recorder()
    report = process_pending(database, config, handler)
    [row] = rows(database)
    assert (report.failed, row.status, handler.calls) == (1, "failed", [])
    assert "malformed" in (row.error or "") and "no From header" in (row.error or "")
