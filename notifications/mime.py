"""Build the bytes of one outbox row's email: text and HTML alternatives, blank forms attached.

The message is written out directly, as the bytes the email package's generator gives
for the same message built as an EmailMessage (tests/test_mime.py keeps that builder and
checks that the two agree byte for byte). Headers of our own and the MIME structure are
written once and reused; the two text parts are encoded by binascii, in C (quoted-
printable for the text, base64 for the HTML); and a header whose value is printable
ASCII words that fit on one line is written as it stands, which is what the email
package would write. Only the other headers (a name beyond plain words, a long subject)
are parsed, encoded and folded by email.headerregistry. Building and generating an
EmailMessage costs many times as much, and building messages is most of the sender's work.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.errors import MessageError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

from notifications.blank_forms import blank_form_path
from notifications.headers import (
    is_dot_atom_address,
    mailbox,
    message_ids,
    one_line,
    plain_address_shape,
)

# Fixed boundaries are safe here: "=_" can occur in neither quoted-printable nor base64
# text, and every part is encoded with one of the two.
ALTERNATIVE_BOUNDARY = "=_pcse_alternative"
MIXED_BOUNDARY = "=_pcse_mixed"


@dataclass(frozen=True)
class Outgoing:
    """What the sender needs of a claimed row, detached from any database session."""

    id: int
    message_id: str
    in_reply_to: str | None
    references: str | None
    to_address: str
    to_name: str | None
    subject: str
    body_text: str
    body_html: str | None
    attachments: tuple[str, ...]
    auto_submitted: str
    attempts: int


class UnsendableMessage(ValueError):
    """The row cannot become a valid message (bad address, missing attachment): do not retry."""


class _HeaderClasses(HeaderRegistry):
    """The standard registry, except that each header class is made once, not per header."""

    @lru_cache(maxsize=256)  # noqa: B019 - one registry for the process, never freed
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


POLICY = SMTP.clone(header_factory=_HeaderClasses())
_MAX_LINE = POLICY.max_line_length or 78

# Printable ASCII words one space apart: a header made of these, on one line, is written
# unchanged by the email package, unless it holds "=?" (read as an encoded word).
_WORDS = re.compile(r"[!-~]+(?: [!-~]+)*")
# RFC 5322 atext words (no specials, no "=" or "?"): a display name that needs no quotes.
_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
# The email package's generator writes each of these line breaks in a payload as CRLF.
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def _folded(name: str, value: str | Address) -> bytes:
    """The header line as the email package writes it: parsed, encoded and folded.

    The value may hold no CR or LF, but an encoded word in it is decoded on parsing and
    may then hold line breaks that the folding writes out as they are, starting a header
    of the sender's choosing (`=?utf-8?q?x=0D=0AReply-To:_attacker?=`; Python releases
    before the fix for CVE-2024-6923 do this, and that fix's check lives in the Generator,
    which is not used here). So every line break written must be folding: followed by
    a space or a tab."""
    _, header = POLICY.header_store_parse(name, value)  # refuses CR and LF, as msg[name] does
    folded = POLICY.fold_binary(name, header)
    if not _only_folding(folded[:-2] if folded.endswith(b"\r\n") else folded):
        raise UnsendableMessage(
            f"Not sent: the {name} header would hold a line break (an encoded word in it "
            "decodes to one)."
        )
    return folded


def _only_folding(line: bytes) -> bool:
    """Is every line break in this header (its final CRLF taken off) a CRLF followed by a
    space or a tab?"""
    unbroken = line.replace(b"\r\n", b"")
    if b"\r" in unbroken or b"\n" in unbroken:
        return False  # a lone CR or LF
    return _CRLF_NOT_FOLDING.search(line) is None


_CRLF_NOT_FOLDING = re.compile(rb"\r\n(?![ \t])")


def _unstructured(name: str, value: str) -> bytes:
    """An unstructured header (Subject, In-Reply-To, References) as the email package writes
    it. Printable ASCII words one space apart are folded here as the package folds them:
    after the name if they fit there; else all on the next line if they fit there; else
    word by word, a word that does not fit starting the next line with the space before it.
    """
    if not _WORDS.fullmatch(value) or "=?" in value:
        return _folded(name, value)
    label = f"{name}: "
    if len(label) + len(value) <= _MAX_LINE:
        return f"{label}{value}\r\n".encode("ascii")
    if len(value) < _MAX_LINE:
        return f"{name}:\r\n {value}\r\n".encode("ascii")
    words = value.split(" ")
    if max(map(len, words)) >= _MAX_LINE:  # the package would encode it to wrap it
        return _folded(name, value)
    return _word_by_word(name, words)


def _word_by_word(name: str, words: list[str]) -> bytes:
    """The header folded word by word: each word on the line so far if it fits there, else
    starting the next line with the space before it (the first word after the name, or on
    the next line if it does not fit after it)."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) <= _MAX_LINE:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _msgid_list(name: str, msgids: list[str]) -> bytes:
    """In-Reply-To or References, each msg-id (printable ASCII: headers.message_ids) whole.

    A mail program matches a msg-id as it stands, and RFC 5322 (3.6.4) allows no encoded
    word in one; the email package encodes any word that cannot fit on a line of 78, as
    most Exchange Online Message-IDs cannot after "In-Reply-To: ". Such a msg-id is written
    unbroken on a line of its own (a line may hold 998 characters); otherwise the header
    is folded as the package folds it."""
    if all(len(msgid) < _MAX_LINE for msgid in msgids):
        return _unstructured(name, " ".join(msgids))
    return _word_by_word(name, msgids)


@lru_cache(maxsize=64)
def _fixed(name: str, value: str) -> bytes:
    """A header whose value is ours and never changes, folded once."""
    return _folded(name, value)


def _recipient(name: str | None, address: str) -> Address:
    """The To address, checked again: a caseworker may have released a row that failed."""
    problem = f"Not sent: {address!r} is not a valid email address."
    if not plain_address_shape(address):
        raise UnsendableMessage(problem)
    try:
        recipient = mailbox(name, address)
    except (ValueError, IndexError, MessageError) as exc:
        raise UnsendableMessage(problem) from exc
    if recipient.addr_spec != address:
        raise UnsendableMessage(problem)
    return recipient


def _to_header(name: str | None, address: str) -> bytes:
    """The To line; a plain name and dot-atom address are written as they stand."""
    if plain_address_shape(address) and is_dot_atom_address(address):
        display = one_line(name)
        if not display:
            value = address
        elif _NAME.fullmatch(display):
            value = f"{display} <{address}>"
        else:
            value = ""
        if value and len(value) + 4 <= _MAX_LINE:
            return f"To: {value}\r\n".encode("ascii")
    folded = _folded("To", _recipient(name, address))
    if name and _mailboxes(folded) != [address]:
        # Folding a long quoted display name can drop its quotes (CPython gh-80222):
        # "a@evil.example Practice Manager, on behalf of …" then names a second mailbox,
        # which a reply-all would reach. The address is written alone.
        return _folded("To", _recipient(None, address))
    return folded


def _mailboxes(folded: bytes) -> list[str]:
    """The addresses a folded address header names, as a recipient's mail program reads it."""
    try:
        parsed = message_from_bytes(folded + b"\r\n", policy=POLICY)
        return [mailbox.addr_spec for mailbox in parsed["To"].addresses]
    except Exception:  # its reader fails in assorted ways on what its folding made of a
        # name (a group, say, where the quotes went): that is not one mailbox.
        return []


def _message_id_header(name: str, value: str) -> bytes:
    """The Message-ID line; <dot-atom@dot-atom> on one line is written as it stands."""
    fits = len(name) + 2 + len(value) <= _MAX_LINE
    if fits and value[:1] == "<" and value[-1:] == ">" and is_dot_atom_address(value[1:-1]):
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded(name, value)


@lru_cache(maxsize=8)
def _from_header(name: str | None, address: str) -> bytes:
    return _folded("From", str(mailbox(name, address)))


def _crlf(data: bytes) -> bytes:
    return _LINE_BREAK.sub(b"\r\n", data)


def _base64_lines(data: bytes) -> bytes:
    """base64.encodebytes (lines of 76 characters, each ended) with CRLF line ends."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


_TEXT_HEADERS = b"".join(
    (
        _fixed("Content-Type", 'text/plain; charset="utf-8"'),
        _fixed("Content-Transfer-Encoding", "quoted-printable"),
        b"\r\n",
    )
)
# HTML lines are long: base64 keeps them intact.
_HTML_HEADERS = b"".join(
    (
        _fixed("Content-Type", 'text/html; charset="utf-8"'),
        _fixed("Content-Transfer-Encoding", "base64"),
        b"\r\n",
    )
)


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    """A multipart entity, its Content-Type line first, as the generator lays it out."""
    head = _fixed("Content-Type", f'{subtype}; boundary="{boundary}"') + b"\r\n"
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    close = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + delimiter[2:] + delimiter.join(parts) + close


def _body(text: str, html: str | None) -> bytes:
    """The text part alone, or multipart/alternative with the text first, then the HTML."""
    text_part = _TEXT_HEADERS + _crlf(binascii.b2a_qp(text.encode("utf-8"), istext=True))
    if html is None:
        return text_part
    html_part = _HTML_HEADERS + _base64_lines(html.encode("utf-8"))
    return _multipart("multipart/alternative", ALTERNATIVE_BOUNDARY, [text_part, html_part])


def build_message(
    row: Outgoing, *, from_address: str, from_name: str | None, now: datetime
) -> bytes:
    """The message as it goes over SMTP: CRLF line endings, 7-bit (every part is encoded).

    Raises UnsendableMessage when the row can never become a valid message.
    """
    lines = [
        _fixed("MIME-Version", "1.0"),
        _from_header(from_name, from_address),
        _to_header(row.to_name, row.to_address),
        _unstructured("Subject", one_line(row.subject, 300)),
        # Within one second every message has the same Date: folded once.
        _fixed("Date", format_datetime(now.replace(microsecond=0))),
        _message_id_header("Message-ID", row.message_id),
    ]
    # Only well-formed Message-IDs: these were taken from mail we received.
    parent = message_ids(row.in_reply_to)
    if parent:
        lines.append(_msgid_list("In-Reply-To", parent[:1]))
        lines.append(_msgid_list("References", message_ids(row.references) or parent))
    lines.append(_fixed("Auto-Submitted", row.auto_submitted))
    # Ask Exchange and Outlook not to answer us with out-of-office or read receipts.
    lines.append(_fixed("X-Auto-Response-Suppress", "All"))
    body = _body(row.body_text, row.body_html)
    if row.attachments:
        attached = [_attachment(name) for name in row.attachments]
        body = _multipart("multipart/mixed", MIXED_BOUNDARY, [body, *attached])
    lines.append(body)
    return b"".join(lines)


def _attachment(name: str) -> bytes:
    return _attachment_part(name).as_bytes(policy=POLICY)


def _attachment_part(name: str) -> EmailMessage:
    try:
        path = blank_form_path(name)
    except LookupError as exc:
        raise UnsendableMessage(str(exc)) from exc
    kind, _ = mimetypes.guess_type(path.name)
    maintype, subtype = (kind or "application/octet-stream").split("/", 1)
    part = EmailMessage(policy=POLICY)
    part.set_content(
        path.read_bytes(),
        maintype=maintype,
        subtype=subtype,
        disposition="attachment",
        filename=path.name,
    )
    del part["MIME-Version"]
    return part
