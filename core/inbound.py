"""The hand-off from intake to the workflow: what a read email looks like, how it was classified.

Intake produces these (it reads the bytes and classifies); the workflow consumes them.
Defined here so that the workflow never imports intake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from core.addresses import SenderIdentity

# session.info key: the From addresses of the messages an intake batch works in this
# transaction, as intake recorded them; a hint for those who will answer them
# (notifications.hourly_cap counts them all at once).
BATCH_SENDERS = "core.inbound.batch_senders"


class MessageKind(StrEnum):
    NEW_REQUEST = "new_request"
    CASE_REPLY = "case_reply"  # a reply on a known case (ref in subject, or threading headers)
    APPROVAL_ANSWER = "approval_answer"  # carries an approval token
    AUTOMATIC = "automatic"  # out-of-office, auto-reply, mailing list: recorded, never answered
    BOUNCE = "bounce"  # delivery failure report: recorded, never answered
    DUPLICATE = "duplicate"  # same Message-ID or sha256 already seen
    UNRELATED = "unrelated"  # e.g. our own mail looping back


class Attachment(Protocol):
    filename: str  # already made safe
    content_type: str
    data: bytes


class IncomingMail(Protocol):
    """A parsed email, read safely (malformed headers and unknown charsets tolerated)."""

    message_id: str | None
    subject: str
    # Every mailbox in From, in order, as (display name, lower-cased address), read
    # strictly (core.addresses); `sender_identity` says whether From was one clean mailbox.
    from_addresses: list[tuple[str, str]]
    sender_identity: SenderIdentity
    to_addresses: list[str]
    date: datetime | None
    in_reply_to: str | None
    references: list[str]
    # Raw values of every Authentication-Results header, topmost first, and of every
    # X-MS-Exchange-Organization-AuthAs header (core.senderauth reads both).
    authentication_results: list[str]
    auth_as: list[str]
    on_behalf: list[str]  # addresses of any Sender or Resent-From header
    # The core.senderauth.SINGLE_HEADERS the message holds more than once, by name.
    repeated_headers: list[str]
    # Why the header section is not all headers (intake.mailparse.header_break), or None.
    header_break: str | None
    text: str  # the plain-text body, or text derived from the HTML body
    text_from_html: bool  # True when `text` was made from the HTML body
    html: str | None

    # Read-only and a Sequence: intake's list of its own attachment type must satisfy this,
    # and a settable list attribute would be invariant.
    @property
    def attachments(self) -> Sequence[Attachment]: ...

    # What the message holds that was not read, a sentence each: an attachment over the
    # size limit, an attached email's text, parts nested too deep or too many, text cut.
    @property
    def unread_parts(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Classification:
    kind: MessageKind
    reason: str
    case_id: int | None = None
    # The approval token found in the message (subject, plus-address or body marker).
    token: str | None = None
    details: dict[str, str] = field(default_factory=dict)
