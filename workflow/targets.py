"""Target times ([targets]) and when a case is overdue against them.

Two targets, as PCSE's service levels put them: something that needs a person is taken by
a caseworker (assigned) within `acknowledge_within_hours`, counted in clock hours; an open
case reaches its outcome within `decide_within_working_days` of arriving, counted in
working days (Monday to Friday, less the `holidays` listed). Pure functions of the case's
times and the workflow clock's now, so the queue, the CLI and tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.errors import ConfigError
from core.states import FINAL_STATES, CaseState
from core.timeutil import as_utc

ACKNOWLEDGE = "acknowledge"
DECIDE = "decide"


@dataclass
class TargetsConfig:
    acknowledge_within_hours: float = 1
    decide_within_working_days: int = 5
    # Bank holidays and other days nobody works, as "YYYY-MM-DD".
    holidays: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.acknowledge_within_hours > 0 or self.decide_within_working_days < 1:
            raise ConfigError(
                "[targets] acknowledge_within_hours must be above 0 and "
                "decide_within_working_days at least 1."
            )
        for day in self.holidays:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ConfigError(
                    f"[targets] holidays: {day!r} is not a date written YYYY-MM-DD."
                ) from None

    def holiday_dates(self) -> frozenset[date]:
        return frozenset(date.fromisoformat(day) for day in self.holidays)


def is_working_day(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: datetime, days: int, holidays: frozenset[date]) -> datetime:
    """`days` working days after `start`: the same time of day, on the working day reached.
    Time does not run on days off, so a case that arrives on Saturday counts from Monday."""
    moment = start
    while not is_working_day(moment.date(), holidays):
        moment = datetime.combine(
            moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=moment.tzinfo
        )
    left = days
    while left > 0:
        moment += timedelta(days=1)
        if is_working_day(moment.date(), holidays):
            left -= 1
    return moment


@dataclass(frozen=True)
class CaseTimes:
    """What the targets read from a case."""

    state: str
    created_at: datetime | None
    updated_at: datetime | None
    new_reply_at: datetime | None
    assigned_to: str | None


def needs_person_since(case: CaseTimes) -> datetime | None:
    """When a person was first needed: the first unread reply, else entering triage."""
    if case.new_reply_at is not None:
        return as_utc(case.new_reply_at)
    if case.state == CaseState.TRIAGE:
        return as_utc(case.updated_at)
    return None


def acknowledge_by(case: CaseTimes, targets: TargetsConfig) -> datetime | None:
    """When someone should have taken it; None once it is assigned or needs nobody."""
    since = needs_person_since(case)
    if since is None or case.assigned_to:
        return None
    return since + timedelta(hours=targets.acknowledge_within_hours)


def decide_by(case: CaseTimes, targets: TargetsConfig) -> datetime | None:
    """When an open case should have its outcome; None once it is closed."""
    created = as_utc(case.created_at)
    if created is None or CaseState(case.state) in FINAL_STATES:
        return None
    return add_working_days(created, targets.decide_within_working_days, targets.holiday_dates())


def overdue(case: CaseTimes, targets: TargetsConfig, now: datetime) -> list[str]:
    """The targets the case has missed, ACKNOWLEDGE and DECIDE, in that order."""
    missed = []
    for name, due in (
        (ACKNOWLEDGE, acknowledge_by(case, targets)),
        (DECIDE, decide_by(case, targets)),
    ):
        if due is not None and due < now:
            missed.append(name)
    return missed
