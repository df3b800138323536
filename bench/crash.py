"""Crash recovery: SIGKILL `pcse run` at random moments while it drains a backlog.

    .venv/bin/python bench/crash.py [-n 2000] [--kills 20] [--seed 9] [--pg ADMIN_URL]

Loads a backlog of mixed messages (email requests, PDF forms, replies on earlier
requests, out-of-office replies and bounces) into a Dovecot started here, runs `pcse run`
on a scratch PostgreSQL database with an SMTP sink, kills it (and its PDF readers) with
SIGKILL after a random while, restarts it, and does that `--kills` times; then lets the
last start finish the work and stops it with SIGTERM. The audit then checks that every
message has exactly one ledger row with an outcome, that no message opened two cases,
that no email reached the SMTP server twice, and that every case's history is a chain of
allowed moves. Prints `lost=… duplicated_cases=… duplicated_emails=… kills=N` and the
throughput.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.audit import Audit  # noqa: E402
from bench.mailmix import build  # noqa: E402
from bench.pgcluster import PG_ADMIN, scratch_database  # noqa: E402
from bench.service_proc import PcseRun  # noqa: E402
from bench.stack import Stack, stack  # noqa: E402

STARTED = "INFO service.runner: pcse run: "


@dataclass
class CrashReport:
    audit: Audit
    kills: int
    kills_while_busy: int
    seconds: float
    messages: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return f"{self.audit.line()} kills={self.kills}"


def wait_started(run: PcseRun, before: int, timeout: float = 60) -> None:
    """Until the service logs a start line more than the `before` its log held."""
    deadline = time.monotonic() + timeout
    while run.log().count(STARTED) <= before:
        if time.monotonic() > deadline or not run.alive:
            raise RuntimeError(f"pcse run did not start; see {run.log_path}")
        time.sleep(0.05)


def start_and_wait(run: PcseRun) -> None:
    """Start and wait for the start line (a SIGTERM before it would find no handler)."""
    before = run.log().count(STARTED)
    run.start()
    wait_started(run, before)


def handled(s: Stack, left: dict[str, int]) -> int:
    """Messages recorded and processed, from what `s.remaining()` returned."""
    return len(s.delivered) - left["unrecorded"] - left["pending"]


def wait_for_progress(s: Stack, run: PcseRun, amount: int, timeout: float) -> None:
    """Until `amount` more messages are handled, all work is done, or `timeout` passes."""
    start = handled(s, s.remaining())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.alive:
        left = s.remaining()
        if handled(s, left) - start >= amount or not any(left.values()):
            return
        time.sleep(0.05)


def kill_repeatedly(
    s: Stack,
    kills: int,
    rng: random.Random,
    low: float,
    high: float,
    say=print,
    share: int | None = None,
) -> int:
    """Start, wait a random while, SIGKILL; `kills` times. Returns kills that hit work.

    With `share`, each run first handles a random 1..`share` messages and is then killed
    within `low` seconds, so that the kills land in the work however fast the machine is;
    without it, each run is killed after `low`..`high` seconds.
    """
    run = s.service()
    busy = 0
    for number in range(1, kills + 1):
        before = run.log().count(STARTED)
        run.start()
        if share is not None:
            wait_started(run, before)
            wait_for_progress(s, run, rng.randint(1, share), timeout=high)
            time.sleep(rng.uniform(0, low))
        else:
            if rng.random() < 0.8:  # most kills once it is working; some while it starts
                wait_started(run, before)
            time.sleep(rng.uniform(low, high))
        left = s.remaining()
        run.kill()
        working = any(left.values())
        busy += working
        say(
            f"kill {number:2d} after {time.monotonic() - run.started_at:4.1f} s; "
            f"left: inbox {left['inbox']}, unrecorded {left['unrecorded']}, "
            f"pending {left['pending']}, outbox {left['outbox']}"
        )
    return busy


def prove(
    s: Stack,
    count: int,
    kills: int,
    *,
    seed: int = 9,
    low: float = 0.2,
    high: float = 5.0,
    drain_timeout: float = 1800,
    say=print,
) -> CrashReport:
    rng = random.Random(seed)
    backlog = build(count, seed=seed)
    s.deliver(backlog)
    say(
        f"backlog: {count} messages in the inbox "
        + ", ".join(f"{k} {v}" for k, v in sorted(backlog.kinds.items()))
    )
    started = time.monotonic()
    busy = kill_repeatedly(s, kills, rng, low, high, say=say)
    last = s.service("pcse-run-final")
    start_and_wait(last)
    s.wait_done(drain_timeout, run=last)
    seconds = time.monotonic() - started
    status = last.stop()
    if status != 0:
        raise RuntimeError(f"pcse run did not stop cleanly ({status}); see {last.log_path}")
    return CrashReport(s.audit(), kills, busy, seconds, count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages in the backlog")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--min-delay", type=float, default=0.2)
    parser.add_argument("--max-delay", type=float, default=5.0)
    parser.add_argument(
        "--pg", default=PG_ADMIN, help="PostgreSQL server to make the scratch database on"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="pcse-crash-"))
    with scratch_database(args.pg) as url, stack(folder, url) as s:
        report = prove(
            s, args.n, args.kills, seed=args.seed, low=args.min_delay, high=args.max_delay
        )
    print(report.audit.details())
    print(report.line())
    print(
        f"throughput: {report.messages} messages in {report.seconds:.0f} s with "
        f"{report.kills} kills ({report.kills_while_busy} while busy): "
        f"{report.rate:.1f} messages/s"
    )
    if args.keep:
        print(f"logs in {folder}")
    else:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    if not report.audit.ok or report.audit.invalid_states:
        for problem in report.audit.invalid_states[:10]:
            print(f"  {problem}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
