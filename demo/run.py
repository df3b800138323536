"""`pcse demo`: the whole pipeline on the local defaults, with no server to install.

SQLite under ./var, a Maildir inbox at ./var/maildir, and an SMTP sink started in this
process that files every message sent into the Maildir ./var/sent. The demo loads a
small directory, delivers sample mail, runs the pipeline, answers the approval requests
as the approvers would, runs the pipeline again, and prints every case with its emails.
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import func, select

from core.db import Database
from core.errors import PcseError
from demo.accounts import forget_pending, hold_accounts, put_back
from demo.mail import INBOX, Story, approver_reply, stamp, stories
from intake.models import InboundMessage
from intake.pipeline import run_round
from intake.process import Handler
from notifications.models import OutboxMessage
from notifications.sender import send_pending
from notifications.sink import SmtpSink
from service.config import Config, local_defaults
from service.context import workflow_env
from service.schema import upgrade
from workflow.handler import handle_message
from workflow.imports import import_ael, import_organisations, import_signers, import_users
from workflow.intake_link import WorkflowLink
from workflow.models import Case

VAR = Path("var")
# Everything the demo writes under ./var; nothing else is ever removed.
DEMO_OWNED = ("pcse.sqlite3", "pcse.sqlite3-wal", "pcse.sqlite3-shm", "maildir", "sent", "raw")
TOKEN = re.compile(r"\bAPV-([0-9a-f]{20})\b", re.I)
REF = re.compile(r"\[(PCSE-\d{4}-\d{6})\]")
MAX_ROUNDS = 6
# The receiving mail server the demo plays, named in Authentication-Results.
AUTHSERV_ID = "mx.demo.pcse.local"
OUTCOME_PREFIX = re.compile(r"PCSE-\d{4}-\d{6}(?: \((\w+)\))?: ")
MARK = VAR / ".pcse-demo"

Say = Callable[[str], None]


class DemoError(PcseError):
    pass


@dataclass
class CaseLine:
    ref: str
    story: str
    key: str | None
    kind: str
    organisation: str | None
    state: str
    sent: Counter[str] = field(default_factory=Counter)


@dataclass
class DemoReport:
    cases: list[CaseLine]
    ignored: list[str]
    sent_total: int
    sent_dir: Path
    seconds: float


def demo_config(smtp_port: int) -> Config:
    """The local defaults, with the sink's port; the demo never reads a configuration file.

    The demo plays the receiving mail server too, so it trusts its own authserv-id: every
    approver's answer is then checked for DMARC as in production.
    """
    config = local_defaults()
    config.smtp = replace(config.smtp, host="127.0.0.1", port=smtp_port)
    config.security = replace(
        config.security, sender_authentication="authserv-id", trusted_authserv_ids=[AUTHSERV_ID]
    )
    config.source = "built-in local defaults (pcse demo)"
    return config


def clear_var(say: Say) -> None:
    """Remove what an earlier demo left under ./var, and only that.

    The demo marks ./var as its own when it starts; data there without that mark (a
    database of real work on the local defaults, say) is never removed: the demo stops
    and says what to move away.
    """
    root = VAR.resolve()
    found = [VAR / name for name in DEMO_OWNED if os.path.lexists(VAR / name)]
    if not found:
        return
    if not MARK.exists():
        raise DemoError(
            f"{VAR}/ holds data that pcse demo did not make "
            f"({', '.join(p.name for p in found)}); the demo starts from nothing, so move "
            f"that away first (for example: mv {VAR} {VAR}.saved) and run it again."
        )
    say(
        f"Clearing the demo's data under {VAR}/ "
        f"({', '.join(p.name for p in found)}) to start fresh."
    )
    for path in found:
        if path.resolve().parent != root:
            raise DemoError(f"{path} points outside {VAR}/; remove it yourself and run again.")
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    MARK.unlink()


def mark_var() -> None:
    """Mark ./var as the demo's, so that the next run may clear what this one makes."""
    VAR.mkdir(exist_ok=True)
    MARK.write_text(
        "This folder's pcse data was made by `pcse demo`; the next run clears it:\n"
        + "".join(f"  {name}\n" for name in DEMO_OWNED),
        encoding="utf-8",
    )


def maildir_path(config: Config) -> Path:
    box = config.mailboxes[0]
    if not box.maildir:
        raise DemoError("The demo needs the local Maildir inbox of the built-in defaults.")
    return Path(box.maildir)


def deliver(inbox: Path, messages: list[bytes]) -> None:
    """Put messages in the Maildir inbox as a mail server would: its verdict stamped on
    top, then one file each in new/."""
    box = mailbox.Maildir(inbox, create=True)
    try:
        for data in messages:
            box.add(mailbox.MaildirMessage(stamp(data, AUTHSERV_ID)))
    finally:
        box.close()


def read_sent(sent_dir: Path) -> list[bytes]:
    if not sent_dir.exists():
        return []
    box = mailbox.Maildir(sent_dir, create=False)
    try:
        return [box.get_bytes(key) for key in sorted(box.keys())]
    finally:
        box.close()


def approval_requests(sent: list[bytes]) -> Iterator[tuple[str, str, bytes]]:
    """(token, case ref, raw message) of every approval request in the sink."""
    for data in sent:
        msg = message_from_bytes(data, policy=policy.default)
        subject = str(msg.get("Subject", ""))
        token, ref = TOKEN.search(subject), REF.search(subject)
        if token and ref and not subject.lower().startswith(("re:", "reminder")):
            yield token.group(1).lower(), ref.group(1), data


def play_approvers(db: Database, sent_dir: Path, inbox: Path, answered: set[str], say: Say) -> int:
    """Answer each new approval request as the approver of that story would."""
    by_sender = {s.sender: s for s in stories()}
    replies: list[bytes] = []
    for token, ref, data in approval_requests(read_sent(sent_dir)):
        if token in answered:
            continue
        answered.add(token)
        with db.transaction() as session:
            case = session.scalars(select(Case).where(Case.ref == ref)).one()
            story = by_sender.get(case.requester)
        if story is None or story.answer is None:
            continue
        to = message_from_bytes(data, policy=policy.default)["To"].addresses[0]
        word = "APPROVE" if story.answer.decision == "approve" else "REJECT"
        say(
            f"  {to.display_name or to.addr_spec} answers {ref} with {word} "
            f"({story.answer.style} style)"
        )
        replies.append(approver_reply(data, story.answer))
    deliver(inbox, replies)
    return len(replies)


def case_lines(db: Database) -> list[CaseLine]:
    """Every case, oldest first, with the emails sent about it counted by purpose."""
    by_sender = {s.sender: s for s in stories()}
    with db.transaction() as session:
        cases = session.scalars(select(Case).order_by(Case.id)).all()
        lines = []
        for case in cases:
            sent = Counter(
                session.scalars(
                    select(OutboxMessage.purpose).where(
                        OutboxMessage.case_id == case.id, OutboxMessage.status == "sent"
                    )
                ).all()
            )
            story = by_sender.get(case.requester)
            lines.append(
                CaseLine(
                    case.ref,
                    story.title if story else case.requester,
                    story.key if story else None,
                    case.kind,
                    case.organisation_code,
                    case.state,
                    sent,
                )
            )
    return lines


def ignored_messages(db: Database) -> list[str]:
    """Messages recorded but opening no case (automatic replies and the like)."""
    with db.transaction() as session:
        rows = session.execute(
            select(
                InboundMessage.from_address,
                InboundMessage.classification,
                InboundMessage.status,
                InboundMessage.error,
            )
            .where(InboundMessage.case_id.is_(None))
            .order_by(InboundMessage.id)
        ).all()
    return [
        f"{sender}: {kind}, {status}" + (f" ({_short(error, 80)})" if error else "")
        for sender, kind, status, error in rows
    ]


def sample_messages(inbox_address: str = INBOX) -> list[tuple[Story, bytes]]:
    return [(story, story.build(story, inbox_address).as_bytes()) for story in stories()]


def prepare_database(config: Config) -> Database:
    db = Database(config.database.url)
    upgrade(db.engine)
    return db


# --------------------------------------------------------------------------- the pieces


DATA = Path(__file__).with_name("data")
DIRECTORY_FILES = (
    (import_organisations, "organisations.csv"),
    (import_users, "users.csv"),
    (import_signers, "signers.csv"),
    (import_ael, "ael.csv"),
)


def load_directory(db: Database, say: Say) -> None:
    """The sample directory, through the same imports as `pcse directory import-*`."""
    say("Directory: loading the sample directory (demo/data/*.csv)")
    for importer, name in DIRECTORY_FILES:
        with db.transaction() as session:
            report = importer(session, DATA / name, actor="pcse demo")
        if report.errors:
            raise DemoError(f"The sample {name} did not load: {report.errors[0]}.")
        say(f"  {report.what}: {report.added} added")


def pipeline_round(config: Config, db: Database, handler: Handler, say: Say) -> bool:
    """Poll the inbox, process what is pending, send the outbox; True if anything happened."""
    seen = _last_inbound_id(db)
    intake = run_round(db, config, handler, cases=WorkflowLink())
    for line in processed_lines(db, seen):
        say(line)
    for error in intake.errors:
        say(f"  inbox error: {error}")
    before = _sent_ids(db)
    sending = send_pending(db, config)
    purposes = _sent_purposes(db, before)
    if sending.sent:
        listed = ", ".join(
            f"{name} x{n}" if n > 1 else name for name, n in sorted(purposes.items())
        )
        say(f"  sent {sending.sent} email(s) to the sink: {listed}")
    if sending.error:
        # The sink runs in this process: not reaching it is a fault, not something to wait out.
        raise DemoError(f"The outbox could not send to the demo's SMTP sink: {sending.error}")
    if sending.failed:
        say(f"  outbox: {sending.failed} email(s) refused by the sink (see pcse outbox list)")
    return bool(intake.fetched or intake.processing.total or sending.sent)


def _last_inbound_id(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.max(InboundMessage.id))) or 0


def processed_lines(db: Database, after_id: int) -> list[str]:
    """One line per message handled in this round: sender, case and outcome."""
    with db.transaction() as session:
        rows = session.execute(
            select(InboundMessage, Case.ref)
            .outerjoin(Case, Case.id == InboundMessage.case_id)
            .where(InboundMessage.id > after_id)
            .order_by(InboundMessage.id)
        ).all()
        lines = []
        for inbound, ref in rows:
            what = inbound.outcome or inbound.error or inbound.status
            # The outcome starts with the case reference the line already shows.
            found = OUTCOME_PREFIX.match(what)
            label = found.group(1) if found and found.group(1) else inbound.classification
            what = what[found.end() :] if found else what
            lines.append(
                f"  {inbound.from_address or '?':<40} {ref or '(no case)':<17} "
                f"{label or '-'}: {_short(what, 100)}"
            )
    return lines


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _sent_ids(db: Database) -> set[int]:
    with db.transaction() as session:
        return set(
            session.scalars(select(OutboxMessage.id).where(OutboxMessage.status == "sent")).all()
        )


def _sent_purposes(db: Database, before: set[int]) -> Counter[str]:
    with db.transaction() as session:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.purpose).where(OutboxMessage.status == "sent")
        ).all()
    return Counter(purpose for row_id, purpose in rows if row_id not in before)


# --------------------------------------------------------------------------- the run


def run_demo(say: Say) -> DemoReport:
    """Run the whole pipeline on sample mail; `say` prints each step of progress."""
    started = time.monotonic()
    accounts = hold_accounts(VAR / "pcse.sqlite3") if MARK.exists() else []
    clear_var(say)
    mark_var()
    sent_dir = VAR / "sent"
    # The sink picks a free port, and the configuration is built around it.
    with SmtpSink("127.0.0.1", 0, maildir=sent_dir) as sink:
        config = demo_config(sink.port)
        inbox = maildir_path(config)
        db = prepare_database(config)
        try:
            say(f"Database: {config.database.url} (created)")
            kept = put_back(db, accounts)
            forget_pending(VAR / "pcse.sqlite3")
            if kept:
                say(f"Caseworker accounts kept from the last run: {', '.join(kept)}")
            load_directory(db, say)
            say(f"SMTP sink: 127.0.0.1:{sink.port}, filing into {sent_dir}/")
            play_rounds(config, db, inbox, sent_dir, say)
            return DemoReport(
                case_lines(db),
                ignored_messages(db),
                len(read_sent(sent_dir)),
                sent_dir,
                time.monotonic() - started,
            )
        finally:
            db.dispose()


def play_rounds(config: Config, db: Database, inbox: Path, sent_dir: Path, say: Say) -> None:
    """Deliver the sample mail, then run rounds until nothing more happens."""
    handler = handle_message(workflow_env(config))
    messages = sample_messages(config.mailboxes[0].address)
    deliver(inbox, [data for _, data in messages])
    say(f"\nDelivered {len(messages)} sample emails to {inbox}/:")
    for story, _ in messages:
        say(f"  {story.title:<42} from {story.sender}")
    answered: set[str] = set()
    for number in range(1, MAX_ROUNDS + 1):
        say(f"\nRound {number}: read the inbox, process, send the outbox")
        busy = pipeline_round(config, db, handler, say)
        replies = play_approvers(db, sent_dir, inbox, answered, say)
        if replies:
            say(f"  {replies} approver(s) replied; their answers are in the inbox")
        if not busy and not replies:
            say("  nothing new: every case has come to rest")
            return
