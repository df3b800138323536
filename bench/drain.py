"""A backlog drained as an operator would drain it, timed from outside.

    .venv/bin/python bench/drain.py [--n 2000] [--db sqlite|postgres]
        [--mix plain|outlook|mixed] [--service]

Everything runs as its own process against real servers: Dovecot, an aiosmtpd sink (a
child process), and a fresh SQLite file or PostgreSQL database loaded with a generated
directory. N requests are appended to the inbox; a bare imapclient fetch of them
(BODY.PEEK[] in batches of 100 over one connection, nothing stored) sets the yardstick;
then `pcse poll --once --json` and `pcse outbox send --json` run one after the other,
each timed from outside with its CPU time (wait4) and peak memory (bench/measure.py).
The ledger's timestamps
split the poll into fetching and recording, and processing (the two overlap).

`--service` runs `pcse run` instead, on the default schedule (IMAP IDLE, the outbox woken
by each commit), from its start until every message is recorded and processed and every
email it queued has left (SIGTERM then): the service as an operator leaves it running,
with fetching, processing and sending overlapping in one process. It also prints how many
of the emails left while intake was still working the backlog (before its last message was
processed): how much sending overlapped processing.

`--mix plain` is N plain email requests; `--mix outlook` is the same requests as Outlook on
NHSmail sends them (bench/dovecot.py's outlook_request: relays' and Exchange's headers, a
plain and an HTML body, a logo in the signature; 22 KB each); `--mix mixed` is
bench/mailmix.py's backlog: email requests, PDF forms, replies on earlier requests,
out-of-office answers, bounces, delivered with a passing Authentication-Results from a
receiving server the service trusts, so that requests for organisations in the directory
go to their approvers; the approvers' answers (APPROVE, quoting the request) then make a
second backlog, drained and timed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.dovecot import discard_dovecot, outlook_request, plain_request, start_dovecot  # noqa: E402
from bench.intake import phases, raw_fetch_rate  # noqa: E402
from bench.mailmix import INBOX, build, load_directory, organisations  # noqa: E402
from bench.measure import machine_cpu_seconds, run_measured, run_until  # noqa: E402
from bench.pgcluster import database_url  # noqa: E402
from bench.service_proc import PCSE, Settings, write_config  # noqa: E402
from core.db import Database  # noqa: E402
from demo.mail import stamp  # noqa: E402
from intake.models import InboundMessage  # noqa: E402
from notifications.models import OutboxMessage  # noqa: E402
from notifications.sink import free_port  # noqa: E402
from service.schema import upgrade  # noqa: E402


@dataclass
class Stage:
    name: str
    seconds: float
    cpu: float
    peak_rss_mb: float
    output: dict


def timed(name: str, config: Path, *args: str) -> Stage:
    """Run one `pcse` command to completion; its wall time, CPU time and peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    run = run_measured([PCSE, "--config", str(config), *args], env=env, cwd=ROOT)
    if run.exit_code not in (0, 1):
        raise RuntimeError(f"pcse {' '.join(args)} failed")
    return Stage(
        name, run.seconds, run.cpu_seconds, run.peak_rss_mb, json.loads(run.output or b"{}")
    )


def served(config: Path, db: Database, expected: int) -> Stage:
    """`pcse run` until `expected` ledger rows are processed and nothing is left to send."""
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}

    def drained() -> bool:
        with db.transaction() as session:
            rows = session.execute(
                select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
            ).all()
            unsent = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            )
        counts = dict(rows)
        return sum(counts.values()) >= expected and not counts.get("pending") and not unsent

    run = run_until(
        [PCSE, "--config", str(config), "run"], env=env, done=drained, timeout=3600, cwd=ROOT
    )
    return Stage("run", run.seconds, run.cpu_seconds, run.peak_rss_mb, {})


def last_ledger_id(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.max(InboundMessage.id))) or 0


def outbox_counts(db: Database) -> dict[str, int]:
    """Outbox rows by status, then by purpose."""
    with db.transaction() as session:
        found: dict[str, int] = {}
        for column in (OutboxMessage.status, OutboxMessage.purpose):
            found.update(session.execute(select(column, func.count()).group_by(column)).all())
    return found


@contextmanager
def sink_process() -> Iterator[int]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "notifications.sink", "--port", str(port), "--discard"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # "listening on …"
        yield port
    finally:
        child.terminate()
        child.wait(10)


AUTHSERV_ID = "mx.bench.pcse.local"


def backlog(mix: str, n: int) -> tuple[list[bytes], dict[str, int]]:
    if mix == "plain":
        return [plain_request(i) for i in range(n)], {"email_request": n}
    if mix == "outlook":
        return [outlook_request(i, logo=True) for i in range(n)], {"outlook_request": n}
    made = build(n, seed=9, orgs=organisations(200))
    return [stamp(m, AUTHSERV_ID) for m in made.messages], dict(made.kinds)


def approval_answers(db: Database) -> list[bytes]:
    """Each approval request answered APPROVE by its approver, quoting it, as delivered."""
    with db.transaction() as session:
        asked = session.scalars(
            select(OutboxMessage).where(OutboxMessage.purpose == "approval_request")
        ).all()
    answers = []
    for row in asked:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = row.to_address
        msg["To"] = INBOX
        msg["Subject"] = f"RE: {row.subject}"
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=row.to_address.rsplit("@", 1)[1])
        msg["In-Reply-To"] = row.message_id
        msg["References"] = row.message_id
        quoted = "\n".join(f"> {line}" for line in row.body_text.splitlines())
        msg.set_content(f"APPROVE\n\nThank you\n\n{quoted}\n")
        answers.append(stamp(msg.as_bytes(), AUTHSERV_ID))
    return answers


def drain(args: argparse.Namespace, folder: Path) -> None:
    messages, kinds = backlog(args.mix, args.n)
    dovecot = start_dovecot()
    try:
        with database_url(args.db, folder, "pcse_drain_") as url, sink_process() as smtp_port:
            db = Database(url)
            upgrade(db.engine)
            load_directory(db, organisations(200), folder / "directory")
            account = dovecot.add_user()
            for start in range(0, len(messages), 500):
                account.append(messages[start : start + 500])
            settings = Settings(
                db_url=url,
                imap_port=dovecot.port,
                imap_user=account.username,
                imap_password=account.password,
                smtp_port=smtp_port,
                raw_dir=folder / "raw",
                max_replies_per_hour=1_000_000,
                authserv_id=AUTHSERV_ID if args.mix == "mixed" else None,
            )
            if args.service:  # the schedule an operator runs `pcse run` on
                settings = replace(settings, poll_seconds=30, outbox_seconds=10)
            config = write_config(folder / "pcse.toml", settings)
            bare = raw_fetch_rate(account)
            load_before = os.getloadavg()[0]
            machine_before = machine_cpu_seconds()
            if args.service:
                service = served(config, db, len(messages))
                report_service(args.db, kinds, bare, service, outbox_counts(db))
                report_overlap(db)
                machine = machine_cpu_seconds() - machine_before
                report_machine(len(messages), service.seconds, machine)
                answers = approval_answers(db) if args.mix == "mixed" else []
                if answers:
                    account.append(answers)
                    again = served(config, db, len(messages) + len(answers))
                    report_service(args.db, {"approval_answer": len(answers)}, bare, again, {})
                print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
                db.dispose()
                return
            poll = timed("poll", config, "poll", "--once", "--json")
            send = timed("send", config, "outbox", "send", "--json")
            machine = machine_cpu_seconds() - machine_before
            load_after = os.getloadavg()[0]
            fetch_phase, process_phase = phases(db)
            queued = outbox_counts(db)
            left = account.count("INBOX")
            report(args.db, kinds, bare, poll, send, fetch_phase, process_phase, queued, left)
            report_machine(len(messages), poll.seconds + send.seconds, machine)
            answers = approval_answers(db) if args.mix == "mixed" else []
            if answers:
                first_backlog_ends = last_ledger_id(db)
                account.append(answers)
                poll = timed("poll", config, "poll", "--once", "--json")
                send = timed("send", config, "outbox", "send", "--json")
                load_after = os.getloadavg()[0]
                report(
                    args.db,
                    {"approval_answer": len(answers)},
                    bare,
                    poll,
                    send,
                    *phases(db, since_id=first_backlog_ends),
                    {k: v - queued.get(k, 0) for k, v in outbox_counts(db).items()},
                    account.count("INBOX"),
                )
            db.dispose()
    finally:
        discard_dovecot(dovecot)
    print(f"load average {load_before:.1f} before, {load_after:.1f} after, {os.cpu_count()} cores")


def report(
    database: str,
    kinds: dict[str, int],
    bare: float,
    poll: Stage,
    send: Stage,
    fetch_phase: float,
    process_phase: float,
    queued: dict[str, int],
    left: int,
) -> None:
    n = sum(kinds.values())
    total = poll.seconds + send.seconds
    end_to_end = n / total
    mix = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(f"drain: {n} messages ({mix}) on {database}")
    print(
        f"  end to end: {total:.1f} s = {end_to_end:.0f} emails/s; CPU "
        f"{(poll.cpu + send.cpu) * 1000 / n:.2f} ms per email; peak RSS "
        f"{max(poll.peak_rss_mb, send.peak_rss_mb):.0f} MB"
    )
    print(
        f"  pcse poll --once: {poll.seconds:.1f} s = {n / poll.seconds:.0f} emails/s, CPU "
        f"{poll.cpu * 1000 / n:.2f} ms per email, peak RSS {poll.peak_rss_mb:.0f} MB; "
        f"{poll.output}"
    )
    print(
        f"    fetch and ledger {fetch_phase:.1f} s ({n / max(fetch_phase, 0.001):.0f}/s), "
        f"processing {process_phase:.1f} s ({n / max(process_phase, 0.001):.0f}/s) "
        "(ledger timestamps; they overlap)"
    )
    sent = send.output.get("sent", 0)
    print(
        f"  pcse outbox send: {send.seconds:.1f} s = {sent / send.seconds:.0f} emails/s sent, "
        f"CPU {send.cpu * 1000 / max(sent, 1):.2f} ms per email, peak RSS "
        f"{send.peak_rss_mb:.0f} MB; {send.output}"
    )
    print(
        f"  bare imapclient fetch (of the first backlog): {bare:.0f} emails/s; end to end is "
        f"{end_to_end / bare:.4f} of it (1 : {bare / end_to_end:.0f})"
    )
    print(f"  outbox rows by status and purpose: {queued}; left in INBOX: {left}")


def report_machine(n: int, seconds: float, machine_cpu: float) -> None:
    """What the drain cost the whole machine, and the rate its cores would allow at that
    cost were every one of them kept busy."""
    cores = os.cpu_count() or 1
    per_email = machine_cpu / n
    print(
        f"  the whole machine (pcse, Dovecot, the sink, the database): "
        f"{per_email * 1000:.2f} ms CPU per email, {machine_cpu / seconds / cores:.0%} of "
        f"{cores} cores busy; at that cost {cores} cores kept full would drain "
        f"{cores / per_email:.0f} emails/s"
    )


def report_service(
    database: str, kinds: dict[str, int], bare: float, run: Stage, queued: dict[str, int]
) -> None:
    n = sum(kinds.values())
    mix = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(f"drain under pcse run: {n} messages ({mix}) on {database}")
    print(
        f"  from start-up to the last email sent: {run.seconds:.1f} s = "
        f"{n / run.seconds:.0f} emails/s; CPU {run.cpu * 1000 / n:.2f} ms per email "
        f"(with its stop); peak RSS {run.peak_rss_mb:.0f} MB"
    )
    print(
        f"  bare imapclient fetch: {bare:.0f} emails/s; the service is "
        f"{n / run.seconds / bare:.4f} of it (1 : {bare * run.seconds / n:.0f})"
    )
    if queued:
        print(f"  outbox rows by status and purpose: {queued}")


def report_overlap(db: Database) -> None:
    """How many emails left before intake processed its last message."""
    with db.transaction() as session:
        last = session.scalar(select(func.max(InboundMessage.processed_at)))
        sent = session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_not(None)))
        early = session.scalar(select(func.count()).where(OutboxMessage.sent_at <= last))
    if sent:
        print(
            f"  sent while intake was still working the backlog: {early} of {sent} emails "
            f"({100 * early / sent:.0f} %)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages in the backlog")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--mix", choices=("plain", "outlook", "mixed"), default="plain")
    parser.add_argument(
        "--service", action="store_true", help="drain with `pcse run` on the default schedule"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pcse-drain-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        drain(args, folder)


if __name__ == "__main__":
    main()
