"""The scheduler's own table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
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
