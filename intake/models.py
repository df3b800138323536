"""Intake's tables: the inbound ledger, raw bytes kept in the database, and what each
mailbox last said."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamp
from core.timeutil import utcnow


class InboundMessage(Base):
    """One message taken from a mailbox. The raw bytes are kept in the raw store by sha256."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        Index("ix_inbound_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The digest of the bytes after the header block: a copy that came by another route,
    # with trace headers of its own, has the same Message-ID and the same body.
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Short header facts for the queue; never the body.
    from_address: Mapped[str | None] = mapped_column(String(254))
    from_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(300))
    # Who vouched for the sender (core.senderauth): authenticated, not_authenticated,
    # unverified (From did not parse to one mailbox) or not_checked; and what it found.
    sender_status: Mapped[str | None] = mapped_column(String(20))
    sender_detail: Mapped[str | None] = mapped_column(Text)
    # pending, processed, ignored, duplicate, failed, dismissed
    status: Mapped[str] = mapped_column(String(12), default="pending")
    # new_request, case_reply, approval_answer, automatic, bounce, duplicate, unrelated
    classification: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # The case this message opened or advanced (no foreign key: cases point back here).
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Set once the message has left the inbox folder.
    moved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    processed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When retention removed the raw bytes and the personal header values.
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RawBlob(Base):
    """Raw message bytes when the raw store is the database rather than a folder."""

    __tablename__ = "raw_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MailboxState(Base):
    """What the poller knows of each mailbox: last poll, last error, UIDVALIDITY."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_ok_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_fetched: Mapped[int] = mapped_column(Integer, default=0)
