"""The end-state audit shared by the proofs: was anything lost, or done twice?

- every message sent to the inbox has exactly one ledger row, in a final status, with an
  outcome (or, when it failed, the error);
- no inbound message opened more than one case, and every case says which message
  opened it;
- no email reached the SMTP server twice (counted by Message-ID), and every outbox row
  marked sent did reach it, or is flagged as handed over unconfirmed (its sender died
  between giving the server the message and reading the answer) for a person to see;
- every case is in a state of the table, and its history is a chain of allowed moves
  that ends in that state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import func, select

from core.db import Database
from core.states import TRANSITIONS, CaseState
from intake.models import InboundMessage
from notifications.claims import UNCONFIRMED_REASONS
from notifications.models import OutboxMessage
from workflow.models import Case, CaseEvent

FINAL = frozenset({"processed", "ignored", "duplicate", "failed", "dismissed"})


@dataclass
class Audit:
    messages: int = 0
    ledger_rows: int = 0
    lost: int = 0  # messages sent to the inbox with no ledger row
    duplicated_rows: int = 0  # extra ledger rows for one message
    not_final: int = 0
    without_outcome: int = 0
    failed: int = 0
    cases: int = 0
    duplicated_cases: int = 0
    cases_without_source: int = 0
    emails: int = 0  # distinct Message-IDs the SMTP server received
    duplicated_emails: int = 0
    sent_not_received: int = 0  # outbox rows marked sent that never reached the server
    # Handed over as the sender died, the answer unheard: flagged for a person to see.
    unconfirmed: int = 0
    silently_lost_emails: int = 0  # sent but never received, and not flagged
    outbox: Counter[str] = field(default_factory=Counter)
    invalid_states: list[str] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    # Messages in the mailbox's Processed and Failed folders beyond one per message sent
    # (two workers moving the same message can leave two copies); None when not counted.
    extra_copies: int | None = None

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated_rows
            or self.not_final
            or self.without_outcome
            or self.duplicated_cases
            or self.cases_without_source
            or self.duplicated_emails
            or self.silently_lost_emails
            or self.invalid_states
            or self.extra_copies
        )

    def line(self) -> str:
        return (
            f"lost={self.lost} duplicated_cases={self.duplicated_cases} "
            f"duplicated_emails={self.duplicated_emails}"
        )

    def details(self) -> str:
        outbox = " ".join(f"{k}={v}" for k, v in sorted(self.outbox.items()))
        statuses = " ".join(f"{k}={v}" for k, v in sorted(self.by_status.items()))
        return (
            f"messages={self.messages} ledger_rows={self.ledger_rows} "
            f"duplicated_rows={self.duplicated_rows} not_final={self.not_final} "
            f"without_outcome={self.without_outcome} [{statuses}]\n"
            f"cases={self.cases} cases_without_source={self.cases_without_source} "
            f"invalid_states={len(self.invalid_states)} "
            f"extra_copies_in_mailbox={self.extra_copies}\n"
            f"emails_received={self.emails} sent_not_received={self.sent_not_received} "
            f"unconfirmed={self.unconfirmed} silently_lost={self.silently_lost_emails} "
            f"outbox [{outbox}]"
        )


def message_ids(raw_messages: list[bytes]) -> list[str]:
    parser = BytesHeaderParser(policy=compat32)
    return [str(parser.parsebytes(raw).get("Message-ID", "")).strip() for raw in raw_messages]


def audit(db: Database, sent_to_inbox: list[str], received: list[bytes]) -> Audit:
    """`sent_to_inbox`: the Message-IDs delivered to the inbox; `received`: what the SMTP
    server got, as raw bytes."""
    result = Audit(messages=len(sent_to_inbox))
    with db.transaction() as session:
        _ledger(session, result, sent_to_inbox)
        _cases(session, result)
        sent = session.execute(
            select(OutboxMessage.message_id, OutboxMessage.last_error).where(
                OutboxMessage.status == "sent"
            )
        ).all()
        result.outbox = Counter(
            dict(
                session.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                ).all()
            )
        )
    on_server = Counter(message_ids(received))
    result.emails = len(on_server)
    result.duplicated_emails = sum(n - 1 for n in on_server.values())
    missing = [last_error for message_id, last_error in sent if message_id not in on_server]
    result.sent_not_received = len(missing)
    result.unconfirmed = sum(1 for _, last_error in sent if last_error in UNCONFIRMED_REASONS)
    result.silently_lost_emails = sum(
        1 for last_error in missing if last_error not in UNCONFIRMED_REASONS
    )
    return result


def _ledger(session, result: Audit, sent_to_inbox: list[str]) -> None:
    rows = session.execute(
        select(
            InboundMessage.message_id,
            InboundMessage.status,
            InboundMessage.outcome,
            InboundMessage.error,
        )
    ).all()
    result.ledger_rows = len(rows)
    per_id = Counter(r.message_id for r in rows)
    result.lost = sum(1 for mid in sent_to_inbox if per_id[mid] == 0)
    result.duplicated_rows = sum(n - 1 for n in per_id.values() if n > 1)
    result.by_status = Counter(r.status for r in rows)
    result.failed = result.by_status["failed"]
    for row in rows:
        if row.status not in FINAL:
            result.not_final += 1
        reason = row.error if row.status == "failed" else row.outcome
        if not (reason or "").strip():
            result.without_outcome += 1


def _cases(session, result: Audit) -> None:
    cases = session.execute(select(Case.id, Case.ref, Case.state, Case.source_message_id)).all()
    result.cases = len(cases)
    per_source = Counter(c.source_message_id for c in cases if c.source_message_id is not None)
    result.duplicated_cases = sum(n - 1 for n in per_source.values())
    result.cases_without_source = sum(1 for c in cases if c.source_message_id is None)
    events: dict[int, list[tuple[str | None, str | None, str]]] = {}
    for case_id, from_state, to_state, kind in session.execute(
        select(CaseEvent.case_id, CaseEvent.from_state, CaseEvent.to_state, CaseEvent.event)
        .where(CaseEvent.to_state.is_not(None))
        .order_by(CaseEvent.id)
    ):
        events.setdefault(case_id, []).append((from_state, to_state, kind))
    for case in cases:
        problem = _history_problem(case.state, events.get(case.id, []))
        if problem:
            result.invalid_states.append(f"{case.ref}: {problem}")


def _history_problem(state: str, moves: list[tuple[str | None, str | None, str]]) -> str | None:
    try:
        CaseState(state)
    except ValueError:
        return f"unknown state {state!r}"
    if not moves:
        return "no history"
    current: str | None = None
    for from_state, to_state, kind in moves:
        if kind == "created":
            if current is not None:
                return "created twice"
            current = to_state
            continue
        if from_state != current:
            return f"a move from {from_state} while the case was {current}"
        if CaseState(to_state) not in TRANSITIONS[CaseState(from_state)]:
            return f"a move {from_state} -> {to_state} the table forbids"
        current = to_state
    if current != state:
        return f"history ends in {current} but the case is {state}"
    return None
