"""Metrics counted where things happen, in the process that does them (`pcse run`): intake
rounds and their results, poll failures, and whether each IDLE connection is up.

The database collector gives the totals across every worker; these say what this process
did since it started, and what only it can know (its IDLE connections).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from intake.pipeline import IntakeReport

RESULTS = ("processed", "duplicates", "ignored", "failed")

# Registered only on the registries that serve them (register_in_process), not globally.
ROUNDS = Counter(
    "pcse_intake_rounds",
    "Intake rounds (poll every mailbox, then process) this process ran.",
    registry=None,
)
RESULTS_COUNTER = Counter(
    "pcse_intake_messages",
    "Messages this process handled, by result.",
    ["result"],
    registry=None,
)
POLL_ERRORS = Counter(
    "pcse_intake_poll_errors",
    "Polls of a mailbox that failed in this process.",
    ["mailbox"],
    registry=None,
)
ROUND_SECONDS = Histogram(
    "pcse_intake_round_seconds",
    "How long one intake round took in this process.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
    registry=None,
)
IN_PROCESS = (ROUNDS, RESULTS_COUNTER, POLL_ERRORS, ROUND_SECONDS)


def observe_round(report: IntakeReport, seconds: float, mailboxes: Sequence[str]) -> None:
    """Count one intake round (service.jobs calls this after each)."""
    ROUNDS.inc()
    ROUND_SECONDS.observe(seconds)
    counts = report.as_json()
    for result in RESULTS:
        if counts[result]:
            RESULTS_COUNTER.labels(result).inc(counts[result])
    for poll in report.polls:
        if poll.error:
            POLL_ERRORS.labels(poll.mailbox if poll.mailbox in mailboxes else "other").inc()


class Watching(Protocol):
    """What the IDLE gauge reads of each watcher (intake.idle.IdleWatcher)."""

    mailbox: str
    connected: threading.Event


class IdleCollector(Collector):
    """pcse_idle_connected{mailbox}: 1 while the mailbox's IDLE connection is up."""

    def __init__(self, watchers: Callable[[], Iterable[Watching]]) -> None:
        self.watchers = watchers

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "pcse_idle_connected",
            "1 while this process holds an IMAP IDLE connection to the mailbox, else 0.",
            labels=["mailbox"],
        )
        for watcher in self.watchers():
            family.add_metric([watcher.mailbox], 1.0 if watcher.connected.is_set() else 0.0)
        yield family


def register_in_process(registry: CollectorRegistry) -> None:
    for metric in IN_PROCESS:
        registry.register(metric)
