"""Bulk actions on a selection of queue rows: take or release cases, retry or dismiss failed
messages and failed or held emails. Each item is done in its own transaction through the
same operations as its own page, so one refusal leaves the others done and is reported in
words."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from caseworker.ids import is_row_id
from core.db import Database
from core.errors import PcseError
from intake import ledger
from workflow import actions, mail
from workflow.cases import hold_case
from workflow.env import WorkflowEnv

ASSIGN_ME, RELEASE, RETRY, DISMISS = "assign_me", "release", "retry", "dismiss"
ACTIONS = {
    ASSIGN_ME: "Assign to me",
    RELEASE: "Release",
    RETRY: "Retry",
    DISMISS: "Dismiss",
}
# Which kinds of row each action applies to.
APPLIES_TO = {
    ASSIGN_ME: ("case",),
    RELEASE: ("case",),
    RETRY: ("message", "outbox"),
    DISMISS: ("message", "outbox"),
}
NAMES = {"case": "Case {}", "message": "Message {}", "outbox": "Email {}"}
MAX_ITEMS = 100


class BulkRefused(PcseError):
    """An item the chosen action does not apply to."""


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def summary(self, action: str) -> str:
        parts = []
        if self.done:
            parts.append(f"{ACTIONS[action]}: done for {', '.join(self.done)}.")
        if self.refused:
            parts.append("Not done: " + " ".join(self.refused))
        return " ".join(parts) or "Nothing was selected."


def parse_item(value: str) -> tuple[str, str] | None:
    """'case:PCSE-2026-000001', 'message:12' or 'outbox:3'; anything else is ignored."""
    source, _, key = value.partition(":")
    if source not in NAMES or not key or len(key) > 20:
        return None
    if source != "case" and not is_row_id(key):
        return None
    return source, key


def _operation(
    action: str, source: str, key: str, env: WorkflowEnv, by: str, reason: str
) -> Callable[[Session], object]:
    if source not in APPLIES_TO[action]:
        kinds = " and ".join(f"{s}s" if s != "outbox" else "emails" for s in APPLIES_TO[action])
        raise BulkRefused(f"{ACTIONS[action]} applies only to {kinds}.")
    if action in (ASSIGN_ME, RELEASE):
        to = by if action == ASSIGN_ME else None
        return lambda s: _assign_unless_anothers(s, env, key, to, by)
    if source == "message":
        if action == RETRY:
            return lambda s: ledger.retry(s, int(key), by=by)
        return lambda s: ledger.dismiss(s, int(key), by=by, reason=reason)
    if action == RETRY:
        return lambda s: mail.retry(s, int(key), by=by)
    return lambda s: mail.dismiss(s, int(key), by=by, reason=reason)


def _assign_unless_anothers(
    session: Session, env: WorkflowEnv, ref: str, to: str | None, by: str
) -> None:
    """Take or release a case that is with nobody or with `by`. A case with someone else is
    taken over, or released, from its own page, which shows whose it is: a queue page may
    be older than their taking it. The case is held while this is checked and done
    (workflow.cases.hold_case)."""
    holder = hold_case(session, ref).assigned_to
    if holder not in (None, by):
        raise BulkRefused(f"it is with {holder}; take it over or release it from its page.")
    actions.assign(session, env, ref, to=to, by=by)


def run_bulk(
    database: Database,
    env: WorkflowEnv,
    action: str,
    items: list[str],
    *,
    by: str,
    reason: str = "",
) -> BulkResult:
    """Apply `action` to each selected item; each refusal is kept with the item's name."""
    if action not in ACTIONS:
        raise BulkRefused("Choose what to do with the selected items.")
    if action == DISMISS and not reason.strip():
        raise BulkRefused("Enter why the selected items are dismissed.")
    result = BulkResult()
    for value in list(dict.fromkeys(items))[:MAX_ITEMS]:
        parsed = parse_item(value)
        if parsed is None:
            continue
        source, key = parsed
        name = NAMES[source].format(key)
        try:
            operation = _operation(action, source, key, env, by, reason)
            with database.transaction() as session:
                operation(session)
        except PcseError as refused:
            result.refused.append(f"{name}: {refused}")
            continue
        result.done.append(name)
    return result
