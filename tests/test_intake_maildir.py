"""The Maildir source: the same exactly-once poller over files, for local use and the demo."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from intake.maildir import MaildirSource, uid_for
from intake.models import InboundMessage, MailboxState
from intake.pipeline import make_poller, run_round
from service.config import Config, DatabaseConfig, MailboxConfig, StorageConfig
from tests.fixtures.dovecot import opening_handler, plain_request


def setup(db: Database, tmp_path: Path, folder: str = "INBOX") -> tuple[Config, Path]:
    root = tmp_path / "maildir"
    box = MailboxConfig(name="local", maildir=str(root), folder=folder)
    config = Config(
        database=DatabaseConfig(db.url),
        mailboxes=[box],
        storage=StorageConfig(str(tmp_path / "raw")),
    )
    return config, root


def files(path: Path) -> list[Path]:
    return sorted(
        p for sub in ("new", "cur") if (path / sub).exists() for p in (path / sub).iterdir()
    )


def test_messages_move_to_the_processed_sub_maildir(
    sqlite_database: Database, tmp_path: Path
) -> None:
    config, root = setup(sqlite_database, tmp_path)
    inbox = mailbox.Maildir(root, create=True)
    for i in range(4):
        inbox.add(mailbox.MaildirMessage(plain_request(i)))
    # One already seen by a mail client: it sits in cur/ with flags.
    seen = mailbox.MaildirMessage(plain_request(9))
    seen.set_subdir("cur")
    seen.add_flag("S")
    inbox.add(seen)
    inbox.close()

    report = run_round(sqlite_database, config, opening_handler)

    assert report.fetched == 5 and report.processing.processed == 5
    assert files(root) == []
    moved = files(root / ".Processed")
    assert len(moved) == 5
    assert all(":2," in p.name and p.parent.name == "cur" for p in moved)
    assert (root / ".Processed" / "maildirfolder").exists()
    again = run_round(sqlite_database, config, opening_handler)
    assert again.fetched == 0


def test_an_unreadable_file_goes_to_failed(sqlite_database: Database, tmp_path: Path) -> None:
    config, root = setup(sqlite_database, tmp_path)
    mailbox.Maildir(root, create=True).add(mailbox.MaildirMessage(plain_request(1)))
    (root / "new" / "1700000000.broken.host").mkdir()  # cannot be read as a message

    report = run_round(sqlite_database, config, opening_handler)

    assert (report.fetched, report.polls[0].unreadable) == (1, 1)
    assert report.as_json()["failed"] == 1
    assert [p.name.split(":")[0] for p in files(root / ".Failed")] == ["1700000000.broken.host"]
    with sqlite_database.transaction() as session:
        failed = session.scalars(
            select(InboundMessage).where(InboundMessage.status == "failed")
        ).one()
        assert failed.uid == uid_for("1700000000.broken.host")
        assert "could not be read" in failed.error and "Failed folder" in failed.error


def test_a_crash_before_the_move_is_healed(sqlite_database: Database, tmp_path: Path) -> None:
    config, root = setup(sqlite_database, tmp_path)
    inbox = mailbox.Maildir(root, create=True)
    for i in range(3):
        inbox.add(mailbox.MaildirMessage(plain_request(i)))
    box = config.mailboxes[0]

    def crash(step: str) -> None:
        if step == "committed":
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        make_poller(sqlite_database, config, box, hook=crash).poll()
    assert len(files(root)) == 3

    report = make_poller(sqlite_database, config, box).poll()
    assert (report.healed, report.fetched) == (3, 0)
    assert files(root) == [] and len(files(root / ".Processed")) == 3
    with sqlite_database.transaction() as session:
        assert len(session.scalars(select(InboundMessage)).all()) == 3


def test_a_sub_folder_as_the_inbox(sqlite_database: Database, tmp_path: Path) -> None:
    config, root = setup(sqlite_database, tmp_path, folder="Intake")
    mailbox.Maildir(root, create=True).add(mailbox.MaildirMessage(plain_request(2)))
    source = MaildirSource("local", root, folder="Intake")
    source.connect()
    mailbox.Maildir(root / ".Intake").add(mailbox.MaildirMessage(plain_request(1)))
    assert len(source.uids()) == 1

    report = run_round(sqlite_database, config, opening_handler)

    assert report.fetched == 1
    assert len(files(root)) == 1  # the top-level inbox is not this mailbox's folder
    assert len(files(root / ".Processed")) == 1


def test_a_raw_store_that_cannot_be_written_moves_nothing(
    sqlite_database: Database, tmp_path: Path
) -> None:
    config, root = setup(sqlite_database, tmp_path)
    mailbox.Maildir(root, create=True).add(mailbox.MaildirMessage(plain_request(1)))
    raw_dir = Path(config.storage.raw_dir)
    raw_dir.write_text("a file where the raw store's folder should be")

    report = make_poller(sqlite_database, config, config.mailboxes[0]).poll()

    assert report.error and "The poll failed" in report.error
    assert len(files(root)) == 1  # still in the inbox
    with sqlite_database.transaction() as session:
        assert session.scalars(select(InboundMessage)).all() == []
        state = session.get(MailboxState, "local")
        assert state.last_error == report.error
    raw_dir.unlink()
    again = make_poller(sqlite_database, config, config.mailboxes[0]).poll()
    assert again.error is None and again.fetched == 1 and files(root) == []


def test_a_mailbox_that_cannot_be_opened_does_not_stop_the_others(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PCSE_OAUTH2_TENANT", raising=False)
    config, root = setup(sqlite_database, tmp_path)
    config.mailboxes.insert(
        0,
        MailboxConfig(
            name="m365",
            imap_host="outlook.office365.com",
            username="pcse@nhs.net",
            auth="oauth2",
            oauth2_provider="msal",
        ),
    )
    mailbox.Maildir(root, create=True).add(mailbox.MaildirMessage(plain_request(1)))

    report = run_round(sqlite_database, config, opening_handler)

    assert "PCSE_OAUTH2_TENANT" in report.polls[0].error
    assert report.polls[1].fetched == 1 and report.processing.processed == 1
    with sqlite_database.transaction() as session:
        assert "PCSE_OAUTH2_TENANT" in session.get(MailboxState, "m365").last_error
