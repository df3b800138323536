"""Hostile mail at volume through the whole pipeline: poll → ledger → process → handler.

    .venv/bin/python bench/hostile.py [-n 3000] [--seed 9] [--db URL] [--big 2]

Writes the malformed corpus (tests/corpus/malformed), `-n` messages mutated by Hypothesis,
the messages built to make parsers slow (bench/hostile_messages.py, `--hostile-kb` of
hostile content each, and MIME nested 10 to 5,000 deep), the forms tests' hostile PDFs and
`--big` messages with 30 MB attachments (and one of 40 MB of text, one of 8 MB of HTML)
into a Maildir, then drains it in a separate worker process, as `pcse poll --once` would.
Checks that the worker exits normally, that every message has a ledger row with a final
status and a reason, and that no row failed with an unexpected error (a crash in our code
rather than a sentence about the message); prints the counts, the rate, the worker's peak
RSS, and the slowest messages to parse (parse_mail) and to read (parse_mail, then the
reader of requests written in emails).
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
        return (
            self.rows == self.messages
            and not self.without_reason
            and not self.not_final
            and not self.unexpected
        )


# --------------------------------------------------------------------------- the corpus


def corpus(
    count: int, seed: int = 9, big: int = 2, pdf_names: list[str] | None = None, hostile_kb: int = 0
) -> list[bytes]:
    return [raw for _, raw in labelled_corpus(count, seed, big, pdf_names, hostile_kb)]


def labelled_corpus(
    count: int, seed: int = 9, big: int = 2, pdf_names: list[str] | None = None, hostile_kb: int = 0
) -> list[tuple[str, bytes]]:
    """Every message of the run, each with a name saying what it is."""
    from bench.hostile_messages import hostile_messages, nesting_messages
    from bench.mutations import (
        MALFORMED,
        big_attachment,
        big_html,
        big_text,
        generate,
        hostile_pdf_messages,
        with_message_id,
    )

    found = [
        (
            f"malformed/{p.name}",
            with_message_id(p.read_bytes(), 900_000 + n) if p.stat().st_size else b"",
        )
        for n, p in enumerate(sorted(MALFORMED.glob("*.eml")))
    ]
    found += [(f"mutated-{n}", raw) for n, raw in enumerate(generate(count, seed))]
    if hostile_kb:
        built = {**hostile_messages(hostile_kb * 1024), **nesting_messages()}
        found += [
            (f"hostile/{name}", with_message_id(raw, 600_000 + n))
            for n, (name, raw) in enumerate(sorted(built.items()))
        ]
    found += [
        (f"hostile-pdf-{n}", with_message_id(m, 800_000 + n))
        for n, m in enumerate(hostile_pdf_messages(pdf_names))
    ]
    found += [
        (f"big-attachment-{n}", with_message_id(big_attachment(30, as_pdf=n % 2 == 0), 700_000 + n))
        for n in range(big)
    ]
    if big:
        found.append(("big-text", with_message_id(big_text(40), 700_100)))
        found.append(("big-html", with_message_id(big_html(8), 700_101)))
    found.append(("empty", b""))  # a zero-byte message file
    return found


def slowest_readings(
    messages: list[tuple[str, bytes]], top: int = 5, budget: float = 30.0
) -> tuple[list[tuple[float, str, int]], list[tuple[float, str, int]]]:
    """The messages slowest to parse, and slowest to read: (CPU seconds, name, size), slowest
    first. Timed here, one at a time, on the messages the worker drains, each under the
    service's default time budget (one that spends it is named so)."""
    from bench.hostile_messages import reading_seconds
    from intake.budget import WATCHDOG, MessageTooSlow

    parses, reads = [], []
    for name, raw in messages:
        started = time.perf_counter()
        try:
            with WATCHDOG.limit(budget):
                parse, read = reading_seconds(raw)
        except MessageTooSlow:
            spent = time.perf_counter() - started
            label = f"{name}, stopped by the {budget:g} s budget"
            parses.append((spent, label, len(raw)))
            reads.append((spent, label, len(raw)))
            continue
        parses.append((parse, name, len(raw)))
        reads.append((parse + read, name, len(raw)))
    return sorted(parses, reverse=True)[:top], sorted(reads, reverse=True)[:top]


def fill_maildir(path: Path, messages: list[bytes]) -> None:
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)


def write_config(folder: Path, db_url: str, maildir: Path, pdf_timeout: float = 5) -> Path:
    from service.config import to_toml

    path = folder / "pcse.toml"
    config = {
        "database": {"url": db_url},
        "mailboxes": [
            {"name": "hostile", "address": "pcse.portalenquiries@nhs.net", "maildir": str(maildir)}
        ],
        "storage": {"raw_dir": str(folder / "raw")},
        "limits": {"pdf_timeout_seconds": pdf_timeout, "pdf_memory_mb": 384},
    }
    path.write_text(to_toml(config), encoding="utf-8")
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
        if not report["fetched"] and not (
            report["processed"] + report["ignored"] + report["duplicates"] + report["failed"]
        ):
            break
    return {
        **totals,
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
        "pdf_worker_peak_rss_mb": round(POOL.peak_worker_rss_kb / 1024, 1),
    }


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
        done = subprocess.run(
            [sys.executable, __file__, "drain", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=timeout,
            cwd=ROOT,
        )
    report = json.loads(done.stdout.decode() or "{}") if done.returncode == 0 else {}
    return done.returncode, report


# --------------------------------------------------------------------------- the verdict


def judge(db: Database, messages: int) -> Verdict:
    with db.transaction() as session:
        rows = session.execute(
            select(
                InboundMessage.id,
                InboundMessage.status,
                InboundMessage.outcome,
                InboundMessage.error,
            )
        ).all()
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


def prove(
    count: int,
    seed: int,
    big: int,
    db_url: str | None,
    folder: Path,
    pdf_names: list[str] | None = None,
    say=print,
    hostile_kb: int = 0,
    messages: list[bytes] | None = None,
) -> tuple[Verdict, dict]:
    from service.schema import upgrade

    if messages is None:
        messages = corpus(count, seed, big, pdf_names, hostile_kb)
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
    parser.add_argument(
        "--hostile-kb",
        type=int,
        default=1024,
        help="KB of hostile content in each message built to be slow to parse",
    )
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temp folder)")
    args = parser.parse_args(argv)
    labelled = labelled_corpus(args.n, args.seed, args.big, hostile_kb=args.hostile_kb)
    parses, reads = slowest_readings(labelled)
    for title, found in (("parse", parses), ("read", reads)):
        print(
            f"slowest to {title} (CPU seconds of the reading thread): "
            + "; ".join(
                f"{seconds:.3f} s {name} ({size / 1048576:.1f} MB)" for seconds, name, size in found
            )
        )
    with tempfile.TemporaryDirectory(prefix="pcse-hostile-") as tmp:
        verdict, report = prove(
            args.n, args.seed, args.big, args.db, Path(tmp), messages=[raw for _, raw in labelled]
        )
        print(
            f"rows={verdict.rows} of {verdict.messages} messages; "
            + " ".join(f"{k}={v}" for k, v in sorted(verdict.by_status.items()))
        )
        print(
            f"without_reason={len(verdict.without_reason)} not_final={len(verdict.not_final)} "
            f"unexpected_failures={len(verdict.unexpected)}"
        )
        for row_id, error in verdict.unexpected[:10]:
            print(f"  inbound {row_id}: {error}")
        rate = verdict.messages / report["seconds"] if report.get("seconds") else 0
        print(
            f"drained in {report.get('seconds')} s ({rate:.0f} messages/s); worker peak RSS "
            f"{report.get('peak_rss_mb')} MB; PDF reader peak RSS "
            f"{report.get('pdf_worker_peak_rss_mb')} MB"
        )
        if not verdict.ok:
            raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "drain":
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        print(json.dumps(drain(sys.argv[2])))
    else:
        main()
