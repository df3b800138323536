"""Retention: personal data leaves on schedule; each case's audit skeleton stays.

Periods come from [retention] (workflow.settings.RetentionConfig):

- `raw_after_days` after a case closed (entered a final state): the original emails and
  their attachments (raw bytes, in the raw store folder or the database) and the text of
  the emails sent on the case.
- `personal_after_days` after it closed: the case's personal values (requester, names,
  addresses, form fields, findings, subjects, the wording of its history). What stays is
  the skeleton: reference, kind, organisation, dates, states and moves, who acted, the
  approval records, and the role changes in the directory.
- messages tied to no case, after `unlinked_after_days` from arrival (emails sent on no
  case, from when they were written); failed messages parked for a person, after
  `failed_after_days`. Their ledger rows stay (mailbox, UID, Message-ID, sha256), so a
  message seen again is still known as a duplicate.

Work is done in batches of `batch_size`, one transaction each; raw files are removed
before that transaction commits, so a crash leaves at worst a row that is purged again.
Each case's history records what was removed, how much and under which period.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.db import Database
from core.states import FINAL_STATES
from intake.models import InboundMessage, RawBlob
from intake.rawstore import RawStore
from notifications.claims import UNCONFIRMED_REASONS
from notifications.models import OutboxMessage
from workflow import mail
from workflow.cases import record
from workflow.models import Case, CaseEvent
from workflow.settings import RetentionConfig

REMOVED = "[removed]"
REQUESTER_ACTOR = "[requester]"
ACTOR = "retention"
RETENTION_EVENT = "retention"
# Outbox rows that are done with: their text can go.
FINISHED_OUTBOX = ("sent", "dismissed", "failed")
FINISHED_INBOUND = ("processed", "ignored", "duplicate", "dismissed")
_FINAL = [str(s) for s in FINAL_STATES]


@dataclass
class PurgeReport:
    cases_raw: int = 0
    cases_personal: int = 0
    raw_messages: int = 0
    sent_bodies: int = 0
    unlinked_messages: int = 0
    failed_messages: int = 0
    unlinked_sent: int = 0
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dry_run"}

    def as_json(self) -> dict[str, Any]:
        return {**self.counts(), "dry_run": self.dry_run}


def _days(days: float) -> timedelta:
    return timedelta(days=days)


# --------------------------------------------------------------------------- raw bytes


def remove_raw(session: Session, store: RawStore, messages: Iterable[InboundMessage]) -> int:
    """Remove the raw bytes of these ledger rows and mark them purged; a blob another row
    still needs (the same bytes arrived twice) stays until that row goes too."""
    rows = [m for m in messages if m.purged_at is None]
    if not rows:
        return 0
    ids = [m.id for m in rows]
    digests = {m.sha256 for m in rows}
    still_needed = set(
        session.scalars(
            select(InboundMessage.sha256).where(
                InboundMessage.sha256.in_(digests),
                InboundMessage.purged_at.is_(None),
                InboundMessage.id.not_in(ids),
            )
        )
    )
    for digest in digests - still_needed:
        blob = session.get(RawBlob, digest)
        if blob is not None:
            session.delete(blob)
        with contextlib.suppress(ValueError, FileNotFoundError):
            store.path_for(digest).unlink()
    return len(rows)


def _mark_raw_gone(rows: Iterable[InboundMessage], now: datetime) -> None:
    for row in rows:
        if row.purged_at is None:
            row.purged_at = now


def _clear_inbound_headers(row: InboundMessage) -> None:
    row.from_address = None
    row.from_name = None
    row.subject = None
    row.sender_detail = None
    row.outcome = None
    row.error = None


def _clear_outbox_body(row: OutboxMessage, now: datetime) -> bool:
    if row.purged_at is not None:
        return False
    row.body_text = ""
    row.body_html = None
    row.purged_at = now
    return True


def _clear_outbox_recipient(row: OutboxMessage, ref: str | None) -> None:
    row.to_address = REMOVED
    row.cap_key = None  # the address too, lower-cased (notifications.hourly_cap)
    row.to_name = None
    row.subject = f"[{ref}] {REMOVED}" if ref else REMOVED
    row.last_error = _answer_without_words(row.last_error)


# The mail server's reply code and enhanced status code ("550 5.1.1"), which name nobody.
_REPLY_CODES = re.compile(r"\d{3}(?:[ -]\d\.\d{1,3}\.\d{1,3})?")


def _answer_without_words(answer: str | None) -> str | None:
    """What a failed email's recorded answer may keep: the mail server's words often name
    the recipient ("550 <jane.doe@…> unknown (Jane Doe)"), so only its codes stay; the
    service's own fixed reasons (claims.UNCONFIRMED_REASONS) name nobody and say what the
    row is, so they stay whole."""
    if answer is None or answer in UNCONFIRMED_REASONS:
        return answer
    codes = _REPLY_CODES.match(answer.strip())
    return f"{codes.group(0)} {REMOVED}" if codes else REMOVED


# --------------------------------------------------------------------------- cases


def _case_messages(session: Session, case: Case) -> list[InboundMessage]:
    clauses = [InboundMessage.case_id == case.id]
    if case.source_message_id is not None:
        clauses.append(InboundMessage.id == case.source_message_id)
    return list(session.scalars(select(InboundMessage).where(or_(*clauses))))


def _case_outbox(session: Session, case: Case) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.case_id == case.id, OutboxMessage.status.in_(FINISHED_OUTBOX)
            )
        )
    )


def purge_case_raw(
    session: Session, store: RawStore, case: Case, *, now: datetime, period_days: float
) -> tuple[int, int]:
    """The case's original emails and the text of the emails sent; (raw, bodies) counts."""
    messages = _case_messages(session, case)
    raw = remove_raw(session, store, messages)
    _mark_raw_gone(messages, now)
    _dismiss_unsent(session, case, period_days)
    bodies = sum(_clear_outbox_body(row, now) for row in _case_outbox(session, case))
    case.raw_purged_at = now
    record(
        session,
        case,
        RETENTION_EVENT,
        f"Original emails and attachments ({raw}) and the text of the emails sent "
        f"({bodies}) removed, {period_days:g} days after the case closed.",
        actor=ACTOR,
        data={"stage": "raw", "raw_messages": raw, "sent_bodies": bodies, "days": period_days},
        at=now,
    )
    return raw, bodies


# Outbox rows still waiting to be sent (held by the hourly cap, or pending a retry).
UNSENT_OUTBOX = ("pending", "held")


def _dismiss_unsent(session: Session, case: Case, period_days: float) -> None:
    """An email still waiting on a case closed this long is not sent: released later, it
    would go out with what the retention has removed from everything else."""
    for row in session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.case_id == case.id, OutboxMessage.status.in_(UNSENT_OUTBOX)
        )
    ):
        mail.dismiss(
            session,
            row.id,
            by=ACTOR,
            reason=f"not sent {period_days:g} days after the case closed; its text is removed.",
        )


def purge_case_personal(session: Session, case: Case, *, now: datetime, period_days: float) -> None:
    """The case's personal values, leaving its skeleton. Who acted stays: caseworkers and
    approvers by address (accountability for what was approved); the requester, whose
    address goes, as "[requester]"."""
    requester = case.requester
    case.requester = REMOVED
    case.requester_name = None
    case.subject = None
    case.fields = {}
    case.findings = []
    case.reason = None
    for event in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)):
        if event.event == RETENTION_EVENT:
            continue
        event.detail = ""
        event.data = {}
        if requester and event.actor.lower() == requester.lower():
            event.actor = REQUESTER_ACTOR
    for message in _case_messages(session, case):
        _clear_inbound_headers(message)
    for sent in session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case.id)):
        if sent.status in FINISHED_OUTBOX:
            _clear_outbox_recipient(sent, case.ref)
    case.personal_purged_at = now
    record(
        session,
        case,
        RETENTION_EVENT,
        "Personal values removed (requester, names, addresses, form fields, findings, "
        f"subjects, the wording of the history), {period_days:g} days after the case "
        "closed; the reference, dates, states and who acted are kept.",
        actor=ACTOR,
        data={"stage": "personal", "days": period_days},
        at=now,
    )


def _closed_before(cutoff: datetime) -> Any:
    # A closed case with a reply nobody has read waits for a person (workflow.new_replies).
    return and_(Case.state.in_(_FINAL), Case.updated_at <= cutoff, Case.new_reply_at.is_(None))


def _raw_due(config: RetentionConfig, now: datetime) -> Any:
    return and_(_closed_before(now - _days(config.raw_after_days)), Case.raw_purged_at.is_(None))


def _personal_due(config: RetentionConfig, now: datetime) -> Any:
    return and_(
        _closed_before(now - _days(config.personal_after_days)),
        Case.personal_purged_at.is_(None),
    )


def _batch(session: Session, where: Any, size: int) -> list[Case]:
    query = select(Case).where(where).order_by(Case.id).limit(size)
    return list(session.scalars(query.with_for_update(skip_locked=True)))


# --------------------------------------------------------------------------- unlinked


def _unlinked_due(config: RetentionConfig, now: datetime) -> Any:
    unlinked = and_(
        InboundMessage.case_id.is_(None),
        InboundMessage.status.in_(FINISHED_INBOUND),
        InboundMessage.received_at <= now - _days(config.unlinked_after_days),
    )
    failed = and_(
        InboundMessage.status == "failed",
        InboundMessage.received_at <= now - _days(config.failed_after_days),
    )
    sources = select(Case.source_message_id).where(Case.source_message_id.is_not(None))
    return and_(
        InboundMessage.purged_at.is_(None),
        InboundMessage.id.not_in(sources),
        or_(unlinked, failed),
    )


def _unlinked_outbox_due(config: RetentionConfig, now: datetime) -> Any:
    return and_(
        OutboxMessage.case_id.is_(None),
        OutboxMessage.status.in_(FINISHED_OUTBOX),
        OutboxMessage.purged_at.is_(None),
        OutboxMessage.created_at <= now - _days(config.unlinked_after_days),
    )


# --------------------------------------------------------------------------- the run


def _count(session: Session, model: Any, where: Any) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(model).where(where)) or 0)


def preview(db: Database, config: RetentionConfig, *, now: datetime) -> PurgeReport:
    """What a purge now would remove, changing nothing (`pcse purge --dry-run`)."""
    report = PurgeReport(dry_run=True)
    with db.transaction() as session:
        report.cases_raw = _count(session, Case, _raw_due(config, now))
        report.cases_personal = _count(session, Case, _personal_due(config, now))
        due = _unlinked_due(config, now)
        report.failed_messages = _count(
            session, InboundMessage, and_(due, InboundMessage.status == "failed")
        )
        report.unlinked_messages = _count(session, InboundMessage, due) - report.failed_messages
        report.unlinked_sent = _count(session, OutboxMessage, _unlinked_outbox_due(config, now))
    return report


def purge(
    db: Database,
    config: RetentionConfig,
    *,
    raw_dir: str | Path,
    now: datetime,
    dry_run: bool = False,
) -> PurgeReport:
    """Remove what is past its period, in batches; returns what was removed."""
    if dry_run:
        return preview(db, config, now=now)
    store = RawStore(raw_dir)
    report = PurgeReport()
    size = config.batch_size
    while True:
        with db.transaction() as session:
            cases = _batch(session, _raw_due(config, now), size)
            for case in cases:
                raw, bodies = purge_case_raw(
                    session, store, case, now=now, period_days=config.raw_after_days
                )
                report.raw_messages += raw
                report.sent_bodies += bodies
            report.cases_raw += len(cases)
        if len(cases) < size:
            break
    while True:
        with db.transaction() as session:
            cases = _batch(session, _personal_due(config, now), size)
            for case in cases:
                purge_case_personal(session, case, now=now, period_days=config.personal_after_days)
            report.cases_personal += len(cases)
        if len(cases) < size:
            break
    while True:
        with db.transaction() as session:
            rows = list(
                session.scalars(
                    select(InboundMessage)
                    .where(_unlinked_due(config, now))
                    .order_by(InboundMessage.id)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            )
            report.raw_messages += remove_raw(session, store, rows)
            for row in rows:
                _clear_inbound_headers(row)
                row.purged_at = now
                if row.status == "failed":
                    report.failed_messages += 1
                else:
                    report.unlinked_messages += 1
        if len(rows) < size:
            break
    while True:
        with db.transaction() as session:
            sent = list(
                session.scalars(
                    select(OutboxMessage)
                    .where(_unlinked_outbox_due(config, now))
                    .order_by(OutboxMessage.id)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            )
            for written in sent:
                _clear_outbox_body(written, now)
                _clear_outbox_recipient(written, None)
            report.unlinked_sent += len(sent)
        if len(sent) < size:
            break
    return report


def retention_summary(case: Case) -> dict[str, Any] | None:
    """What retention removed from a case and when, for `case show` and the case page."""
    if case.raw_purged_at is None and case.personal_purged_at is None:
        return None
    return {
        "raw_removed_at": case.raw_purged_at.isoformat() if case.raw_purged_at else None,
        "personal_removed_at": (
            case.personal_purged_at.isoformat() if case.personal_purged_at else None
        ),
    }


def retention_line(summary: dict[str, Any]) -> str:
    """One sentence of what retention removed from a case and when."""
    said = []
    if summary.get("raw_removed_at"):
        said.append(f"original emails removed {summary['raw_removed_at'][:10]}")
    if summary.get("personal_removed_at"):
        said.append(f"personal values removed {summary['personal_removed_at'][:10]}")
    return "retention: " + "; ".join(said) + " (the skeleton is kept)"
