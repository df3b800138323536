"""Queue N replies in the outbox and send them to a local aiosmtpd sink; print the rates.

    .venv/bin/python bench/outbox.py [-n 5000] [--db URL] [--in-process-sink] [--no-pipelining]

By default the database is a fresh SQLite file in a temporary folder and the sink runs in
a child process (as a real mail server would be another process). Pass a PostgreSQL URL
with --db to measure there; the bench creates its own database next to it and drops it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pgcluster import scratch_database
from core.db import Database
from notifications.samples import SAMPLE_CONTEXTS
from notifications.sender import send_pending
from notifications.sink import SmtpSink, free_port
from service.config import Config, SmtpConfig
from service.schema import upgrade
from workflow.cases import create_case
from workflow.env import WorkflowEnv
from workflow.mail import enqueue
from workflow.models import Organisation


@contextmanager
def database(url: str | None) -> Iterator[Database]:
    """A fresh, migrated database: a temporary SQLite file, or a new PostgreSQL database."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            db = Database(f"sqlite:///{folder}/bench.sqlite3")
            upgrade(db.engine)
            yield db
            db.dispose()
        return
    with scratch_database(url, prefix="pcse_bench_") as scratch:
        db = Database(scratch)
        try:
            upgrade(db.engine)
            yield db
        finally:
            db.dispose()


@contextmanager
def sink(in_process: bool, pipelining: bool = True) -> Iterator[int]:
    """A sink on a free port, in this process or a child; yields the port."""
    if in_process:
        with SmtpSink(keep=False, pipelining=pipelining) as running:
            yield running.port
        return
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "notifications.sink", "--port", str(port), "--discard"]
        + ([] if pipelining else ["--no-pipelining"]),
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # "listening on …": the sink is up
        yield port
    finally:
        child.terminate()
        child.wait(10)


def queue(db: Database, env: WorkflowEnv, n: int) -> float:
    """Queue n acknowledgements (to distinct addresses, so no cap applies); seconds taken."""
    started = time.perf_counter()
    with db.transaction() as session:
        session.add(
            Organisation(
                code="A81001", name="The Riverside Surgery", type="gp_practice", icb_code="QHM"
            )
        )
        for i in range(n):
            case = create_case(
                session,
                kind="gpp_admin_form",
                requester=f"r{i}@example.org",
                requester_name=f"Requester {i}",
                organisation_code="A81001",
            )
            enqueue(
                session,
                env,
                purpose="acknowledgement",
                to_address=f"r{i}@example.org",
                to_name=f"Requester {i}",
                context=SAMPLE_CONTEXTS["acknowledgement"],
                case=case,
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="messages to queue and send")
    parser.add_argument("--db", help="PostgreSQL admin URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="the sink does not offer PIPELINING, so the sender waits for each answer",
    )
    parser.add_argument(
        "--in-process-sink",
        action="store_true",
        help="run the sink in this process instead of a child process",
    )
    args = parser.parse_args()
    env = WorkflowEnv()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with database(args.db) as db, sink(args.in_process_sink, not args.no_pipelining) as port:
        queued = queue(db, env, args.n)
        config = Config(smtp=replace(SmtpConfig(), host="127.0.0.1", port=port))
        started, cpu = time.perf_counter(), time.process_time()
        report = send_pending(db, config)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink_cpu = (
        children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
    )
    where = "PostgreSQL" if args.db else "SQLite"
    print(f"database: {where}; sink: {'in process' if args.in_process_sink else 'child process'}")
    print(
        f"queued {args.n} in {queued:.2f} s: {args.n / queued:.0f} messages/s "
        "(render three templates, one case each, one transaction)"
    )
    print(
        f"sent {report.sent} (failed {report.failed}, left {report.pending}) in {took:.2f} s: "
        f"{report.sent / took:.0f} messages/s"
    )
    print(
        f"sender CPU: {cpu:.2f} s, {cpu / max(report.sent, 1) * 1000:.2f} ms per message "
        f"(at most {report.sent / cpu:.0f} messages/s from one core)"
    )
    if not args.in_process_sink:
        print(
            f"sink CPU (aiosmtpd, child process): {sink_cpu:.2f} s, "
            f"{sink_cpu / max(report.sent, 1) * 1000:.2f} ms per message"
        )
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if report.sent != args.n:
        sys.exit(f"expected {args.n} sent, got {report.sent}")


if __name__ == "__main__":
    main()
