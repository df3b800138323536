"""Build the MIME message for one outbox row: text and HTML alternatives, blank forms attached."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

from notifications.blank_forms import blank_form_path
from notifications.headers import mailbox, message_ids, one_line


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


class _HeaderClasses(HeaderRegistry):
    """The standard registry, except that each header class is made once, not per header.

    (The stdlib builds a new class on every lookup, a large part of the cost of a message.)
    """

    @lru_cache(maxsize=256)  # noqa: B019 - one registry for the process, never freed
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


POLICY = SMTP.clone(header_factory=_HeaderClasses())


class UnsendableMessage(ValueError):
    """The row cannot become a valid message (bad address, missing attachment): do not retry."""


def build_message(
    row: Outgoing, *, from_address: str, from_name: str | None, now: datetime
) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = mailbox(from_name, from_address)
        msg["To"] = mailbox(row.to_name, row.to_address)
    except (ValueError, IndexError) as exc:
        raise UnsendableMessage(f"The address {row.to_address!r} cannot be used: {exc}") from exc
    msg["Subject"] = one_line(row.subject, 300)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = row.message_id
    # Only well-formed Message-IDs: these were taken from mail we received.
    parent = message_ids(row.in_reply_to)
    if parent:
        msg["In-Reply-To"] = parent[0]
        msg["References"] = " ".join(message_ids(row.references) or parent)
    msg["Auto-Submitted"] = row.auto_submitted
    # Ask Exchange and Outlook not to answer us with out-of-office or read receipts.
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(row.body_text)
    if row.body_html:
        # HTML lines are long: base64 (in C) rather than quoted-printable (in Python).
        msg.add_alternative(row.body_html, subtype="html", cte="base64")
    for name in row.attachments:
        _attach(msg, name)
    return msg


def _attach(msg: EmailMessage, name: str) -> None:
    try:
        path = blank_form_path(name)
    except LookupError as exc:
        raise UnsendableMessage(str(exc)) from exc
    kind, _ = mimetypes.guess_type(path.name)
    maintype, subtype = (kind or "application/octet-stream").split("/", 1)
    msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
