"""Two `pcse run` workers on one PostgreSQL database and one mailbox, against one.

    .venv/bin/python bench/workers.py [-n 1000] [--seed 9] [--pg ADMIN_URL]

Drains the same mixed backlog twice, each time on a fresh database and mailbox: first
with one worker, then with two started together. After the two-worker drain the audit
checks that no message was handled twice (one ledger row and one "handled" log line per
message, across both logs), that no email reached the SMTP server twice, and, with
reminders and expiry due within seconds and both schedulers running them every second,
that each reminder and each expiry happened once. Prints the throughput of each run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.audit import Audit  # noqa: E402
from bench.cpuload import CpuWindow, process_cpu_seconds  # noqa: E402
from bench.crash import start_and_wait  # noqa: E402
from bench.mailmix import build  # noqa: E402
from bench.pgcluster import PG_ADMIN, scratch_database  # noqa: E402
from bench.service_proc import PcseRun  # noqa: E402
from bench.stack import Stack, stack  # noqa: E402
from core.states import WAITING_STATES  # noqa: E402
from workflow.models import CaseEvent  # noqa: E402

HANDLED = re.compile(r"intake\.process: inbound (\d+) \[")
# Reminders after ~4 s, expiry after ~9 s: both happen while the workers run.
WAITING = {str(state) for state in WAITING_STATES}
FAST_CLOCK = {
    "reminder_after_days": 4 / 86400,
    "expire_after_days": 9 / 86400,
    "housekeeping_seconds": 1,
}


@dataclass
class WorkersReport:
    workers: int
    messages: int
    seconds: float
    audit: Audit
    handled_twice: int = 0
    reminders_twice: int = 0
    expiries_twice: int = 0
    reminders: int = 0
    expiries: int = 0
    share: tuple[int, ...] = ()
    machine_busy: float = 0.0  # share of both CPUs busy while draining (every process)
    worker_cpu: tuple[float, ...] = ()  # CPU seconds of each worker while draining

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.audit.ok
            and not self.handled_twice
            and not self.reminders_twice
            and not self.expiries_twice
        )


def handled_ids(runs: list[PcseRun]) -> list[Counter[str]]:
    """Per worker, how many times each inbound message was logged as handled."""
    return [Counter(m.group(1) for m in HANDLED.finditer(run.log())) for run in runs]


def scheduler_doubles(s: Stack) -> tuple[int, int, int, int]:
    """(reminders, reminders sent twice, expiries, expiries done twice) from case history.

    A case that enters a waiting state again (the requester replied, something is still
    missing) may rightly be reminded again; twice means twice within one wait.
    """
    reminders = expiries = reminders_twice = expiries_twice = 0
    reminded: dict[int, set[tuple[str | None, str | None]]] = {}
    expired: set[int] = set()
    with s.db.transaction() as session:
        events = session.execute(
            select(CaseEvent.case_id, CaseEvent.event, CaseEvent.to_state, CaseEvent.data).order_by(
                CaseEvent.id
            )
        ).all()
    for case_id, event, to_state, data in events:
        if event == "reminder":
            reminders += 1
            key = ((data or {}).get("to"), (data or {}).get("token"))
            seen = reminded.setdefault(case_id, set())
            reminders_twice += key in seen
            seen.add(key)
        elif to_state == "expired":
            expiries += 1
            expiries_twice += case_id in expired
            expired.add(case_id)
        elif to_state in WAITING:
            reminded.pop(case_id, None)
    return reminders, reminders_twice, expiries, expiries_twice


def drain(
    s: Stack,
    workers: int,
    count: int,
    seed: int,
    timeout: float = 1800,
    settle: float = 0.0,
    kill_second_after: float | None = None,
) -> WorkersReport:
    """Deliver the backlog, start `workers` services together, wait until all is done.

    With `kill_second_after`, the second worker is killed (SIGKILL) that many seconds in
    and started again: the claims it held come back and nothing is done twice.
    """
    s.deliver(build(count, seed=seed))
    runs = [s.service(f"pcse-run-{n + 1}") for n in range(workers)]
    window = CpuWindow().start()
    started = time.monotonic()
    for run in runs:
        run.start()
    if kill_second_after is not None and workers > 1:
        time.sleep(kill_second_after)
        runs[1].kill()
        start_and_wait(runs[1])
    s.wait_done(timeout, run=runs[0])
    seconds = time.monotonic() - started
    machine_busy = window.busy_share()
    worker_cpu = tuple(process_cpu_seconds(run.pid) if run.pid else 0.0 for run in runs)
    if settle:  # let the schedulers remind and expire what is due
        time.sleep(settle)
        s.wait_done(timeout, run=runs[0])
    for run in runs:
        if run.stop() != 0:
            raise RuntimeError(f"{run.log_path.name} did not stop cleanly")
    per_worker = handled_ids(runs)
    together = sum(per_worker, Counter())
    reminders, reminders_twice, expiries, expiries_twice = scheduler_doubles(s)
    return WorkersReport(
        workers,
        count,
        seconds,
        s.audit(),
        handled_twice=sum(n - 1 for n in together.values() if n > 1),
        reminders=reminders,
        reminders_twice=reminders_twice,
        expiries=expiries,
        expiries_twice=expiries_twice,
        share=tuple(sum(c.values()) for c in per_worker),
        machine_busy=machine_busy,
        worker_cpu=worker_cpu,
    )


def one_run(
    folder: Path, pg_admin: str, workers: int, count: int, seed: int, **settings: object
) -> WorkersReport:
    folder.mkdir(parents=True, exist_ok=True)
    with scratch_database(pg_admin) as url, stack(folder, url, **settings) as s:
        return drain(s, workers, count, seed, settle=12.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="messages in the backlog")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--pg", default=PG_ADMIN)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pcse-workers-") as tmp:
        one = one_run(Path(tmp) / "one", args.pg, 1, args.n, args.seed, **FAST_CLOCK)
        two = one_run(Path(tmp) / "two", args.pg, 2, args.n, args.seed, **FAST_CLOCK)
    for report in (one, two):
        print(
            f"{report.workers} worker(s): {report.messages} messages in "
            f"{report.seconds:.0f} s = {report.rate:.1f} messages/s; "
            f"{report.audit.line()}; handled per worker {list(report.share)}"
        )
    print(
        f"two workers: handled_twice={two.handled_twice} reminders={two.reminders} "
        f"reminders_twice={two.reminders_twice} expiries={two.expiries} "
        f"expiries_twice={two.expiries_twice}"
    )
    print(f"speed-up with two workers: {two.rate / one.rate:.2f}x" if one.rate else "")
    for report in (one, two):
        cpu = sum(report.worker_cpu)
        print(
            f"{report.workers} worker(s): both CPUs {report.machine_busy:.0%} busy while "
            f"draining (Dovecot, PostgreSQL, the sink, the workers and anything else on the "
            f"machine); the workers used {cpu:.0f} CPU-s of the {2 * report.seconds:.0f} the "
            f"machine had, {cpu * 1000 / max(report.messages, 1):.1f} ms per message"
        )
    if two.machine_busy > 0.9:
        print(
            "the machine's two CPUs were all but saturated with two workers: a second worker "
            "can only take CPU time from the first, from PostgreSQL and from Dovecot here; "
            "on a machine with more cores (or PostgreSQL elsewhere) it adds capacity"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")
    if not (one.ok and two.ok):
        print(one.audit.details())
        print(two.audit.details())
        raise SystemExit(1)


if __name__ == "__main__":
    main()
