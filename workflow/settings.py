"""The [workflow] section: when reminders go and when waiting cases expire."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorkflowConfig:
    reminder_after_days: float = 3
    expire_after_days: float = 10
