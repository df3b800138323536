"""Metrics read from the database at scrape time, so that they are right whichever process
asks and however many workers run, and survive restarts.

Every label value comes from a fixed list (states, kinds, statuses, classifications, the
configured mailbox names); anything else is counted as "other". No address, name or
subject ever becomes a label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.clock import Clock
from core.db import Database
from core.inbound import MessageKind
from core.states import CaseKind, CaseState
from core.timeutil import as_utc
from intake import ledger
from intake.models import InboundMessage, MailboxState
from notifications.claims import count_unconfirmed
from notifications.models import OutboxMessage
from service.monitoring.waits import WAIT_BUCKETS, wait_histogram
from workflow.models import ApprovalRequest, Case

log = logging.getLogger(__name__)

OTHER = "other"
NONE = "none"  # a message not classified (yet)
CLASSIFICATIONS = (*(str(k) for k in MessageKind), NONE)
MESSAGE_STATUSES = ledger.STATUSES
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "held", "dismissed")
STATES = tuple(str(s) for s in CaseState)
KINDS = tuple(str(k) for k in CaseKind)


def label(value: str | None, allowed: Sequence[str], missing: str = NONE) -> str:
    """A label value from its fixed list; anything unexpected is "other"."""
    if value is None:
        return missing
    return value if value in allowed else OTHER


@dataclass(frozen=True)
class Thresholds:
    """What counts as overdue (an approval request open longer than the reminder period),
    and which cases the wait histograms cover (those opened in the last `wait_window`)."""

    approval_overdue_after: timedelta
    wait_window: timedelta = timedelta(days=30)


class DatabaseCollector(Collector):
    """The service's state as Prometheus metrics, read in one transaction per scrape."""

    def __init__(
        self,
        database: Database,
        mailboxes: Sequence[str],
        clock: Clock,
        thresholds: Thresholds,
    ) -> None:
        self.database = database
        self.mailboxes = tuple(mailboxes)
        self.clock = clock
        self.thresholds = thresholds

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not touch the database

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            with self.database.transaction() as session:
                families = list(self._families(session))
        except SQLAlchemyError as exc:
            log.warning("metrics: the database could not be read (%s)", type(exc).__name__)
            families = []
        up = GaugeMetricFamily(
            "pcse_database_up", "1 when the database answered this scrape, else 0."
        )
        up.add_metric([], 1.0 if families else 0.0)
        yield up
        yield from families
        took = GaugeMetricFamily(
            "pcse_metrics_collect_seconds", "How long reading these metrics from the database took."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self, session: Session) -> Iterator[Metric]:
        now = as_utc(self.clock.now())
        yield from self._messages(session)
        yield from self._mailboxes(session)
        yield from self._cases(session)
        yield from self._waits(session, now)
        yield from self._outbox(session)
        yield from self._approvals(session, now)

    # ------------------------------------------------------------------ messages

    def _messages(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(
            select(
                InboundMessage.mailbox,
                InboundMessage.status,
                InboundMessage.classification,
                func.count(),
            ).group_by(InboundMessage.mailbox, InboundMessage.status, InboundMessage.classification)
        ).all()
        fetched: dict[str, int] = dict.fromkeys(self.mailboxes, 0)
        by_status: dict[tuple[str, str], int] = {}
        for mailbox, status, classification, count in rows:
            box = label(mailbox, self.mailboxes, OTHER)
            fetched[box] = fetched.get(box, 0) + count
            key = (label(status, MESSAGE_STATUSES), label(classification, CLASSIFICATIONS))
            by_status[key] = by_status.get(key, 0) + count
        total = CounterMetricFamily(
            "pcse_messages_fetched",
            "Messages taken from each mailbox into the ledger.",
            labels=["mailbox"],
        )
        for box, count in sorted(fetched.items()):
            total.add_metric([box], count)
        yield total
        yield _by_classification(
            CounterMetricFamily(
                "pcse_messages_processed",
                "Messages processed (a case opened or advanced, an answer read), by class.",
                labels=["classification"],
            ),
            by_status,
            ledger.PROCESSED,
        )
        yield _by_classification(
            GaugeMetricFamily(
                "pcse_messages_parked",
                "Messages that failed and wait for a caseworker (status failed), by class.",
                labels=["classification"],
            ),
            by_status,
            ledger.FAILED,
        )
        ledger_rows = GaugeMetricFamily(
            "pcse_messages",
            "Messages in the ledger by status and classification.",
            labels=["status", "classification"],
        )
        for (status, classification), count in sorted(by_status.items()):
            ledger_rows.add_metric([status, classification], count)
        yield ledger_rows

    def _mailboxes(self, session: Session) -> Iterator[Metric]:
        states = {s.name: s for s in session.scalars(select(MailboxState))}
        last_poll = GaugeMetricFamily(
            "pcse_mailbox_last_poll_timestamp_seconds",
            "When each mailbox was last polled (Unix time), successfully or not.",
            labels=["mailbox"],
        )
        last_ok = GaugeMetricFamily(
            "pcse_mailbox_last_successful_poll_timestamp_seconds",
            "When each mailbox was last polled successfully (Unix time).",
            labels=["mailbox"],
        )
        failing = GaugeMetricFamily(
            "pcse_mailbox_poll_failing",
            "1 when the mailbox's last poll failed, else 0.",
            labels=["mailbox"],
        )
        for name in self.mailboxes:
            state = states.get(name)
            if state is None:
                continue  # never polled: no timestamp to give
            if state.last_poll_at:
                last_poll.add_metric([name], as_utc(state.last_poll_at).timestamp())
            if state.last_ok_at:
                last_ok.add_metric([name], as_utc(state.last_ok_at).timestamp())
            failing.add_metric([name], 1.0 if state.last_error else 0.0)
        yield from (last_poll, last_ok, failing)

    # ------------------------------------------------------------------ cases

    def _cases(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(
            select(Case.kind, Case.state, func.count()).group_by(Case.kind, Case.state)
        ).all()
        opened: dict[str, int] = dict.fromkeys(KINDS, 0)
        states: dict[str, int] = dict.fromkeys(STATES, 0)
        for kind, state, count in rows:
            key = label(kind, KINDS, OTHER)
            opened[key] = opened.get(key, 0) + count
            key = label(state, STATES, OTHER)
            states[key] = states.get(key, 0) + count
        total = CounterMetricFamily("pcse_cases_opened", "Cases opened, by kind.", labels=["kind"])
        for kind, count in opened.items():
            total.add_metric([kind], count)
        yield total
        now = GaugeMetricFamily("pcse_cases", "Cases in each state now.", labels=["state"])
        for state, count in states.items():
            now.add_metric([state], count)
        yield now

    def _waits(self, session: Session, now: datetime) -> Iterator[Metric]:
        since = now - self.thresholds.wait_window
        days = f"{self.thresholds.wait_window.total_seconds() / 86400:g}"
        for measure, doc in (
            (
                "acknowledgement",
                "from a request's arrival to the first email sent to the requester",
            ),
            ("outcome", "from a request's arrival to its case's final state"),
        ):
            count, total, cumulative = wait_histogram(session, measure, since)
            family = GaugeHistogramMetricFamily(
                f"pcse_case_time_to_{measure}_seconds",
                f"Seconds {doc}, for the cases opened in the last {days} days.",
            )
            buckets = [
                (floatToGoString(bound), float(n))
                for bound, n in zip(WAIT_BUCKETS, cumulative, strict=True)
            ]
            family.add_metric([], [*buckets, ("+Inf", float(count))], total)
            yield family

    # ------------------------------------------------------------------ outbox, approvals

    def _outbox(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
        counts: dict[str, int] = dict.fromkeys(OUTBOX_STATUSES, 0)
        for status, count in rows:
            key = label(status, OUTBOX_STATUSES, OTHER)
            counts[key] = counts.get(key, 0) + count
        family = GaugeMetricFamily(
            "pcse_outbox_emails", "Emails in the outbox by status.", labels=["status"]
        )
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family
        unconfirmed = GaugeMetricFamily(
            "pcse_outbox_unconfirmed",
            "Emails handed to the mail server as the service stopped: delivery unconfirmed.",
        )
        unconfirmed.add_metric([], count_unconfirmed(session))
        yield unconfirmed

    def _approvals(self, session: Session, now: datetime) -> Iterator[Metric]:
        overdue_before = now - self.thresholds.approval_overdue_after
        waiting = select(func.count()).where(ApprovalRequest.status == "open")
        outstanding = GaugeMetricFamily(
            "pcse_approval_requests_outstanding", "Approval requests waiting for an answer."
        )
        outstanding.add_metric([], session.scalar(waiting) or 0)
        overdue = GaugeMetricFamily(
            "pcse_approval_requests_overdue",
            "Approval requests unanswered for longer than [workflow] reminder_after_days.",
        )
        late = waiting.where(ApprovalRequest.created_at < overdue_before)
        overdue.add_metric([], session.scalar(late) or 0)
        yield from (outstanding, overdue)


def _by_classification(family: Any, by_status: dict[tuple[str, str], int], status: str) -> Any:
    counts = dict.fromkeys(CLASSIFICATIONS, 0)
    for (row_status, classification), count in by_status.items():
        if row_status == status:
            counts[classification] = counts.get(classification, 0) + count
    for classification, count in counts.items():
        family.add_metric([classification], count)
    return family
