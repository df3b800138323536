"""Purge N closed cases with their raw files, and hand N role changes on through the feed
and a webhook receiver in this process; print the rates.

    .venv/bin/python bench/retention_feed.py [-n 2000] [--db URL]

By default the database is a fresh SQLite file; pass a PostgreSQL URL with --db to
measure there (the bench creates its own database next to it and drops it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.outbox import database
from core.clock import FixedClock
from core.db import Database
from intake.models import InboundMessage
from intake.rawstore import RawStore
from service.webhook_settings import WebhookConfig
from service.webhooks import deliver_all
from workflow import directory
from workflow.cases import create_case, move
from workflow.changefeed import changes_since, publish
from workflow.models import Organisation
from workflow.retention import purge
from workflow.settings import RetentionConfig

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def closed_cases(db: Database, raw_dir: Path, count: int) -> None:
    store = RawStore(raw_dir)
    digests = store.put_many(
        f"From: p{n}@nhs.net\r\n\r\nRequest {n}\r\n".encode() for n in range(count)
    )
    with db.transaction() as session:
        for n, digest in enumerate(digests):
            message = InboundMessage(
                mailbox="enquiries",
                uidvalidity=1,
                uid=n + 1,
                sha256=digest,
                size=40,
                from_address=f"p{n}@nhs.net",
                subject=f"Request {n}",
                status="processed",
                received_at=START,
            )
            session.add(message)
            session.flush()
            case = create_case(
                session,
                kind="other",
                requester=f"p{n}@nhs.net",
                requester_name=f"Person {n}",
                organisation_code="A81001",
                subject=f"Request {n}",
                source_message_id=message.id,
                now=START,
                fields={"nominees": [{"name": f"Person {n}", "email": f"p{n}@nhs.net"}]},
            )
            message.case_id = case.id
            move(session, case, "triage", actor="system", reason="bench", now=START)
            move(session, case, "withdrawn", actor="bench", reason="bench", now=START)


def bench_purge(db: Database, count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw_dir = Path(folder)
        closed_cases(db, raw_dir, count)
        periods = RetentionConfig()
        for label, days in (("raw", 91), ("personal", 731)):
            began = time.perf_counter()
            report = purge(db, periods, raw_dir=raw_dir, now=START + timedelta(days=days))
            took = time.perf_counter() - began
            done = report.cases_raw if label == "raw" else report.cases_personal
            print(f"purge {label:8}: {done} cases in {took:.2f} s ({done / took:.0f} cases/s)")
        left = sum(1 for p in raw_dir.rglob("*") if p.is_file())
        print(f"raw files left: {left}")


def bench_feed(db: Database, count: int) -> None:
    # Ten holders to an organisation, as in life (the rules count the holders of a role).
    with db.transaction() as session:
        session.add_all(
            Organisation(code=f"B{n:05d}", name="Hill", type="gp_practice", icb_code="QHM")
            for n in range(count // 10 + 1)
        )
    began = time.perf_counter()
    for n in range(count):
        with db.transaction() as session:
            directory.grant_role(
                session,
                org_code=f"B{n // 10:05d}",
                email=f"u{n}@nhs.net",
                name=f"U {n}",
                role="Claims Admin",
                actor="bench",
                reason="bench",
            )
    took = time.perf_counter() - began
    print(f"grants with feed rows: {count} in {took:.2f} s ({count / took:.0f}/s)")
    began = time.perf_counter()
    with db.transaction() as session:
        publish(session)
    with db.transaction() as session:
        read = len(changes_since(session, 0))
    took = time.perf_counter() - began
    print(f"publish and read the feed: {read} changes in {took:.2f} s")

    taken: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            taken.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook = WebhookConfig(
        name="bench", url=f"http://127.0.0.1:{server.server_address[1]}/", secret="bench"
    )
    began = time.perf_counter()
    report = deliver_all(db, [hook], worker="bench", clock=FixedClock(datetime.now(UTC)))
    took = time.perf_counter() - began
    server.shutdown()
    server.server_close()
    print(f"webhook POSTs in order: {report.sent} in {took:.2f} s ({report.sent / took:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    with database(args.db) as db:
        bench_purge(db, args.n)
    with database(args.db) as db:
        bench_feed(db, args.n)


if __name__ == "__main__":
    main()
