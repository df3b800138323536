"""The scheduler's own table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Timestamp
from core.timeutil import utcnow


class JobRun(Base):
    """A periodic job's run for one period; the unique key makes it run once across workers."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(60), primary_key=True)
    period: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    worker: Mapped[str] = mapped_column(String(100))


class WebhookDelivery(Base):
    """One change-feed event to POST to one receiver (service.webhooks): the outbox
    pattern. A receiver's rows go strictly in `seq` order; the body is built from the feed
    when it is sent, so an erasure in the feed reaches what is sent later."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("receiver", "seq"),
        Index("ix_webhook_receiver_status", "receiver", "status", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    receiver: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    # pending, sending, sent, failed
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
