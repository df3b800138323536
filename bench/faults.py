"""Faults while `pcse run` drains a backlog: the mail server, the SMTP server, the database
and the disk each fail for a while, then come back.

    .venv/bin/python bench/faults.py [dovecot|smtp|postgres|disk ...] [-n 300] [--outage 60]

- dovecot: the IMAP server is stopped mid-drain (every connection drops) and started again,
  and the rest of the mail arrives;
- smtp: the SMTP server answers every transaction with 421 for `--outage` seconds;
- postgres: a private PostgreSQL cluster under the service is restarted mid-drain, once
  cleanly and once as after a crash (`pg_ctl -m immediate`);
- disk: the raw store is a small tmpfs that fills up mid-drain; then it is made larger.

In each, the service must stay up (or exit and be restarted cleanly), say what is wrong
in its log and in `pcse status`, and, once the fault is over, finish the work with
nothing lost and nothing done twice (bench/audit.py). Prints one line per fault.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.audit import Audit  # noqa: E402
from bench.mailmix import Backlog, build  # noqa: E402
from bench.pgcluster import PG_ADMIN, PgCluster, running_cluster, scratch_database  # noqa: E402
from bench.service_proc import PcseRun, pcse  # noqa: E402
from bench.stack import Stack, stack  # noqa: E402
from core.timeutil import utcnow  # noqa: E402
from notifications.models import OutboxMessage  # noqa: E402


class FaultUnavailable(RuntimeError):
    """This machine cannot stage the fault (for example, mounting is not permitted)."""


@dataclass
class FaultReport:
    fault: str
    audit: Audit
    seconds: float
    restarts: int = 0
    status_during: dict[str, Any] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    leftovers: int = 0  # partly written files left in the raw store

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.leftovers

    def line(self) -> str:
        return (
            f"{self.fault}: {self.audit.line()} restarts={self.restarts} "
            f"leftover_files={self.leftovers} drained_in={self.seconds:.0f}s"
        )


# --------------------------------------------------------------------------- helpers


def status(s: Stack) -> dict[str, Any]:
    """`pcse status --json`, as an operator would ask it during the fault."""
    done = pcse(s.config, "status", "--json", timeout=60)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-500:]}
    return json.loads(done.stdout)


def wait_until(
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.3,
    detail: Callable[[], str] | None = None,
) -> None:
    """`detail` says, when time runs out, what the state was (so a failure can be read)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # the database may be the thing that is down
            if probe():
                return
        if time.monotonic() > deadline:
            said = f" ({detail()})" if detail is not None else ""
            raise TimeoutError(f"timed out waiting for {what}{said}")
        time.sleep(interval)


def _safe_remaining(s: Stack) -> str:
    try:
        return str(s.remaining())
    except Exception as exc:  # the database may be the thing that is down
        return f"remaining unknown: {type(exc).__name__}"


def _progress_beyond(s: Stack, before: int) -> tuple[Callable[[], bool], Callable[[], str]]:
    """A probe for more done than `before`, and what to say if it never is."""
    return (
        lambda: progress(s) > before,
        lambda: f"done before: {before}; now {_safe_remaining(s)}",
    )


def _part(backlog: Backlog, start: int, end: int) -> Backlog:
    return Backlog(backlog.messages[start:end], message_ids=backlog.message_ids[start:end])


def progress(s: Stack) -> int:
    """Ledger rows no longer pending."""
    left = s.remaining()
    return len(s.delivered) - left["unrecorded"] - left["pending"]


def matching_lines(run: PcseRun, *needles: str) -> list[str]:
    return [line for line in run.log().splitlines() if any(n in line for n in needles)]


def finish(
    s: Stack, run: PcseRun, fault: str, started: float, timeout: float, **extra: Any
) -> FaultReport:
    """Wait for the work to be done, keeping the service alive; stop it; audit."""
    restarts = 0
    deadline = time.monotonic() + timeout
    while True:
        if not run.alive:  # exited on its own: restart it, as systemd would
            restarts += 1
            run.start()
        with contextlib.suppress(Exception):
            if s.done():
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{fault}: not done after {timeout:.0f} s: {s.remaining()}")
        time.sleep(0.5)
    seconds = time.monotonic() - started
    if run.stop() != 0:
        raise RuntimeError(f"{fault}: pcse run did not stop cleanly; see {run.log_path}")
    return FaultReport(fault, s.audit(), seconds, restarts, **extra)


def start_draining(s: Stack, backlog: Backlog, at_least: int) -> tuple[PcseRun, float]:
    s.deliver(backlog)
    run = s.service()
    started = time.monotonic()
    run.start()
    wait_until(lambda: progress(s) >= at_least, 300, f"{at_least} messages done")
    return run, started


# --------------------------------------------------------------------------- the faults


def dovecot_restart(
    s: Stack, count: int, outage: float, seed: int = 5, timeout: float = 900
) -> FaultReport:
    """Half the backlog is in the inbox at the start; the server is stopped as soon as the
    first messages are recorded (usually just after that first poll, fetching five at a
    time), every connection dropping; the other half arrives once it is back."""
    backlog = build(count, seed=seed)
    half = count // 2
    s.write_config(batch_size=5)
    s.deliver(_part(backlog, 0, half))
    run = s.service()
    started = time.monotonic()
    run.start()
    wait_until(lambda: s.remaining()["unrecorded"] < half, 120, "the first poll")
    s.dovecot.stop()
    stopped = time.monotonic()
    try:
        wait_until(
            lambda: bool(status(s)["mailboxes"][0]["last_error"]),
            outage + 120,
            "pcse status to show the mailbox error",
        )
        during = status(s)
        time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
        if not run.alive:
            raise RuntimeError("pcse run died while the IMAP server was down")
    finally:
        s.dovecot.start()
    s.deliver(_part(backlog, half, count))
    return finish(
        s,
        run,
        "dovecot",
        started,
        timeout,
        status_during=during,
        log_lines=matching_lines(run, "retrying in", "Could not reach", "Lost mailbox"),
    )


def smtp_refusing(
    s: Stack,
    count: int,
    outage: float,
    seed: int = 6,
    timeout: float = 900,
    skip_backoff: bool = False,
) -> FaultReport:
    """With `skip_backoff`, once the server is back the rows its 421s sent into backoff
    (a minute at least) are made due at once, as if that minute had passed."""
    # The outage starts with the first email pcse tries to send, however slowly it starts.
    s.sink.refuse_for(outage, from_first=True)
    run, started = start_draining(s, build(count, seed=seed), at_least=1)
    wait_until(lambda: s.sink.refused > 0, 120, "the SMTP server to refuse")
    refusing_until = time.monotonic() + outage
    wait_until(
        lambda: bool(status(s).get("outbox_last_error")),
        outage + 60,
        "pcse status to show why the outbox is waiting",
    )
    during = status(s)
    if not run.alive:
        raise RuntimeError("pcse run died while the SMTP server refused")
    if skip_backoff:
        time.sleep(max(0.0, refusing_until - time.monotonic()) + 0.5)
        with s.db.transaction() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))
                .values(next_attempt_at=utcnow())
            )
    return finish(
        s,
        run,
        "smtp",
        started,
        timeout,
        status_during=during,
        log_lines=matching_lines(run, "will retry at", "421"),
    )


def postgres_restart(
    s: Stack, cluster: PgCluster, count: int, outage: float, seed: int = 7, timeout: float = 900
) -> FaultReport:
    """A clean restart, then one as after a crash, each while messages are being worked.
    The backlog arrives in three parts, the later two just after each restart, so that
    there is work to go on with even when the earlier part was finished before the
    restart (with batches of five, a restart usually lands mid-drain as well)."""
    backlog = build(count, seed=seed)
    third = count // 3
    parts = [(0, third), (third, 2 * third), (2 * third, count)]
    s.write_config(batch_size=5)
    run, started = start_draining(s, _part(backlog, *parts[0]), at_least=5)
    for mode, part in zip(("fast", "immediate"), parts[1:], strict=True):
        before = progress(s)
        cluster.restart(mode, pause=outage / 2)
        s.deliver(_part(backlog, *part))
        if not run.alive:
            raise RuntimeError(f"pcse run died when PostgreSQL restarted ({mode})")
        went_on, detail = _progress_beyond(s, before)
        wait_until(went_on, 300, f"work to go on after the {mode} restart", detail=detail)
    during = status(s)
    return finish(
        s,
        run,
        "postgres",
        started,
        timeout,
        status_during=during,
        log_lines=matching_lines(
            run,
            "the database is unavailable",
            "The poll failed: OperationalError",
            "job outbox failed",
        ),
    )


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise FaultUnavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def disk_full(
    s: Stack, count: int, outage: float, seed: int = 8, size_kb: int = 600, timeout: float = 900
) -> FaultReport:
    with small_tmpfs(Path(s.settings.raw_dir), size_kb) as raw:
        run, started = start_draining(s, build(count, seed=seed), at_least=0)
        wait_until(
            lambda: "space" in (status(s)["mailboxes"][0]["last_error"] or ""),
            120,
            "pcse status to say the disk is full",
        )
        during = status(s)
        time.sleep(outage)
        if not run.alive:
            raise RuntimeError("pcse run died when the disk filled up")
        subprocess.run(["mount", "-o", "remount,size=256m", str(raw)], check=True)
        report = finish(
            s,
            run,
            "disk",
            started,
            timeout,
            status_during=during,
            log_lines=matching_lines(run, "No space", "full"),
        )
        report.leftovers = len(list(raw.rglob(".*.tmp")))
        return report


# --------------------------------------------------------------------------- main


def run_fault(name: str, folder: Path, count: int, outage: float) -> FaultReport:
    folder.mkdir(parents=True, exist_ok=True)
    if name == "postgres":
        with running_cluster() as cluster:
            url = cluster.create_database("pcse")
            with stack(folder, url, organisations_count=60) as s:
                return postgres_restart(s, cluster, count, outage)
    with scratch_database(PG_ADMIN) as url, stack(folder, url, organisations_count=60) as s:
        if name == "dovecot":
            return dovecot_restart(s, count, outage)
        if name == "smtp":
            return smtp_refusing(s, count, outage)
        if name == "disk":
            return disk_full(s, count, outage)
    raise ValueError(name)


FAULTS = ("dovecot", "smtp", "postgres", "disk")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "faults", nargs="*", metavar="FAULT", help=f"some of {', '.join(FAULTS)} (default: all)"
    )
    parser.add_argument("-n", type=int, default=300, help="messages in each backlog")
    parser.add_argument("--outage", type=float, default=60, help="seconds each fault lasts")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args(argv)
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    failed = False
    for name in args.faults or FAULTS:
        folder = Path(tempfile.mkdtemp(prefix=f"pcse-fault-{name}-"))
        try:
            report = run_fault(name, folder, args.n, args.outage)
        except FaultUnavailable as exc:
            print(f"{name}: skipped: {exc}")
            continue
        print(report.line())
        print(f"  during the fault, pcse status said: {json.dumps(_brief(report.status_during))}")
        for line in report.log_lines[:3]:
            print(f"  log: {line[:160]}")
        if not report.ok:
            failed = True
            print(report.audit.details())
        if args.keep:
            print(f"  logs in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise SystemExit(1)


def _brief(document: dict[str, Any]) -> dict[str, Any]:
    keys = ("messages_pending", "messages_failed", "outbox_pending", "outbox_last_error", "error")
    found = {k: document[k] for k in keys if k in document}
    if document.get("mailboxes"):
        found["last_error"] = document["mailboxes"][0].get("last_error")
    return found


if __name__ == "__main__":
    main()
