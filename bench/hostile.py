"""Hostile mail at volume through the whole pipeline: poll → ledger → process → handler.

    .venv/bin/python bench/hostile.py [-n 3000] [--seed 9] [--db URL] [--big 2]

Writes the malformed corpus (tests/corpus/malformed), `-n` messages mutated by Hypothesis,
the forms tests' hostile PDFs and `--big` messages with 30 MB attachments into a Maildir,
then drains it in a separate worker process, as `pcse poll --once` would. Checks that the
worker exits normally, that every message has a ledger row with a final status and a
reason, and that no row failed with an unexpected error (a crash in our code rather than
a sentence about the message); prints the counts, the rate and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from core.db import Database  # noqa: E402
from intake.models import InboundMessage  # noqa: E402

FINAL = {"processed", "ignored", "duplicate", "failed", "dismissed"}
# How a Python exception is stored on a failed row: "KeyError: 'x'". A failure the
# service understood is stored as a sentence instead.
UNEXPECTED = re.compile(r"^[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b")


@dataclass
class Verdict:
    messages: int
    rows: int
    by_status: Counter[str]
    without_reason: list[int] = field(default_factory=list)
    not_final: list[int] = field(default_factory=list)
    unexpected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.rows == self.messages and not self.without_reason
                and not self.not_final and not self.unexpected)


# --------------------------------------------------------------------------- the corpus


def corpus(count: int, seed: int = 9, big: int = 2,
           pdf_names: list[str] | None = None) -> list[bytes]:
    from bench.mutations import (
        MALFORMED,
        big_attachment,
        generate,
        hostile_pdf_messages,
        with_message_id,
    )

    found = [with_message_id(p.read_bytes(), 900_000 + n) if p.stat().st_size else b""
             for n, p in enumerate(sorted(MALFORMED.glob("*.eml")))]
    found += generate(count, seed)
    found += [with_message_id(m, 800_000 + n)
              for n, m in enumerate(hostile_pdf_messages(pdf_names))]
    found += [with_message_id(big_attachment(30, as_pdf=n % 2 == 0), 700_000 + n)
              for n in range(big)]
    found.append(b"")  # a zero-byte message file
    return found


def fill_maildir(path: Path, messages: list[bytes]) -> None:
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)


def write_config(folder: Path, db_url: str, maildir: Path, pdf_timeout: float = 5) -> Path:
    path = folder / "pcse.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        f'[[mailboxes]]\nname = "hostile"\naddress = "pcse.portalenquiries@nhs.net"\n'
        f'maildir = "{maildir}"\n\n'
        f'[storage]\nraw_dir = "{folder / "raw"}"\n\n'
        f"[limits]\npdf_timeout_seconds = {pdf_timeout}\npdf_memory_mb = 384\n"
    )
    return path


# --------------------------------------------------------------------------- the worker


def drain(config_path: str) -> dict[str, Any]:
    """Run intake rounds until nothing is left; the worker process's own report."""
    from forms.sandbox import POOL
    from intake.pipeline import run_round
    from service.config import load
    from service.context import workflow_env
    from workflow.handler import handle_message

    config = load(config_path)
    db = Database(config.database.url)
    handler = handle_message(workflow_env(config))
    totals: Counter[str] = Counter()
    started = time.monotonic()
    while True:
        report = run_round(db, config, handler).as_json()
        for key in ("fetched", "processed", "duplicates", "ignored", "failed"):
            totals[key] += report[key]
        if not report["fetched"] and not (report["processed"] + report["ignored"]
                                          + report["duplicates"] + report["failed"]):
            break
    return {**totals, "seconds": round(time.monotonic() - started, 2),
            "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
            "pdf_worker_peak_rss_mb": round(POOL.peak_worker_rss_kb / 1024, 1)}


def peak_rss_kb() -> int:
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss: on
    Linux that keeps the parent's size at the fork, however small the program run after."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_worker(config_path: Path, log_path: Path, timeout: float = 3600) -> tuple[int, dict]:
    """Drain in a child process; (exit status, its report)."""
    with log_path.open("ab") as log:
        done = subprocess.run([sys.executable, __file__, "drain", str(config_path)],
                              stdout=subprocess.PIPE, stderr=log, timeout=timeout, cwd=ROOT)
    report = json.loads(done.stdout.decode() or "{}") if done.returncode == 0 else {}
    return done.returncode, report


# --------------------------------------------------------------------------- the verdict


def judge(db: Database, messages: int) -> Verdict:
    with db.transaction() as session:
        rows = session.execute(select(InboundMessage.id, InboundMessage.status,
                                      InboundMessage.outcome, InboundMessage.error)).all()
    verdict = Verdict(messages, len(rows), Counter(r.status for r in rows))
    for row in rows:
        if row.status not in FINAL:
            verdict.not_final.append(row.id)
        reason = row.error if row.status == "failed" else row.outcome
        if not (reason or "").strip():
            verdict.without_reason.append(row.id)
        if row.status == "failed" and UNEXPECTED.match(row.error or ""):
            verdict.unexpected.append((row.id, (row.error or "")[:200]))
    return verdict


def prove(count: int, seed: int, big: int, db_url: str | None, folder: Path,
          pdf_names: list[str] | None = None, say=print) -> tuple[Verdict, dict]:
    from service.schema import upgrade

    messages = corpus(count, seed, big, pdf_names)
    fill_maildir(folder / "maildir", messages)
    size = sum(len(m) for m in messages)
    say(f"hostile corpus: {len(messages)} messages, {size / 1048576:.0f} MB")
    url = db_url or f"sqlite:///{folder / 'pcse.sqlite3'}"
    db = Database(url)
    upgrade(db.engine)
    config = write_config(folder, url, folder / "maildir")
    status, report = run_worker(config, folder / "worker.log")
    if status != 0:
        raise SystemExit(f"the worker died with status {status}; see {folder / 'worker.log'}")
    verdict = judge(db, len(messages))
    db.dispose()
    return verdict, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="mutated messages")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--big", type=int, default=2, help="messages with 30 MB attachments")
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pcse-hostile-") as tmp:
        verdict, report = prove(args.n, args.seed, args.big, args.db, Path(tmp))
        print(f"rows={verdict.rows} of {verdict.messages} messages; "
              + " ".join(f"{k}={v}" for k, v in sorted(verdict.by_status.items())))
        print(f"without_reason={len(verdict.without_reason)} not_final={len(verdict.not_final)} "
              f"unexpected_failures={len(verdict.unexpected)}")
        for row_id, error in verdict.unexpected[:10]:
            print(f"  inbound {row_id}: {error}")
        rate = verdict.messages / report["seconds"] if report.get("seconds") else 0
        print(f"drained in {report.get('seconds')} s ({rate:.0f} messages/s); worker peak RSS "
              f"{report.get('peak_rss_mb')} MB; PDF reader peak RSS "
              f"{report.get('pdf_worker_peak_rss_mb')} MB")
        if not verdict.ok:
            raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "drain":
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        print(json.dumps(drain(sys.argv[2])))
    else:
        main()
