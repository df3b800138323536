"""From a request's arrival in the inbox to its acknowledgement reaching the mail server.

    .venv/bin/python bench/latency.py [--n 40] [--db sqlite|postgres] [--gap 0.3]

Starts `pcse run` as its own process with the default schedule (IMAP IDLE on, polling
every 30 s, the outbox swept every 10 s) against a real Dovecot, an aiosmtpd sink and a
fresh database, then appends plain requests to the inbox one at a time. For each it
times from the moment the APPEND returned to the moment the sink accepted the first
email to that requester, waits `--gap` seconds, and goes on. Prints the median, the
95th percentile and the maximum, with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crash import start_and_wait  # noqa: E402
from bench.dovecot import plain_request  # noqa: E402
from bench.pgcluster import database_url  # noqa: E402
from bench.stack import Stack, stack  # noqa: E402
from service.config import ScheduleConfig  # noqa: E402

DEFAULTS = ScheduleConfig()


def reached(s: Stack, address: str) -> bool:
    return any(address in m.rcpt_tos for m in s.sink.messages)


def one(s: Stack, number: int, timeout: float) -> float:
    """Seconds from appending request `number` to its first email at the sink."""
    message = plain_request(number)
    address = f"practice{number}@example.nhs.uk"
    s.account.append([message])
    landed = time.monotonic()
    while not reached(s, address):
        if time.monotonic() - landed > timeout:
            raise TimeoutError(f"no email to request {number} within {timeout:.0f} s")
        time.sleep(0.002)
    return time.monotonic() - landed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="requests, one at a time")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between requests")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    schedule = {
        "poll_seconds": DEFAULTS.poll_seconds,
        "outbox_seconds": DEFAULTS.outbox_seconds,
        "idle": DEFAULTS.idle,
    }
    with (
        tempfile.TemporaryDirectory(prefix="pcse-latency-") as tmp,
        database_url(args.db, Path(tmp), "pcse_latency_") as url,
        stack(Path(tmp), url, organisations_count=50, **schedule) as s,
    ):
        run = s.service()
        start_and_wait(run)
        time.sleep(2)  # the IDLE watcher is connected and waiting
        one(s, 0, args.timeout)  # the first request warms the process up; not counted
        times = []
        for number in range(1, args.n + 1):
            times.append(one(s, number, args.timeout))
            time.sleep(args.gap)
        load = os.getloadavg()
        run.stop()
    print(
        f"pcse run, default schedule (IDLE {'on' if DEFAULTS.idle else 'off'}, poll every "
        f"{DEFAULTS.poll_seconds:g} s, outbox sweep every {DEFAULTS.outbox_seconds:g} s), "
        f"{args.db}, {len(times)} requests one at a time"
    )
    print(
        f"arrival to acknowledgement at the SMTP server: median {statistics.median(times):.3f} s, "
        f"95th percentile {percentile(times, 0.95):.3f} s, max {max(times):.3f} s"
    )
    print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
