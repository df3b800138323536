"""Build the MIME message for one outbox row: text and HTML alternatives, blank forms attached.

The message is an email.message.EmailMessage. Headers that never change (ours) are
parsed once and reused, and the two text parts are encoded directly (quoted-printable
for the text, base64 for the HTML) by binascii, in C: building a message is most of
the sender's work, and the generic path of the email package costs twice as much.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime
from functools import lru_cache

from notifications.blank_forms import blank_form_path
from notifications.headers import mailbox, message_ids, one_line, plain_address_shape

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


class _FoldedOnce(BaseHeader):
    """A header that keeps its folded form: reused headers are folded once, not per message."""

    def fold(self, *, policy: Policy) -> str:
        # The generator clones its policy for every part, so key on what folding depends on.
        key = (policy.max_line_length, policy.linesep, getattr(policy, "utf8", False))
        kept = self.__dict__.get("_folded")
        if kept is None or kept[0] != key:
            kept = (key, super().fold(policy=policy))
            self.__dict__["_folded"] = kept
        return kept[1]


_FIXED_HEADERS = _HeaderClasses(base_class=_FoldedOnce)


@lru_cache(maxsize=64)
def _fixed(name: str, value: str) -> BaseHeader:
    """A parsed header whose value is ours and never changes, made once and reused."""
    return _FIXED_HEADERS(name, value)


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


@lru_cache(maxsize=8)
def _from_header(name: str | None, address: str) -> BaseHeader:
    return _fixed("From", str(mailbox(name, address)))


def build_message(
    row: Outgoing, *, from_address: str, from_name: str | None, now: datetime
) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["MIME-Version"] = _fixed("MIME-Version", "1.0")
    msg["From"] = _from_header(from_name, from_address)
    msg["To"] = _recipient(row.to_name, row.to_address)
    msg["Subject"] = one_line(row.subject, 300)
    # Within one second every message has the same Date: parse that header once.
    msg["Date"] = _fixed("Date", format_datetime(now.replace(microsecond=0)))
    msg["Message-ID"] = row.message_id
    # Only well-formed Message-IDs: these were taken from mail we received.
    parent = message_ids(row.in_reply_to)
    if parent:
        msg["In-Reply-To"] = parent[0]
        msg["References"] = " ".join(message_ids(row.references) or parent)
    msg["Auto-Submitted"] = _fixed("Auto-Submitted", row.auto_submitted)
    # Ask Exchange and Outlook not to answer us with out-of-office or read receipts.
    msg["X-Auto-Response-Suppress"] = _fixed("X-Auto-Response-Suppress", "All")
    body = _body(row.body_text, row.body_html)
    if not row.attachments:
        _adopt(msg, body)
        return msg
    msg["Content-Type"] = _fixed("Content-Type", f'multipart/mixed; boundary="{MIXED_BOUNDARY}"')
    msg.set_payload([body, *(_attachment(name) for name in row.attachments)])
    return msg


def _text_part(text: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = _fixed("Content-Type", f'text/{subtype}; charset="utf-8"')
    data = text.encode("utf-8")
    if subtype == "plain":
        part["Content-Transfer-Encoding"] = _fixed("Content-Transfer-Encoding", "quoted-printable")
        part.set_payload(binascii.b2a_qp(data, istext=True).decode("ascii"))
    else:
        # HTML lines are long: base64 keeps them intact.
        part["Content-Transfer-Encoding"] = _fixed("Content-Transfer-Encoding", "base64")
        part.set_payload(base64.encodebytes(data).decode("ascii"))
    return part


def _body(text: str, html: str | None) -> EmailMessage:
    """The text part alone, or multipart/alternative with the text first, then the HTML."""
    if html is None:
        return _text_part(text, "plain")
    body = EmailMessage(policy=POLICY)
    body["Content-Type"] = _fixed(
        "Content-Type", f'multipart/alternative; boundary="{ALTERNATIVE_BOUNDARY}"'
    )
    body.set_payload([_text_part(text, "plain"), _text_part(html, "html")])
    return body


def _adopt(msg: EmailMessage, body: EmailMessage) -> None:
    """Make `body` the whole content of `msg` (its content headers and payload)."""
    for name, value in body.items():
        msg[name] = value
    msg.set_payload(body.get_payload())


def _attachment(name: str) -> EmailMessage:
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


def as_wire(msg: EmailMessage) -> bytes:
    """The message as it goes over SMTP: CRLF line endings, 7-bit (every part is encoded)."""
    return msg.as_bytes(policy=POLICY)
