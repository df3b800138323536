"""Time in one spelling: every stored time is UTC, and SQLite hands back naive datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import overload


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC. A naive value is taken to be UTC already (SQLite keeps only the clock
    time, and everything stored is UTC); an aware one is converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Not strftime("%B"): that follows the process locale.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def day_in_words(day: date) -> str:
    """A date as people write it: "6 March 2026"."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"
