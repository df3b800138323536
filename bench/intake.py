"""Intake benchmark: drain a backlog from a real Dovecot with `pcse poll --once` on SQLite.

    .venv/bin/python bench/intake.py [--messages 5000] [--small 1000]

Appends N plain requests to a fresh Dovecot account, measures the raw IMAP fetch rate
(BODY.PEEK[] in batches of 100 over one connection, nothing stored), then drains the
backlog with `pcse poll --once --json` in a child process, and prints emails per second
and the child's peak RSS. It does the same for a smaller backlog, so the two peaks show
whether memory grows with the backlog. Ledger timestamps split the drain into its
fetch-and-store phase and its processing phase. Both backlogs are drained a second time
by intake alone (the same round, with a handler that does nothing), which shows intake's
own cost apart from the workflow's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.dovecot import (  # noqa: E402
    DovecotServer,
    ImapAccount,
    TokenIntrospection,
    plain_request,
)
from bench.measure import run_measured  # noqa: E402
from core.db import Database  # noqa: E402
from intake.models import InboundMessage  # noqa: E402
from service.config import to_toml  # noqa: E402
from service.schema import upgrade  # noqa: E402

PCSE = str(Path(sys.executable).with_name("pcse"))


def raw_fetch_rate(account: ImapAccount) -> float:
    client = account.client()
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        start = time.perf_counter()
        for offset in range(0, len(uids), 100):
            client.fetch(uids[offset : offset + 100], ["BODY.PEEK[]"])
        return len(uids) / (time.perf_counter() - start)
    finally:
        client.logout()


def write_config(work: Path, account: ImapAccount) -> Path:
    box = account.mailbox_config()
    config = work / "pcse.toml"
    mailbox = {
        "name": "enquiries",
        "address": "pcse.portalenquiries@nhs.net",
        "imap_host": "127.0.0.1",
        "imap_port": box.imap_port,
        "imap_ssl": False,
        "username": box.username,
        "password_env": "BENCH_IMAP_PASSWORD",
    }
    data = {
        "database": {"url": f"sqlite:///{work / 'pcse.sqlite3'}"},
        "mailboxes": [mailbox],
        "storage": {"raw_dir": str(work / "raw")},
    }
    config.write_text(to_toml(data), encoding="utf-8")
    return config


def phases(db: Database, since_id: int = 0) -> tuple[float, float]:
    """Seconds spent fetching and storing, and processing, from the ledger's timestamps
    (of the rows after `since_id`)."""
    with db.transaction() as session:
        first_in, last_in, first_done, last_done = session.execute(
            select(
                func.min(InboundMessage.received_at),
                func.max(InboundMessage.received_at),
                func.min(InboundMessage.processed_at),
                func.max(InboundMessage.processed_at),
            ).where(InboundMessage.id > since_id)
        ).one()

    def seconds(a: datetime | None, b: datetime | None) -> float:
        return (b - a).total_seconds() if a and b else float("nan")

    return seconds(first_in, last_in), seconds(first_done, last_done)


def noted(session, inbound, mail, classification) -> str:
    """A handler that does no work of its own: what is left is intake's cost."""
    return f"Read {len(mail.text)} characters from {mail.sender}."


def drain_intake_only(config_path: str) -> None:
    """Child process: the same round as `pcse poll --once` with a handler that does nothing,
    so that intake's own cost (fetch, store, record, move, parse, classify, commit) shows
    apart from the workflow's."""
    from intake.pipeline import run_round
    from service.config import load

    config = load(config_path)
    db = Database(config.database.url)
    print(json.dumps(run_round(db, config, noted).as_json()))


def drain(
    server: DovecotServer, count: int, work: Path, *, intake_only: bool = False
) -> dict[str, float]:
    account = server.add_user()
    for start in range(0, count, 500):
        account.append([plain_request(i) for i in range(start, min(count, start + 500))])
    fetch_rate = raw_fetch_rate(account)
    config = write_config(work, account)
    db = Database(f"sqlite:///{work / 'pcse.sqlite3'}")
    upgrade(db.engine)
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    env["BENCH_IMAP_PASSWORD"] = account.password
    command = (
        [sys.executable, __file__, "--drain-intake-only", str(config)]
        if intake_only
        else [PCSE, "--config", str(config), "poll", "--once", "--json"]
    )
    run = run_measured(command, env=env)
    elapsed = run.seconds
    result = json.loads(run.output)
    left = account.count("INBOX")
    fetch_phase, process_phase = phases(db)
    db.dispose()
    return {
        "messages": count,
        "seconds": elapsed,
        "emails_per_second": count / elapsed,
        "peak_rss_mb": run.peak_rss_mb,
        "cpu_ms_per_email": run.cpu_seconds * 1000 / count,
        "raw_fetch_per_second": fetch_rate,
        "fetch_store_per_second": count / fetch_phase if fetch_phase else float("nan"),
        "process_per_second": count / process_phase if process_phase else float("nan"),
        "fetched": result["fetched"],
        "processed": result["processed"],
        "failed": result["failed"],
        "left_in_inbox": left,
    }


def report(figures: dict[str, float]) -> None:
    print(
        f"  backlog {figures['messages']:>6}: drained in {figures['seconds']:.1f} s = "
        f"{figures['emails_per_second']:.0f} emails/s; peak RSS "
        f"{figures['peak_rss_mb']:.0f} MB; CPU {figures['cpu_ms_per_email']:.2f} ms/email"
    )
    print(
        f"      raw IMAP fetch {figures['raw_fetch_per_second']:.0f} msg/s; fetch+store phase "
        f"{figures['fetch_store_per_second']:.0f} msg/s; processing phase "
        f"{figures['process_per_second']:.0f} msg/s"
    )
    print(
        f"      fetched {figures['fetched']}, processed {figures['processed']}, failed "
        f"{figures['failed']}, left in INBOX {figures['left_in_inbox']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument(
        "--small",
        type=int,
        default=1000,
        help="a smaller backlog drained first, to compare peak memory",
    )
    parser.add_argument("--drain-intake-only", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_intake_only:
        drain_intake_only(args.drain_intake_only)
        return
    root = Path(tempfile.mkdtemp(prefix="pcse-dovecot-"))
    root.chmod(0o755)
    introspection = TokenIntrospection()
    server = DovecotServer(root, introspection)
    server.write_config()
    server.start()
    try:
        print(
            f"pcse intake benchmark: Dovecot on 127.0.0.1:{server.port}, SQLite, "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        for title, intake_only in (
            ("pcse poll --once (the workflow handles each message):", False),
            ("intake alone (the handler does nothing):", True),
        ):
            print(title)
            for count in (args.small, args.messages):
                if count <= 0:
                    continue
                work = Path(tempfile.mkdtemp(prefix="pcse-bench-"))
                try:
                    report(drain(server, count, work, intake_only=intake_only))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        server.stop()
        introspection.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
