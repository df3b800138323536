"""The supervisors' report, computed from the database: used by the reports page and by
`pcse report`, and its per-case times by the service's metrics.

Times are measured from a request's arrival (when its message reached the service, or when
the case was opened if that is earlier or there is no message) to:
- acknowledgement: the first email about the case sent to the requester;
- approval: the case's first move to `approved`;
- outcome: its last move into a final state, for a case that is in one now.

A case "reached a person" when it went to `triage` or a caseworker acted on it; approvers
answering by email and requesters replying do not count: they are the flow itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from caseworker.models import Caseworker
from core.states import FINAL_STATES, CaseState
from core.timeutil import as_utc
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow.models import ApprovalRequest, Case, CaseEvent, Organisation

FINALS = sorted(str(s) for s in FINAL_STATES)
MEASURES = ("acknowledgement", "approval", "outcome")
TOP_REASONS = 10


@dataclass(frozen=True)
class CaseTimes:
    """One case's kind, state and the moments the report measures."""

    id: int
    kind: str
    state: str
    arrived_at: datetime
    acknowledged_at: datetime | None = None
    approved_at: datetime | None = None
    outcome_at: datetime | None = None
    reached_person: bool = False
    triage_reason: str | None = None

    def seconds_to(self, measure: str) -> float | None:
        moment = {
            "acknowledgement": self.acknowledged_at,
            "approval": self.approved_at,
            "outcome": self.outcome_at,
        }[measure]
        return None if moment is None else max(0.0, (moment - self.arrived_at).total_seconds())

    @property
    def finished(self) -> bool:
        return self.state in FINALS


@dataclass(frozen=True)
class Outstanding:
    """Approval requests still open at one organisation."""

    icb_code: str | None
    organisation_code: str | None
    organisation_name: str | None
    open: int
    oldest: datetime


@dataclass(frozen=True)
class Timing:
    count: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass
class Report:
    since: date
    until: datetime
    cases: int
    by_week: dict[date, dict[str, int]]
    outcomes: dict[str, int]
    times: dict[str, Timing]
    finished: int
    finished_without_person: int
    reached_person: int
    reasons: list[tuple[str, int]]
    outstanding: list[Outstanding] = field(default_factory=list)

    @property
    def share_without_person(self) -> float | None:
        return self.finished_without_person / self.finished if self.finished else None

    @property
    def kinds(self) -> list[str]:
        return sorted({kind for counts in self.by_week.values() for kind in counts})


# --------------------------------------------------------------------------- reading


def case_times(
    session: Session, since: datetime | None = None, *, people: bool = True
) -> list[CaseTimes]:
    """Every case opened since `since` (all, for None) with its measured moments, and
    (unless `people` is False) whether and why it reached a person."""
    opened = [] if since is None else [Case.created_at >= since]
    rows = session.execute(
        select(Case.id, Case.kind, Case.state, Case.created_at, InboundMessage.received_at)
        .outerjoin(InboundMessage, InboundMessage.id == Case.source_message_id)
        .where(*opened)
        .order_by(Case.id)
    ).all()
    acknowledged = _first_reply_sent(session, opened)
    approved, outcome = _moves(session, opened)
    triaged = _first_triage(session, opened) if people else {}
    acted = _acted_on_by_people(session, opened) if people else set()
    found = []
    for case_id, kind, state, created_at, received_at in rows:
        created = as_utc(created_at)
        arrived = min(as_utc(received_at), created) if received_at else created
        found.append(
            CaseTimes(
                id=case_id,
                kind=kind,
                state=state,
                arrived_at=arrived,
                acknowledged_at=acknowledged.get(case_id),
                approved_at=approved.get(case_id),
                outcome_at=outcome.get(case_id) if state in FINALS else None,
                reached_person=case_id in triaged or case_id in acted,
                triage_reason=triaged.get(case_id),
            )
        )
    return found


def _first_reply_sent(session: Session, opened: list[Any]) -> dict[int, datetime]:
    rows = session.execute(
        select(OutboxMessage.case_id, func.min(OutboxMessage.sent_at))
        .join(Case, Case.id == OutboxMessage.case_id)
        .where(
            OutboxMessage.sent_at.is_not(None),
            OutboxMessage.to_address == Case.requester,
            *opened,
        )
        .group_by(OutboxMessage.case_id)
    )
    return {case_id: as_utc(at) for case_id, at in rows if case_id is not None and at}


def _moves(session: Session, opened: list[Any]) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """The first move to approved and the last move into a final state, per case."""
    rows = session.execute(
        select(
            CaseEvent.case_id,
            CaseEvent.to_state,
            func.min(CaseEvent.at),
            func.max(CaseEvent.at),
        )
        .join(Case, Case.id == CaseEvent.case_id)
        .where(
            CaseEvent.event == "transition",
            CaseEvent.to_state.in_([str(CaseState.APPROVED), *FINALS]),
            *opened,
        )
        .group_by(CaseEvent.case_id, CaseEvent.to_state)
    )
    approved: dict[int, datetime] = {}
    outcome: dict[int, datetime] = {}
    for case_id, to_state, first, last in rows:
        if to_state == CaseState.APPROVED:
            approved[case_id] = as_utc(first)
        elif case_id not in outcome or as_utc(last) > outcome[case_id]:
            outcome[case_id] = as_utc(last)
    return approved, outcome


def _first_triage(session: Session, opened: list[Any]) -> dict[int, str]:
    """Why each case first went to triage, as a reason label."""
    rows = session.execute(
        select(CaseEvent.case_id, CaseEvent.detail)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(
            CaseEvent.event == "transition",
            CaseEvent.to_state == str(CaseState.TRIAGE),
            *opened,
        )
        .order_by(CaseEvent.id)
    )
    found: dict[int, str] = {}
    for case_id, detail in rows:
        found.setdefault(case_id, reason_label(detail))
    return found


def _acted_on_by_people(session: Session, opened: list[Any]) -> set[int]:
    """Cases a caseworker acted on: an action (by web page or command), or any step taken
    by a caseworker account (assigning, correcting)."""
    by_caseworker = select(Caseworker.id).where(Caseworker.email == CaseEvent.actor).exists()
    rows = session.scalars(
        select(CaseEvent.case_id)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(or_(CaseEvent.event == "caseworker_action", by_caseworker), *opened)
        .distinct()
    )
    return set(rows)


def outstanding_approvals(session: Session) -> list[Outstanding]:
    """Open approval requests by ICB and practice, the most first."""
    rows = session.execute(
        select(
            Organisation.icb_code,
            Case.organisation_code,
            Organisation.name,
            func.count(ApprovalRequest.id),
            func.min(ApprovalRequest.created_at),
        )
        .join(Case, Case.id == ApprovalRequest.case_id)
        .outerjoin(Organisation, Organisation.code == Case.organisation_code)
        .where(ApprovalRequest.status == "open")
        .group_by(Organisation.icb_code, Case.organisation_code, Organisation.name)
    ).all()
    found = [
        Outstanding(icb, code, name, count, as_utc(oldest))
        for icb, code, name, count, oldest in rows
    ]
    return sorted(found, key=lambda o: (-o.open, o.icb_code or "", o.organisation_code or ""))


# --------------------------------------------------------------------------- computing

EMAIL = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+")
PARENTHESES = re.compile(r"\s*\([^()]*\)")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
WITH_DIGIT = re.compile(r"\S*\d\S*")
SPACES = re.compile(r"\s+")


def reason_label(detail: str) -> str:
    """A triage reason with what varies from case to case taken out (codes, references,
    addresses, names in brackets or quotes), so that like reasons count together and no
    one is named: "Organisation A81001 is closed; …" -> "Organisation … is closed"."""
    text = EMAIL.sub("…", detail or "")
    text = PARENTHESES.sub("", text)
    text = QUOTED.sub("…", text)
    text = WITH_DIGIT.sub("…", text)
    text = text.split(";")[0].split(": ")[0]
    text = SPACES.sub(" ", text).strip().rstrip(".")
    return text or "No reason recorded"


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between the closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def timing(values: Sequence[float]) -> Timing:
    return Timing(len(values), quantile(values, 0.5), quantile(values, 0.9))


def week_of(moment: datetime) -> date:
    """The Monday (UTC) starting the week the moment falls in."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


def compute(
    cases: Iterable[CaseTimes],
    *,
    since: date,
    until: datetime,
    outstanding: list[Outstanding] | None = None,
) -> Report:
    """The report on `cases` (those opened since `since`): pure, from their times."""
    cases = list(cases)
    by_week: dict[date, Counter[str]] = {}
    for case in cases:
        by_week.setdefault(week_of(case.arrived_at), Counter())[case.kind] += 1
    outcomes = Counter(case.state if case.finished else "open" for case in cases)
    times = {
        measure: timing([s for c in cases if (s := c.seconds_to(measure)) is not None])
        for measure in MEASURES
    }
    finished = [c for c in cases if c.finished]
    reasons = Counter(c.triage_reason for c in cases if c.triage_reason)
    return Report(
        since=since,
        until=until,
        cases=len(cases),
        by_week={week: dict(sorted(counts.items())) for week, counts in sorted(by_week.items())},
        outcomes=dict(sorted(outcomes.items())),
        times=times,
        finished=len(finished),
        finished_without_person=sum(1 for c in finished if not c.reached_person),
        reached_person=sum(1 for c in cases if c.reached_person),
        reasons=sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS],
        outstanding=outstanding or [],
    )


def build_report(session: Session, since: date, now: datetime) -> Report:
    """The report on every case opened on or after `since` (midnight UTC), as of `now`."""
    start = datetime(since.year, since.month, since.day, tzinfo=now.tzinfo)
    return compute(
        case_times(session, start),
        since=since,
        until=now,
        outstanding=outstanding_approvals(session),
    )


def default_since(now: datetime) -> date:
    """The last quarter: the Monday thirteen weeks before this week's."""
    return week_of(now) - timedelta(weeks=12)


# --------------------------------------------------------------------------- output


def as_json(report: Report) -> dict[str, Any]:
    """The `pcse report --json` document."""
    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "cases": report.cases,
        "by_week": [
            {"week": week.isoformat(), "kinds": counts, "total": sum(counts.values())}
            for week, counts in report.by_week.items()
        ],
        "outcomes": report.outcomes,
        "times": {
            measure: {
                "count": t.count,
                "median_seconds": t.median_seconds,
                "p90_seconds": t.p90_seconds,
            }
            for measure, t in report.times.items()
        },
        "without_person": {
            "finished": report.finished,
            "finished_without_person": report.finished_without_person,
            "share": report.share_without_person,
        },
        "reached_person": {
            "cases": report.reached_person,
            "reasons": [{"reason": r, "cases": n} for r, n in report.reasons],
        },
        "approvals_outstanding": [
            {
                "icb_code": o.icb_code,
                "organisation": o.organisation_code,
                "organisation_name": o.organisation_name,
                "open": o.open,
                "oldest": o.oldest.isoformat(),
            }
            for o in report.outstanding
        ],
    }


CSV_HEADER = ("section", "group", "item", "value")


def csv_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """The report as one long table: section, group, item, value."""

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    rows: list[tuple[str, str, str, str]] = []
    for week, counts in report.by_week.items():
        rows += [("requests_by_week", week.isoformat(), k, str(n)) for k, n in counts.items()]
    rows += [("outcomes", "", state, str(n)) for state, n in report.outcomes.items()]
    for measure, t in report.times.items():
        rows += [
            ("time_to", measure, "count", str(t.count)),
            ("time_to", measure, "median_seconds", number(t.median_seconds)),
            ("time_to", measure, "p90_seconds", number(t.p90_seconds)),
        ]
    rows += [
        ("without_person", "", "finished", str(report.finished)),
        ("without_person", "", "finished_without_person", str(report.finished_without_person)),
        ("without_person", "", "share", number(report.share_without_person)),
        ("reached_person", "", "cases", str(report.reached_person)),
    ]
    rows += [("reached_person_reason", "", reason, str(n)) for reason, n in report.reasons]
    rows += [
        ("approvals_outstanding", o.icb_code or "", o.organisation_code or "", str(o.open))
        for o in report.outstanding
    ]
    return rows


def duration(seconds: float | None) -> str:
    """A length of time as a person reads it: "45 s", "12 min", "3.5 h", "2.1 days"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f}%"
