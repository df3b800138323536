"""Times as the pages show them."""

from __future__ import annotations

from datetime import datetime

from core.timeutil import as_utc


def age(since: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit: "3 days", "5 hours", "just now"."""
    start = as_utc(since)
    if start is None:
        return ""
    seconds = max(0, int((now - start).total_seconds()))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "just now"


def when(value: datetime | None) -> str:
    """A timestamp for people: 2026-03-04 09:15 UTC."""
    moment = as_utc(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
