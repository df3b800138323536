"""An email as a caseworker sees it: headers and text, the HTML kept inert, attachments listed.

Messages are read from the raw store with intake's own safe parser, so the page shows what
intake read, and within the CPU budget intake has for a message ([limits] message_seconds):
a message that takes longer is not shown, and its original can be downloaded instead, so
a hostile message cannot hold a page's thread and its transaction. Nothing here produces
markup: the templates escape every value, and the HTML
version is only ever shown as escaped source or inside a sandboxed iframe (no scripts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from sqlalchemy.orm import Session

from core.patterns import mask_tokens, mask_tokens_in_markup
from core.visible import visible
from intake.budget import WATCHDOG, MessageTooSlow
from intake.mailparse import ParsedMail, parse_mail
from intake.models import InboundMessage, RawBlob
from intake.rawstore import RawMissing, RawStore
from workflow.models import Case

# From is shown as read strictly (address and display name apart), never as decoded text,
# where a display name could pass for an address.
SHOWN_HEADERS = (
    "To",
    "Cc",
    "Reply-To",
    "Date",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "Authentication-Results",
)
T = TypeVar("T")

MAX_SHOWN_CHARS = 200_000
# What is masked before the cut: enough that the masking (which shortens codes, and writes
# out references such as "&#65;" in HTML) still leaves MAX_SHOWN_CHARS to show, and no
# more, so that a page's work does not grow with the size of the message.
_MASKED_TEXT_CHARS = 2 * MAX_SHOWN_CHARS
_MASKED_HTML_CHARS = 12 * MAX_SHOWN_CHARS
# What a cut may leave at its end of a code, or of a reference spelling one, cut in two:
# taken off, as the masking cannot know it for a code.
_CUT_REFERENCE = re.compile(r"&#[0-9a-fA-FxX]*\Z")
_CUT_CODE = re.compile(r"(?i)A(?:P(?:V(?:-[0-9a-f]{0,19})?)?)?\Z")


@dataclass(frozen=True)
class AttachmentView:
    index: int
    filename: str
    content_type: str
    size: str


@dataclass
class MailView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str | None = None
    attachments: list[AttachmentView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Set when the raw bytes could not be found; nothing else is then known.
    missing: str | None = None


def raw_bytes(session: Session, raw_dir: Path, message: InboundMessage) -> bytes | None:
    """The message's raw bytes: from the raw store folder, else from the database table."""
    try:
        return RawStore(raw_dir).get(message.sha256)
    except (RawMissing, ValueError):
        blob = session.get(RawBlob, message.sha256)
        return bytes(blob.data) if blob is not None else None


class TooSlowToRead(Exception):
    """Reading the message took more than its budget of CPU."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Reading this message took more than the {seconds:g} s of CPU allowed ([limits] "
            "message_seconds), so it is not shown here. Download the original to open it in "
            "a mail program."
        )


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`, stopped after `seconds` of this thread's CPU (TooSlowToRead)."""
    try:
        with WATCHDOG.limit(seconds):
            return work()
    except MessageTooSlow:
        raise TooSlowToRead(seconds) from None


def read_mail(raw: bytes, seconds: float) -> ParsedMail:
    """The message as intake reads it, stopped after `seconds` of this thread's CPU."""
    return within(seconds, lambda: parse_mail(raw))


def opening_bytes(session: Session, raw_dir: Path, case: Case) -> bytes | None:
    """The raw bytes of the email that opened the case; None when it was not opened from
    one, or the bytes are gone."""
    if case.source_message_id is None:
        return None
    message = session.get(InboundMessage, case.source_message_id)
    return raw_bytes(session, raw_dir, message) if message is not None else None


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    if count >= 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count} bytes"


def _cut(value: str) -> tuple[str, bool]:
    return (value[:MAX_SHOWN_CHARS], True) if len(value) > MAX_SHOWN_CHARS else (value, False)


def _masked(value: str, most: int, mask: Callable[[str], str]) -> str:
    """`value` masked, at most its first `most` characters, with no code or reference left
    cut in two at the end."""
    if len(value) <= most:
        return mask(value)
    return _CUT_CODE.sub("", _CUT_REFERENCE.sub("", mask(value[:most])))


def view_of(mail: ParsedMail) -> MailView:
    view = MailView(problems=list(mail.problems))
    sender = mail.sender_identity
    view.headers.append(("From address", sender.address or "(no single address)"))
    if sender.display_name:
        view.headers.append(("From display name", sender.display_name))
    if sender.problem:
        view.headers.append(("From problem", sender.problem))
    for name in SHOWN_HEADERS:
        for value in mail.headers.get(name.lower(), []):
            view.headers.append((name, mask_tokens(value)))
    # An approval code is a key: a page shows only its first characters.
    view.text, cut = _cut(_masked(mail.text, _MASKED_TEXT_CHARS, mask_tokens))
    if cut or len(mail.text) > _MASKED_TEXT_CHARS:
        view.problems.append(f"Only the first {MAX_SHOWN_CHARS:,} characters are shown.")
    if mail.html is not None:
        view.html, _ = _cut(_masked(mail.html, _MASKED_HTML_CHARS, mask_tokens_in_markup))
    view.attachments = [
        AttachmentView(number, a.filename, a.content_type, _size(len(a.data)))
        for number, a in enumerate(mail.attachments, start=1)
    ]
    return view


def message_view(
    session: Session, raw_dir: Path, message: InboundMessage, seconds: float
) -> MailView:
    raw = raw_bytes(session, raw_dir, message)
    if raw is None:
        return MailView(
            missing="The original message is not in the raw store, so it cannot be shown."
        )
    try:  # the reading and what is made of it to show, in one budget
        return within(seconds, lambda: view_of(parse_mail(raw)))
    except TooSlowToRead as exc:
        return MailView(missing=str(exc))


@dataclass(frozen=True)
class Download:
    filename: str
    data: bytes


def attachment(
    session: Session, raw_dir: Path, message: InboundMessage, number: int, seconds: float
) -> Download | None:
    """Attachment `number` (from 1, as listed by view_of), or None (also when reading the
    message takes more than `seconds` of CPU)."""
    raw = raw_bytes(session, raw_dir, message)
    if raw is None:
        return None
    try:
        found = read_mail(raw, seconds).attachments
    except TooSlowToRead:
        return None
    if not 1 <= number <= len(found):
        return None
    return Download(found[number - 1].filename, found[number - 1].data)


def content_disposition(filename: str) -> str:
    """Always a download, never shown in the browser; an ASCII name plus the UTF-8 one."""
    filename = visible(filename)  # a name read before format characters were left out
    fallback = (
        "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename)
        or "attachment"
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
