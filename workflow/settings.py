"""The [workflow] section (when reminders go and when waiting cases expire) and the
[retention] section (how long personal data is kept; workflow.retention)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class WorkflowConfig:
    reminder_after_days: float = 3
    expire_after_days: float = 10


@dataclass
class RetentionConfig:
    """How long personal data is kept, in days (README: Retention of personal data)."""

    # The original emails (raw bytes, attachments) and the bodies of emails sent, counted
    # from when the case closed.
    raw_after_days: float = 90
    # The case's personal values (requester, names, addresses, form fields, subjects),
    # counted from when the case closed; its skeleton is kept.
    personal_after_days: float = 730
    # Messages tied to no case (ignored, duplicates, automatic replies, dismissed),
    # counted from their arrival; emails sent on no case, from when they were written.
    unlinked_after_days: float = 90
    # Failed messages parked for a person, counted from their arrival.
    failed_after_days: float = 365
    # Cases or messages per transaction.
    batch_size: int = 200

    PERIODS: ClassVar[tuple[str, ...]] = (
        "raw_after_days",
        "personal_after_days",
        "unlinked_after_days",
        "failed_after_days",
    )
