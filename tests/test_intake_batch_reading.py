"""intake.batch_reading: messages read ahead of their turn, handed out once, forgotten
once another worker has taken them, and held within MAX_BYTES.

The rows are plain stand-ins for ledger rows (what is read ahead is keyed by id); the
bytes are real messages, parsed by the real parser.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from core.inbound import Classification, IncomingMail, MessageKind
from intake import batch_reading, ledger
from intake.batch_reading import BatchReading
from intake.mailparse import ParsedMail, parse_mail


def message(number: int, *, form: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender {number} <sender{number}@example.nhs.uk>"
    msg["To"] = "pcse.portalenquiries@nhs.net"
    msg["Subject"] = f"Request {number}"
    msg.set_content("Please see attached." if form else "A request in words.")
    if form:
        msg.add_attachment(
            b"%PDF-1.4 " + bytes(900), maintype="application", subtype="pdf", filename="f.pdf"
        )
    return bytes(msg)


class Handler:
    """Notes the messages it is asked to read ahead."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def read_ahead(
        self, found: Sequence[tuple[IncomingMail, Classification]], message_seconds: float | None
    ) -> AbstractContextManager[object]:
        self.asked.append([m.subject or "" for m, _ in found])
        return nullcontext()


def rows(*numbers: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(id=n, sha256=f"{n:064x}", size=len(STORE[n]), message_id=None)
        for n in numbers
    ]


STORE = {n: message(n, form=n % 2 == 0) for n in range(1, 9)}


def reading(handler: object) -> BatchReading:
    return BatchReading(
        handler, lambda row: STORE[row.id], parse_mail, message_seconds=30, stop=threading.Event()
    )


def a_request(_row: object, _mail: ParsedMail) -> Classification:
    return Classification(MessageKind.NEW_REQUEST, "a new request")


def never_a_copy(_row: object) -> bool:
    return False


def test_messages_with_a_form_are_parsed_ahead_and_the_rest_kept_raw_each_handed_out_once() -> None:
    handler = Handler()
    ahead = reading(handler)
    ahead.add(rows(1, 2, 3, 4), never_a_copy, a_request)
    assert handler.asked == [["Request 2", "Request 4"]]
    two, one = ahead.take(2), ahead.take(1)
    assert isinstance(two, ParsedMail) and two.subject == "Request 2"
    assert one == STORE[1]  # no form: the raw bytes, read once
    assert ahead.take(2) is None and ahead.take(1) is None
    ahead.add(rows(3, 4, 5, 6), never_a_copy, a_request)  # 3 and 4 were read already
    assert handler.asked[-1] == ["Request 6"]


def test_messages_another_worker_took_are_forgotten_once_the_claims_pass_them() -> None:
    ahead = reading(Handler())
    ahead.add(rows(1, 2, 3, 4), never_a_copy, a_request)  # 1 and 2 claimed, 3 and 4 upcoming
    ahead.take(1), ahead.take(2)
    ahead.add(rows(5, 6, 7, 8), never_a_copy, a_request)  # another worker took 3 and 4
    assert ahead.take(3) is None and ahead.take(4) is None
    held = ahead.held_bytes
    assert all(ahead.take(n) is not None for n in (5, 6, 7, 8))
    assert held > 0 and ahead.held_bytes == 0


def test_no_more_than_max_bytes_is_held_and_the_rest_is_read_when_there_is_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_reading, "MAX_BYTES", len(STORE[1]) + len(STORE[3]) + 10)
    ahead = reading(Handler())
    ahead.add(rows(1, 3, 5, 7), never_a_copy, a_request)
    assert ahead.take(5) is None  # no room for it
    assert ahead.take(1) == STORE[1] and ahead.take(3) == STORE[3]
    ahead.add(rows(5, 7), never_a_copy, a_request)  # room again
    assert ahead.take(5) == STORE[5]


def test_copies_unreadable_rows_and_a_handler_that_cannot_read_ahead_are_left_alone() -> None:
    handler = Handler()
    ahead = reading(handler)
    unread = SimpleNamespace(id=9, sha256=ledger.UNREAD_SHA256, size=0, message_id=None)
    ahead.add([*rows(2), unread], lambda row: row.id == 2, a_request)
    assert handler.asked == [] and ahead.take(2) is None and ahead.take(9) is None
    plain = reading(object())
    plain.add(rows(1, 2), never_a_copy, a_request)
    assert plain.take(1) is None and plain.take(2) is None


def test_a_parsed_message_is_held_at_what_it_takes_in_memory_not_its_size_on_disk() -> None:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.nhs.uk>"
    msg["Subject"] = "Form"
    # Mostly ASCII, one emoji: the whole string then takes four bytes a character.
    msg.set_content("<p>" + "a" * 200_000 + "\N{GRINNING FACE}</p>", subtype="html", cte="8bit")
    msg.add_attachment(b"%PDF-1.4 ", maintype="application", subtype="pdf", filename="f.pdf")
    STORE[20] = bytes(msg)
    try:
        ahead = reading(Handler())
        ahead.add(rows(20), never_a_copy, a_request)
        assert len(STORE[20]) < 210_000  # on disk
        assert ahead.held_bytes >= 4 * 200_000  # in memory
    finally:
        del STORE[20]
