"""The poller against a real Dovecot: exactly once through crashes, restarts and renumbering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from intake import ledger
from intake.imap import ImapSource, credentials_for
from intake.models import InboundMessage, MailboxState
from intake.pipeline import make_poller, process_pending, run_round
from intake.poller import Backoff
from intake.rawstore import RawStore
from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
from tests.fixtures.dovecot import ImapAccount, opening_handler, plain_request
from workflow.models import Case

pytestmark = pytest.mark.dovecot

FAST = Backoff(base=0.2, cap=1.0, retries=6)


class Crash(BaseException):
    """Stands for the process dying at a given step (not an error the poller could catch)."""


def config_for(db: Database, tmp_path: Path, *boxes: MailboxConfig) -> Config:
    return Config(
        database=DatabaseConfig(db.url),
        mailboxes=list(boxes),
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
    )


def rows(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def crash_at(step: str, times: int = 1):
    left = {"n": times}

    def hook(name: str) -> None:
        if name == step and left["n"] > 0:
            left["n"] -= 1
            raise Crash(step)

    return hook


def test_backlog_drains_once_and_only_once(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    messages = [plain_request(i) for i in range(300)]
    imap_account.append(messages)
    config = config_for(sqlite_database, tmp_path, imap_account.mailbox_config(batch_size=64))

    report = run_round(sqlite_database, config, opening_handler)

    assert report.as_json() == {
        "fetched": 300,
        "processed": 300,
        "duplicates": 0,
        "ignored": 0,
        "failed": 0,
        "errors": [],
    }
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 300
    found = rows(sqlite_database)
    assert len({(r.uidvalidity, r.uid) for r in found}) == 300
    assert all(r.status == "processed" and r.moved_at and r.case_id for r in found)
    store = RawStore(config.storage.raw_dir)
    assert sorted(store.get(r.sha256) for r in found) == sorted(messages)
    with sqlite_database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 300
        state = session.get(MailboxState, config.mailboxes[0].name)
        assert state.last_ok_at is not None and state.last_error is None
        assert state.last_fetched == 300
    again = run_round(sqlite_database, config, opening_handler)
    assert again.fetched == 0 and again.processing.total == 0


@pytest.mark.parametrize("step", ["stored", "committed", "moved"])
def test_a_crash_at_any_step_is_healed_by_the_next_poll(
    step: str, imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    messages = [plain_request(i) for i in range(120)]
    imap_account.append(messages)
    box = imap_account.mailbox_config(batch_size=50)
    config = config_for(sqlite_database, tmp_path, box)

    with pytest.raises(Crash):
        make_poller(sqlite_database, config, box, hook=crash_at(step)).poll()

    recorded = rows(sqlite_database)
    assert len(recorded) == (0 if step == "stored" else 50)
    assert all(r.moved_at is None for r in recorded) or step == "moved"
    assert imap_account.count("INBOX") == (70 if step == "moved" else 120)

    healed = make_poller(sqlite_database, config, box).poll()
    assert healed.error is None
    assert healed.healed == (50 if step == "committed" else 0)
    assert healed.fetched + len(recorded) == 120
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 120
    final = rows(sqlite_database)
    assert len(final) == 120
    assert len({r.sha256 for r in final}) == 120
    assert all(r.moved_at is not None for r in final)


def test_killed_mid_poll_loses_nothing_and_stores_nothing_twice(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    messages = [plain_request(i) for i in range(400)]
    imap_account.append(messages)
    box = imap_account.mailbox_config(batch_size=10)
    config = config_for(sqlite_database, tmp_path, box)
    script = textwrap.dedent(f"""
        from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
        from core.db import Database
        from intake.pipeline import poll_all
        box = MailboxConfig(**{vars(box)!r})
        config = Config(database=DatabaseConfig({sqlite_database.url!r}), mailboxes=[box],
                        storage=StorageConfig({config.storage.raw_dir!r}))
        poll_all(Database(config.database.url), config)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if len(rows(sqlite_database)) >= 60:
                break
            time.sleep(0.02)
        assert child.poll() is None, "the poll finished before it could be interrupted"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    interrupted = len(rows(sqlite_database))
    assert 0 < interrupted < 400

    report = run_round(sqlite_database, config, opening_handler)

    assert report.errors == []
    final = rows(sqlite_database)
    assert len(final) == 400
    assert len({r.sha256 for r in final}) == 400
    assert report.fetched == 400 - interrupted
    assert report.processing.processed == 400
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 400


def test_the_same_message_delivered_twice_is_processed_once(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    message = plain_request(7)
    imap_account.append([message, plain_request(8), message])
    config = config_for(sqlite_database, tmp_path, imap_account.mailbox_config())

    report = run_round(sqlite_database, config, opening_handler)

    assert report.fetched == 3
    assert report.processing.processed == 2
    assert report.processing.duplicates == 1
    found = rows(sqlite_database)
    duplicate = next(r for r in found if r.status == "duplicate")
    original = next(r for r in found if r.sha256 == duplicate.sha256 and r.id != duplicate.id)
    assert duplicate.classification == "duplicate"
    assert duplicate.case_id == original.case_id
    assert str(original.id) in duplicate.outcome
    with sqlite_database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 2


def test_uidvalidity_change_renumbers_without_double_recording(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    old = [plain_request(i) for i in range(30)]
    imap_account.append(old, folder="Intake")
    box = imap_account.mailbox_config(folder="Intake")
    config = config_for(sqlite_database, tmp_path, box)
    # Recorded but never moved: then the server renumbers the folder.
    with pytest.raises(Crash):
        make_poller(sqlite_database, config, box, hook=crash_at("committed")).poll()
    first_validity = rows(sqlite_database)[0].uidvalidity
    client = imap_account.client()
    client.delete_folder("Intake")
    client.create_folder("Intake")
    client.logout()
    new = [plain_request(100 + i) for i in range(5)]
    imap_account.append(old + new, folder="Intake")

    report = make_poller(sqlite_database, config, box).poll()

    assert report.uidvalidity_changed
    assert report.rekeyed == 30
    assert report.fetched == 5
    final = rows(sqlite_database)
    assert len(final) == 35
    assert {r.uidvalidity for r in final} == {final[-1].uidvalidity} != {first_validity}
    assert imap_account.count("Intake") == 0
    processed = process_pending(sqlite_database, config, opening_handler)
    assert (processed.processed, processed.duplicates) == (35, 0)

    # Renumbered again, now holding copies of messages already handled: duplicates only.
    client = imap_account.client()
    client.delete_folder("Intake")
    client.create_folder("Intake")
    client.logout()
    imap_account.append(old[:3], folder="Intake")
    report = make_poller(sqlite_database, config, box).poll()
    assert report.uidvalidity_changed and report.fetched == 3
    again = process_pending(sqlite_database, config, opening_handler)
    assert (again.processed, again.duplicates) == (0, 3)


def test_server_restarted_mid_poll(
    dovecot, imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    imap_account.append([plain_request(i) for i in range(150)])
    box = imap_account.mailbox_config(batch_size=40)
    config = config_for(sqlite_database, tmp_path, box)
    restarted = {"done": False}

    def restart_once(step: str) -> None:
        if step == "committed" and not restarted["done"]:
            restarted["done"] = True
            dovecot.restart()

    report = make_poller(sqlite_database, config, box, hook=restart_once, backoff=FAST).poll()

    assert restarted["done"]
    assert report.error is None
    assert report.reconnects >= 1
    assert report.healed == 40
    assert report.fetched == 150
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 150
    assert len({r.sha256 for r in rows(sqlite_database)}) == 150


def test_server_down_is_recorded_and_retried_next_time(
    dovecot, imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    imap_account.append([plain_request(1)])
    box = imap_account.mailbox_config()
    config = config_for(sqlite_database, tmp_path, box)
    dovecot.stop()
    try:
        report = make_poller(
            sqlite_database, config, box, backoff=Backoff(base=0.05, retries=2)
        ).poll()
    finally:
        dovecot.start()
    assert report.error and "Could not reach" in report.error
    assert report.reconnects == 2
    with sqlite_database.transaction() as session:
        state = session.get(MailboxState, box.name)
        assert state.last_error == report.error and state.last_ok_at is None
    report = make_poller(sqlite_database, config, box).poll()
    assert report.error is None and report.fetched == 1
    with sqlite_database.transaction() as session:
        state = session.get(MailboxState, box.name)
        assert state.last_error is None and state.last_ok_at is not None


def test_unreadable_message_goes_to_failed_folder_with_the_reason(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    big = plain_request(2, body="x" * 20_000)
    imap_account.append([plain_request(1), big, plain_request(3)])
    box = imap_account.mailbox_config()
    config = config_for(sqlite_database, tmp_path, box)
    poller = make_poller(sqlite_database, config, box)
    poller.message_max_bytes = 10_000

    report = poller.poll()

    assert (report.fetched, report.unreadable) == (2, 1)
    assert imap_account.count("Failed") == 1
    assert imap_account.count("Processed") == 2
    assert imap_account.bodies("Failed") == [big]
    failed = next(r for r in rows(sqlite_database) if r.status == "failed")
    assert "over the 0 MB" in failed.error or "MB this service reads" in failed.error
    assert "Failed folder" in failed.error
    processed = process_pending(sqlite_database, config, opening_handler)
    assert processed.processed == 2
    # A caseworker retries it: it still cannot be read, and says so.
    with sqlite_database.transaction() as session:
        ledger.retry(session, failed.id, by="caseworker@nhs.net")
    again = process_pending(sqlite_database, config, opening_handler)
    assert again.failed == 1
    with sqlite_database.transaction() as session:
        row = session.get(InboundMessage, failed.id)
        assert row.status == "failed" and "could not be fetched" in row.error


def test_without_move_it_copies_flags_and_expunges_only_those_uids(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    imap_account.append([plain_request(i) for i in range(12)])
    box = imap_account.mailbox_config(batch_size=5)
    config = config_for(sqlite_database, tmp_path, box)

    def copy_only(mailbox: MailboxConfig) -> ImapSource:
        return ImapSource.from_config(mailbox, credentials_for(mailbox), use_move=False)

    def bystander_arrives(step: str) -> None:
        # Someone else's message, flagged for deletion but not expunged: it must stay.
        if step == "committed" and imap_account.count("INBOX") == 12:
            client = imap_account.client()
            client.append("INBOX", plain_request(99), flags=[b"\\Deleted"])
            client.logout()

    report = make_poller(
        sqlite_database, config, box, source_factory=copy_only, hook=bystander_arrives
    ).poll()

    assert report.fetched == 12
    assert imap_account.count("Processed") == 12
    assert imap_account.count("INBOX") == 1  # only the bystander, still there


def test_tls_with_a_trusted_certificate(
    dovecot,
    imap_account: ImapAccount,
    sqlite_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imap_account.append([plain_request(1)])
    box = imap_account.mailbox_config(imap_ssl=True, imap_port=dovecot.ssl_port)
    config = config_for(sqlite_database, tmp_path, box)

    untrusted = make_poller(sqlite_database, config, box).poll()
    assert untrusted.error and "not trusted" in untrusted.error
    assert untrusted.reconnects == 0

    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert_path))
    report = make_poller(sqlite_database, config, box).poll()
    assert report.error is None and report.fetched == 1


def test_starttls_on_the_plain_port(
    dovecot,
    imap_account: ImapAccount,
    sqlite_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert_path))
    imap_account.append([plain_request(1)])
    box = imap_account.mailbox_config(starttls=True)
    config = config_for(sqlite_database, tmp_path, box)
    report = make_poller(sqlite_database, config, box).poll()
    assert report.error is None and report.fetched == 1


@pytest.mark.slow
def test_a_25_mb_message_through_imap(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Practice <pm@a81001.nhs.uk>"
    msg["To"] = "pcse.portalenquiries@nhs.net"
    msg["Subject"] = "Scanned forms"
    msg["Message-ID"] = "<scans@a81001.nhs.uk>"
    msg.set_content("The scans are attached.")
    msg.add_attachment(
        b"%PDF-1.4\n" + bytes(25 * 1024 * 1024),
        maintype="application",
        subtype="pdf",
        filename="scans.pdf",
    )
    imap_account.append([msg.as_bytes(), plain_request(2)])
    config = config_for(sqlite_database, tmp_path, imap_account.mailbox_config())
    seen = []

    def handler(session, row, mail, classification) -> str:
        seen.append(
            (
                mail.subject,
                [a.filename for a in mail.attachments],
                [s.problem for s in mail.skipped_attachments],
            )
        )
        return opening_handler(session, row, mail, classification)

    report = run_round(sqlite_database, config, handler)

    assert (report.fetched, report.processing.processed) == (2, 2)
    big = next(s for s in seen if s[0] == "Scanned forms")
    assert big[1] == [] and "over the limit of 20 MB" in big[2][0]
    stored = next(r for r in rows(sqlite_database) if r.subject == "Scanned forms")
    assert stored.size > 25 * 1024 * 1024
    assert len(RawStore(config.storage.raw_dir).get(stored.sha256)) == stored.size


def test_wrong_password_is_a_clear_error_and_not_retried(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    box = imap_account.mailbox_config(password="wrong")
    config = config_for(sqlite_database, tmp_path, box)
    report = make_poller(sqlite_database, config, box).poll()
    assert report.error and "refused the sign-in" in report.error
    assert "wrong" not in report.error
    assert report.reconnects == 0


def test_several_mailboxes_each_with_their_own_folders(
    dovecot, sqlite_database: Database, tmp_path: Path
) -> None:
    first, second = dovecot.add_user(), dovecot.add_user()
    first.append([plain_request(i) for i in range(3)])
    second.append([plain_request(10 + i) for i in range(4)])
    boxes = [
        first.mailbox_config(),
        replace(second.mailbox_config(), processed_folder="Done", failed_folder="Broken"),
    ]
    config = config_for(sqlite_database, tmp_path, *boxes)

    report = run_round(sqlite_database, config, opening_handler)

    assert [p.fetched for p in report.polls] == [3, 4]
    assert report.processing.processed == 7
    assert first.count("Processed") == 3
    assert second.count("Done") == 4 and second.count("Broken") == 0
    by_box = {r.mailbox for r in rows(sqlite_database)}
    assert by_box == {boxes[0].name, boxes[1].name}


def test_two_workers_polling_one_mailbox_record_each_message_once(
    imap_account: ImapAccount, database: Database, tmp_path: Path
) -> None:
    import threading

    imap_account.append([plain_request(i) for i in range(200)])
    box = imap_account.mailbox_config(batch_size=20)
    config = config_for(database, tmp_path, box)
    reports = []
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        reports.append(make_poller(database, config, box, backoff=FAST).poll())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    found = rows(database)
    assert len(found) == 200
    assert len({r.sha256 for r in found}) == 200
    assert all(r.moved_at is not None for r in found)
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 200
    leftovers = make_poller(database, config, box).poll()
    assert leftovers.error is None and leftovers.fetched == 0
