"""Hostile input for the readers: no message raises, none takes more than linear time, and
one that runs over its time budget is parked while the next goes on.

Reading is timed in a child process with a deadline, so that a parser gone quadratic
fails the test instead of holding the suite for hours.
"""

from __future__ import annotations

import contextlib
import mailbox
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bench.hostile_messages import BUILDERS, nested, nested_rfc822, reading_seconds
from caseworker.mailview import MAX_SHOWN_CHARS, TooSlowToRead, read_mail, view_of
from core.db import Database
from intake.budget import WATCHDOG, MessageTooSlow
from intake.mailparse import MAX_DEPTH, MAX_MIME_NESTING, ParsedMail, mime_nesting, parse_mail
from intake.models import InboundMessage
from intake.pipeline import process_settings, run_round
from intake.process import Processor
from intake.rawstore import RawStore
from service.web import web_settings
from tests.fixtures.browser import WebClient, email_bytes
from tests.fixtures.dovecot import opening_handler, plain_request
from tests.test_intake_process import maildir_config
from workflow.cases import create_case, get_case

# Each message is read well within a second; a quadratic reader takes minutes.
CHILD_TIMEOUT = 60
SIZES = (2**18, 2**20)  # bytes of hostile content: 256 KB, then four times as much


def deliver(config: Any, *messages: bytes) -> None:
    """Into the Maildir as bytes (a MaildirMessage would parse them, and fail)."""
    box = mailbox.Maildir(config.mailboxes[0].maildir, create=True)
    for data in messages:
        box.add(data)
    box.close()


def in_child(function: Any, *args: Any, timeout: float = CHILD_TIMEOUT) -> Any:
    """`function(*args)` in a child process; raises multiprocessing.TimeoutError if it is
    not done in `timeout` seconds (the child is then killed)."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply_async(function, args).get(timeout=timeout)


def _read_kind(name: str, sizes: tuple[int, ...]) -> list[tuple[int, float, float]]:
    found = []
    for size in sizes:
        raw = BUILDERS[name](size)
        parse, read = reading_seconds(raw)
        found.append((len(raw), parse, read))
    return found


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_hostile_message_is_read_in_linear_time(name: str) -> None:
    times = in_child(_read_kind, name, SIZES)
    assert [size for size, _, _ in times] == sorted(size for size, _, _ in times)
    assert all(parse >= 0 and read >= 0 for _, parse, read in times)


def _summary(raw: bytes) -> dict[str, Any]:
    mail = parse_mail(raw)
    return {
        "unreadable": mail.unreadable,
        "subject": mail.subject,
        "text": mail.text,
        "sender": mail.sender,
        "problems": mail.problems,
    }


@pytest.mark.parametrize("levels", [10, 100, 1000, 5000])
def test_deep_multiparts_never_raise_and_keep_their_headers(levels: int) -> None:
    found = in_child(_summary, nested(levels))
    assert found["subject"] == "hostile"
    if levels <= MAX_DEPTH:
        assert "Please set up an admin." in found["text"]
    if levels <= MAX_MIME_NESTING:
        assert found["unreadable"] is None
    else:
        assert found["unreadable"] == (
            f"its MIME structure is nested {levels} levels deep, "
            f"more than the {MAX_MIME_NESTING} this service reads"
        )
        assert found["text"] == ""
        assert any(p.startswith("only the headers were read") for p in found["problems"])


@pytest.mark.parametrize("levels", [10, 100, 1000, 5000])
def test_deep_forwarded_messages_never_raise(levels: int) -> None:
    found = in_child(_summary, nested_rfc822(levels))
    assert found["subject"] == "hostile"
    assert found["unreadable"] in (None, "its MIME structure is nested too deep to read")


def test_nesting_is_measured_by_boundaries_not_by_mentions() -> None:
    siblings = b"".join(
        b'--top\r\nContent-Type: multipart/alternative; boundary="s%d"\r\n\r\n'
        b"--s%d\r\nContent-Type: text/plain\r\n\r\npart\r\n--s%d--\r\n" % (i, i, i)
        for i in range(150)
    )
    raw = (
        b"From: a@example.org\r\nSubject: many\r\n"
        b'Content-Type: multipart/mixed; boundary="top"\r\n\r\n' + siblings + b"--top--\r\n"
    )
    assert mime_nesting(raw) == 2
    assert mime_nesting(nested(150)) == 150
    assert mime_nesting(nested(150, closed=False)) == 150
    assert parse_mail(raw).unreadable is None


def test_a_deep_message_is_parked_with_the_reason(
    sqlite_database: Database, tmp_path: Path
) -> None:
    config = maildir_config(sqlite_database, tmp_path)
    deliver(config, nested(1000), plain_request(2))
    report = run_round(sqlite_database, config, opening_handler)
    assert (report.processing.failed, report.processing.processed) == (1, 1)
    with sqlite_database.transaction() as session:
        failed = session.scalars(
            select(InboundMessage).where(InboundMessage.status == "failed")
        ).one()
        assert failed.error.startswith(
            "This message could not be read: its MIME structure is nested 1000 levels deep"
        )


# --------------------------------------------------------------------------- the budget


class Spinner:
    """A handler that computes for ever on messages whose subject says SPIN (a reader gone
    slow), and opens a case for the others. It gives up after a minute so that a budget
    that never fires fails the test rather than hanging it."""

    def __init__(self) -> None:
        self.gave_up = False

    def __call__(self, session, inbound, mail, classification) -> str:
        if "SPIN" in mail.subject:
            give_up = time.monotonic() + 60
            while time.monotonic() < give_up:
                # A reader's own fallback for its failures must not swallow the stop.
                with contextlib.suppress(Exception):
                    sum(range(10_000))
            self.gave_up = True
        return opening_handler(session, inbound, mail, classification)


def test_a_message_over_its_budget_is_parked_and_the_next_is_processed(
    database: Database, tmp_path: Path
) -> None:
    config = maildir_config(database, tmp_path)
    config.limits.message_seconds = 0.3
    deliver(config, plain_request(1, subject="SPIN for ever"), plain_request(2))
    spinner = Spinner()

    report = run_round(database, config, spinner)

    assert not spinner.gave_up
    assert (report.processing.failed, report.processing.processed) == (1, 1)
    with database.transaction() as session:
        rows = {r.subject: r for r in session.scalars(select(InboundMessage))}
    slow = rows["SPIN for ever"]
    assert slow.status == "failed" and slow.case_id is None
    assert slow.error.startswith(
        "Processing this message took more than the 0.3 s allowed ([limits] message_seconds)"
    )
    assert [r.status for s, r in rows.items() if s != "SPIN for ever"] == ["processed"]


def test_the_budget_is_taken_from_the_configuration(
    sqlite_database: Database, tmp_path: Path
) -> None:
    config = maildir_config(sqlite_database, tmp_path)
    assert process_settings(config).message_seconds == 30
    config.limits.message_seconds = 2.5
    processor = Processor(
        sqlite_database, RawStore(tmp_path / "raw"), opening_handler, process_settings(config)
    )
    assert processor.settings.message_seconds == 2.5


def test_the_budget_stops_only_its_own_thread() -> None:
    stopped: list[str] = []

    def spin(name: str, seconds: float) -> None:
        try:
            with WATCHDOG.limit(seconds):
                give_up = time.monotonic() + 60
                while time.monotonic() < give_up:
                    sum(range(1000))
        except MessageTooSlow:
            stopped.append(name)

    def patient() -> None:
        with WATCHDOG.limit(30):
            time.sleep(0.5)  # waiting spends no CPU time: never stopped
        stopped.append("patient finished")

    threads = [
        threading.Thread(target=spin, args=("spinner", 0.2)),
        threading.Thread(target=patient),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sorted(stopped) == ["patient finished", "spinner"]


# --------------------------------------------------------------------------- the pages


def _store_case_message(
    web: WebClient, raw: bytes, *, uid: int, subject: str, error: str
) -> tuple[int, str]:
    """A failed message in the ledger and raw store, and a case opened from it."""
    digest = RawStore(web.settings.raw_dir).put(raw)
    with web.settings.database.transaction() as session:
        row = InboundMessage(
            mailbox="enquiries",
            uidvalidity=1,
            uid=uid,
            sha256=digest,
            size=len(raw),
            subject=subject,
            status="failed",
            error=error,
        )
        session.add(row)
        session.flush()
        case = create_case(
            session,
            kind="other",
            requester="manager@example.nhs.uk",
            subject=subject,
            source_message_id=row.id,
        )
        row.case_id = case.id
        return row.id, case.ref


def _store_deep(web: WebClient) -> tuple[int, str]:
    return _store_case_message(
        web, nested(1000), uid=7, subject="hostile", error="This message could not be read."
    )


def test_pages_show_a_message_nested_too_deep_to_read(web: WebClient) -> None:
    message_id, ref = _store_deep(web)
    web.sign_in()
    case_page = web.get(f"/cases/{ref}")
    message_page = web.get(f"/messages/{message_id}")
    original = web.get(f"/messages/{message_id}/original")
    attachment = web.get(f"/messages/{message_id}/attachments/1")
    assert (case_page.status_code, message_page.status_code) == (200, 200)
    for page in (case_page.text, message_page.text):
        assert "only the headers were read: its MIME structure is nested 1000 levels" in page
    assert original.status_code == 200 and original.content == nested(1000)
    assert attachment.status_code == 404


def heavy_mail() -> bytes:
    """A real message that takes about a tenth of a second of CPU to read: 2 MB of text,
    an HTML version and 280 attachments."""
    return email_bytes(
        subject="Heavy",
        text="Please set up the admin for our practice today.\n" * 40_000,
        html="<p>Please set up the admin.</p>\n" * 15_000,
        attachments=[(f"note{i}.txt", "text/plain", b"Line of a note\n" * 400) for i in range(280)],
    )


def _store_heavy(web: WebClient, raw: bytes) -> tuple[int, str]:
    return _store_case_message(
        web,
        raw,
        uid=8,
        subject="Heavy",
        error="Processing this message took more than the 30 s allowed.",
    )


def test_pages_read_a_message_within_the_budget_and_offer_the_original_past_it(
    web: WebClient,
) -> None:
    raw = heavy_mail()
    message_id, ref = _store_heavy(web, raw)
    web.sign_in()
    shown = web.get(f"/messages/{message_id}").text
    assert "Please set up the admin for our practice today." in shown and "note279.txt" in shown
    # The page's budget is [limits] message_seconds; this message needs about 0.1 s.
    web.settings.message_seconds = 0.01
    too_slow = "Reading this message took more than the 0.01 s of CPU allowed"
    for url in (f"/messages/{message_id}", f"/cases/{ref}"):
        page = web.get(url)
        assert page.status_code == 200, url
        assert too_slow in page.text and "note279.txt" not in page.text, url
    assert web.get(f"/messages/{message_id}/attachments/1").status_code == 404
    original = web.get(f"/messages/{message_id}/original")
    assert original.status_code == 200 and original.content == raw
    # Nor is the case re-routed without its email being read again.
    rerouted = web.post_form(
        f"/cases/{ref}/kind", {"kind": "pl_admin", "reason": "PL"}, from_page=f"/cases/{ref}"
    )
    assert rerouted.status_code == 409
    assert "it cannot be read again as another kind; nothing was changed" in rerouted.text
    with web.settings.database.transaction() as session:
        assert get_case(session, ref).kind == "other"


def test_reading_for_a_page_stops_at_its_budget() -> None:
    raw = heavy_mail()
    started = time.thread_time()
    with pytest.raises(TooSlowToRead, match=r"more than the 0\.01 s of CPU allowed"):
        read_mail(raw, 0.01)
    assert time.thread_time() - started < 0.08  # stopped, not read to its end
    assert len(read_mail(raw, 30).attachments) == 280


def test_the_pages_budget_is_intakes_from_the_configuration(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = maildir_config(sqlite_database, tmp_path)
    monkeypatch.setenv(config.web.secret_key_env, "k" * 64)
    assert web_settings(config, sqlite_database).message_seconds == 30
    config.limits.message_seconds = 2.5
    assert web_settings(config, sqlite_database).message_seconds == 2.5


def nested_written(levels: int, style: str) -> bytes:
    """`levels` multiparts, each opened with its Content-Type folded onto a second line,
    or with an RFC 2231 boundary the guard does not read."""
    body = b"Content-Type: text/plain\r\n\r\nPlease set up an admin.\r\n"
    for i in range(levels):
        opening = {
            "folded": b"Content-Type:\r\n multipart/mixed; boundary=b%d\r\n" % i,
            "rfc2231": b"Content-Type: multipart/mixed; boundary*0=b%d\r\n" % i,
        }[style]
        body = opening + b"\r\n--b%d\r\n" % i + body + b"\r\n--b%d--\r\n" % i
    return b"From: a@example.org\r\nSubject: hostile\r\nMIME-Version: 1.0\r\n" + body


@pytest.mark.parametrize("style", ["folded", "rfc2231"])
def test_nesting_is_seen_however_the_multipart_is_written(style: str) -> None:
    """The email package reads both forms; each level of either costs it a check of every
    later line, so 900 levels in a third of a megabyte took 7.6 s of CPU unseen."""
    raw = nested_written(900, style)
    assert mime_nesting(raw) == 900
    found = in_child(_summary, raw + b"x\r\n" * 100_000)
    assert found["unreadable"] is not None and "900 levels deep" in found["unreadable"]


def test_what_a_page_shows_costs_no_more_for_a_larger_message() -> None:
    # Masking codes in the whole of a 20 MB HTML body of "&#65;" took seconds past the
    # reading's budget; only what can be shown is masked now.
    mail = ParsedMail(text="Please set up Jane.\n" * 1_000_000, html="&#65;" * 4_000_000)
    started = time.thread_time()
    view = view_of(mail)
    assert time.thread_time() - started < 1.0
    assert view.html == "A" * MAX_SHOWN_CHARS
    assert len(view.text) == MAX_SHOWN_CHARS and view.problems[-1].startswith("Only the first")
