"""Processing alone, in one process: CPU and SQL statements per plain request.

    .venv/bin/python bench/process_profile.py [--n 200] [--db sqlite|postgres] [--profile FILE]
        [--statements] [--known] [--outlook]

N plain requests are delivered to a Maildir and recorded in the ledger of a fresh
database loaded with bench/mailmix.py's directory; five are processed to warm up, then
the rest are processed in this process (the workflow as `pcse poll` runs it), counting
the statements sent to the database. `--profile FILE` also writes a pyinstrument
profile of that processing (pyinstrument is not a dependency: pip install it first);
`--statements` lists each statement sent and how many times per request (a long one shown
by its start and its end). `--outlook` sends each request as Outlook on NHSmail would
(bench/dovecot.py's outlook_request: relays' headers, an HTML body), where parsing costs
several times what it costs for a small plain email.
"""

from __future__ import annotations

import argparse
import mailbox
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench.dovecot import outlook_request, plain_request  # noqa: E402
from bench.mailmix import load_directory, organisations  # noqa: E402
from bench.pgcluster import database_url  # noqa: E402
from core.db import Database  # noqa: E402
from intake.pipeline import poll_all, process_pending  # noqa: E402
from intake.settings import MailboxConfig  # noqa: E402
from service.config import Config, DatabaseConfig, StorageConfig  # noqa: E402
from service.jobs import build_handler  # noqa: E402
from service.schema import upgrade  # noqa: E402
from workflow.intake_link import WorkflowLink  # noqa: E402

WARM_UP = 5
KNOWN = 200  # practices in the directory
KNOWN_NOTE = " for known practices"


def profiler(path: str | None) -> AbstractContextManager[Any]:
    if path is None:
        return nullcontext()
    from pyinstrument import Profiler

    @contextmanager
    def profiled() -> Iterator[None]:
        found = Profiler(interval=0.0005)
        found.start()
        try:
            yield
        finally:
            found.stop()
            Path(path).write_text(found.output_text(unicode=False, color=False))

    return profiled()


def request(number: int, *, known: bool, outlook: bool = False) -> bytes:
    """A plain request; with `known`, for one of the directory's practices; with
    `outlook`, as Outlook on NHSmail sends one (headers, HTML, a logo)."""
    if outlook:
        return outlook_request(number, logo=True)
    if not known:
        return plain_request(number)
    return plain_request(
        number,
        body=(
            f"Please set up Jane Doe {number} (jane.doe{number}@example.nhs.uk) as PL "
            f"Organisation Administrator for practice B{82000 + number % KNOWN}.\n"
            "Thank you,\nPractice Manager"
        ),
    )


def run(args: argparse.Namespace, folder: Path, url: str) -> None:
    db = Database(url)
    upgrade(db.engine)
    load_directory(db, organisations(KNOWN), folder / "directory")
    config = Config(
        database=DatabaseConfig(url),
        mailboxes=[MailboxConfig(name="enquiries", maildir=str(folder / "inbox"))],
        storage=StorageConfig(raw_dir=str(folder / "raw")),
    )
    config = replace(
        config,
        notifications=replace(config.notifications, max_replies_per_hour=10**6),
    )
    box = mailbox.Maildir(str(folder / "inbox"), create=True)
    for number in range(args.n):
        box.add(mailbox.MaildirMessage(request(number, known=args.known, outlook=args.outlook)))
    box.close()
    poll_all(db, config)
    handler = build_handler(config)
    process_pending(db, config, handler, cases=WorkflowLink(), limit=WARM_UP)
    statements = 0
    kinds: Counter[str] = Counter()

    def counted(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        nonlocal statements
        statements += 1
        kinds[" ".join(sql.split())] += 1

    event.listen(db.engine, "before_cursor_execute", counted)
    cpu, wall = time.process_time(), time.perf_counter()
    with profiler(args.profile):
        report = process_pending(db, config, handler, cases=WorkflowLink())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    db.dispose()
    n = max(report.total, 1)
    print(
        f"processing {report.total} {'Outlook' if args.outlook else 'plain'} requests"
        f"{KNOWN_NOTE if args.known else ''} on "
        f"{args.db}: {cpu * 1000 / n:.2f} ms CPU "
        f"and {wall * 1000 / n:.2f} ms wall each, {statements / n:.1f} SQL statements each; "
        f"processed {report.processed}, failed {report.failed}"
        + (" (profiler running)" if args.profile else "")
    )
    if args.statements:
        for sql, count in kinds.most_common():  # told apart whole, shown shortened
            shown = sql if len(sql) <= 150 else f"{sql[:100]} … {sql[-45:]}"
            print(f"  {count / n:5.2f}  {shown}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="requests (5 of them warm up)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--profile", help="write a pyinstrument text profile here")
    parser.add_argument(
        "--outlook", action="store_true", help="requests as Outlook sends them (17 KB each)"
    )
    parser.add_argument(
        "--known",
        action="store_true",
        help="requests name practices in the directory (most go to a person: the sender "
        "is not vouched for)",
    )
    parser.add_argument(
        "--statements", action="store_true", help="list the statements sent, per request"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pcse-profile-") as tmp:
        folder = Path(tmp)
        with database_url(args.db, folder, "pcse_profile_") as url:
            run(args, folder, url)


if __name__ == "__main__":
    main()
