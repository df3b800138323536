"""What one Prometheus scrape and one reports page cost on a database of realistic size.

    .venv/bin/python bench/metrics.py [-n 10000] [--db URL] [--scrapes 5]

Writes N cases spread over a year, each with its message, history, emails and approval
requests as the workflow leaves them, then times the database collector behind /metrics
(one scrape, the whole exposition), /readyz, and the supervisors' report for the last 13
weeks and for the whole year. By default the database is a fresh SQLite file; pass a
PostgreSQL admin URL with --db to measure there (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import generate_latest
from sqlalchemy import insert

from bench.outbox import database
from caseworker.report import build_report, default_since
from core.clock import FixedClock
from core.db import Database
from intake.models import InboundMessage, MailboxState
from notifications.models import OutboxMessage
from service.config import from_mapping
from service.monitoring.build import build_monitor
from workflow.models import ApprovalRequest, Case, CaseEvent, Organisation

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KINDS = ("gpp_admin_form", "pcn_admin_form", "pl_admin", "performer_registration", "oph_admin")
# How cases end, by share: approved by email, answered at once, triage then rejected, open.
PATHS = (
    ("completed", 55),
    ("answered", 20),
    ("rejected", 15),
    ("awaiting_approval", 7),
    ("triage", 3),
)
BATCH = 2000


def _path(n: int) -> str:
    slot, edge = n % 100, 0
    for state, share in PATHS:
        edge += share
        if slot < edge:
            return state
    return PATHS[-1][0]


def _case_rows(n: int) -> dict[str, list[dict[str, Any]]]:
    """One case and everything the workflow writes about it."""
    arrived = NOW - timedelta(days=365) + timedelta(minutes=(n * 52) % (365 * 1440))
    state = _path(n)
    ref = f"PCSE-2026-{n:06d}"
    requester = f"manager{n % 700}@nhs.net"
    org = f"A{81000 + n % 500}"
    events = [("created", None, "received", arrived, "system")]
    outbox = [("acknowledgement", arrived + timedelta(minutes=3 + n % 40))]
    approvals = []
    if state in ("completed", "awaiting_approval"):
        events.append(("transition", "received", "awaiting_approval", arrived, "system"))
        asked = arrived + timedelta(minutes=1)
        approvals.append(("open" if state == "awaiting_approval" else "approved", asked))
    if state == "completed":
        answered = arrived + timedelta(hours=2 + n % 70)
        events += [
            ("transition", "awaiting_approval", "approved", answered, "signer@nhs.net"),
            ("transition", "approved", "completed", answered, "signer@nhs.net"),
        ]
        outbox.append(("outcome_completed", answered + timedelta(minutes=2)))
    elif state == "answered":
        events.append(("transition", "received", "answered", arrived, "system"))
    elif state in ("rejected", "triage"):
        events.append(
            ("transition", "received", "triage", arrived, "system", f"Organisation {org} is closed")
        )
        if state == "rejected":
            events.append(
                ("transition", "triage", "rejected", arrived + timedelta(days=1), "casey@nhs.net")
            )
    return {
        "case": [
            {
                "id": n,
                "ref": ref,
                "kind": KINDS[n % len(KINDS)],
                "state": state,
                "organisation_code": org,
                "requester": requester,
                "fields": {},
                "findings": [],
                "source_message_id": n,
                "created_at": arrived + timedelta(seconds=2),
                "updated_at": arrived,
            }
        ],
        "message": [
            {
                "id": n,
                "mailbox": "enquiries",
                "uidvalidity": 1,
                "uid": n,
                "sha256": f"{n:064x}",
                "size": 2000,
                "received_at": arrived,
                "status": "processed",
                "classification": "new_request",
                "case_id": n,
            }
        ],
        "event": [
            {
                "case_id": n,
                "at": e[3],
                "actor": e[4],
                "event": e[0],
                "from_state": e[1],
                "to_state": e[2],
                "detail": e[5] if len(e) > 5 else "",
                "data": {},
            }
            for e in events
        ],
        "outbox": [
            {
                "case_id": n,
                "purpose": purpose,
                "message_id": f"<{n}.{i}@bench>",
                "to_address": requester,
                "subject": f"[{ref}]",
                "body_text": "…",
                "attachments": [],
                "status": "sent",
                "created_at": at,
                "next_attempt_at": at,
                "sent_at": at,
            }
            for i, (purpose, at) in enumerate(outbox)
        ],
        "approval": [
            {
                "case_id": n,
                "token": f"{n:040x}",
                "approver_email": "signer@nhs.net",
                "approver_name": "Signer",
                "approver_source": "signer",
                "created_at": at,
                "expires_at": at + timedelta(days=10),
                "status": status,
            }
            for status, at in approvals
        ],
    }


TABLES = {
    "message": InboundMessage,
    "case": Case,
    "event": CaseEvent,
    "outbox": OutboxMessage,
    "approval": ApprovalRequest,
}


def fill(db: Database, count: int) -> None:
    with db.transaction() as session:
        session.execute(
            insert(Organisation),
            [
                {
                    "code": f"A{81000 + i}",
                    "name": f"Practice {i}",
                    "type": "gp_practice",
                    "icb_code": f"Q{i % 40:02d}",
                    "status": "active",
                    "updated_at": NOW,
                }
                for i in range(500)
            ],
        )
        session.add(MailboxState(name="enquiries", last_poll_at=NOW, last_ok_at=NOW))
    for start in range(1, count + 1, BATCH):
        rows: dict[str, list[dict[str, Any]]] = {key: [] for key in TABLES}
        for n in range(start, min(start + BATCH, count + 1)):
            for key, found in _case_rows(n).items():
                rows[key].extend(found)
        with db.transaction() as session:
            for key, model in TABLES.items():
                if rows[key]:
                    session.execute(insert(model), rows[key])


def timed(work: Callable[[], object], times: int) -> tuple[float, float]:
    """Median and worst of `times` runs, in milliseconds."""
    took = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000, help="cases (default 10000)")
    parser.add_argument("--db", help="PostgreSQL admin URL (default: a temporary SQLite file)")
    parser.add_argument("--scrapes", type=int, default=5, help="timed runs of each (default 5)")
    args = parser.parse_args()
    with database(args.db) as db:
        started = time.perf_counter()
        fill(db, args.n)
        print(
            f"{args.n} cases written in {time.perf_counter() - started:.1f} s "
            f"({db.engine.dialect.name})"
        )
        config = from_mapping(
            {
                "database": {"url": db.url},
                "mailboxes": [{"name": "enquiries", "address": "in@nhs.net", "maildir": "m"}],
            }
        )
        monitor = build_monitor(config, db, clock=FixedClock(NOW), token_required=False)
        body = generate_latest(monitor.registry)
        median, worst = timed(lambda: generate_latest(monitor.registry), args.scrapes)
        print(
            f"/metrics scrape: median {median:.0f} ms, worst {worst:.0f} ms, "
            f"{len(body)} bytes, {len(body.splitlines())} lines"
        )
        median, worst = timed(monitor.readiness, args.scrapes)
        print(f"/readyz: median {median:.1f} ms, worst {worst:.1f} ms")
        for label, since in (
            ("last 13 weeks", default_since(NOW)),
            ("whole year", (NOW - timedelta(days=366)).date()),
        ):

            def report(since=since) -> None:
                with db.transaction() as session:
                    build_report(session, since, NOW)

            median, worst = timed(report, args.scrapes)
            print(f"report, {label}: median {median:.0f} ms, worst {worst:.0f} ms")


if __name__ == "__main__":
    main()
