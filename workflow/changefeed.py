"""The change feed: every role granted or ended, in order, for PCSE Online to take up.

workflow.directory writes one `RoleChange` row in the transaction that changes a role row
(`record_role_change`), so a change and its feed row commit together or not at all.

The cursor is `seq`, not the row id: ids are taken when a transaction inserts, so a
transaction that commits late can make a smaller id visible after a reader has moved past
it. `publish` gives committed rows their `seq` in id order, one publisher at a time (the
counter row is the lock), so the cursors a reader sees only ever grow: reading everything
after a cursor, then everything after the last one read, sees each change exactly once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflow.models import FeedCounter, RoleAssignment, RoleChange

GRANT = "grant"
REVOKE = "revoke"
MAIN_CONTACT_CHANGE = "main_contact_change"
ACTIONS = (GRANT, REVOKE, MAIN_CONTACT_CHANGE)

# The columns of `pcse directory changes --csv`, and the keys of each JSON object.
COLUMNS = [
    "cursor",
    "at",
    "action",
    "case_ref",
    "organisation",
    "email",
    "name",
    "service",
    "role",
    "by",
]

# A case reference standing alone in a reason (the bracketed form is core.patterns').
_REF = re.compile(r"(?<![\w-])(PCSE-\d{4}-\d{6})(?![\w-])", re.IGNORECASE)


def case_ref_in(reason: str) -> str | None:
    """The case reference a change's reason names (the workflow gives the reference as the
    reason; a caseworker may quote one), or None."""
    found = _REF.search(reason or "")
    return found.group(1).upper() if found else None


def record_role_change(
    session: Session,
    assignment: RoleAssignment,
    *,
    action: str,
    actor: str,
    reason: str,
    now: datetime,
) -> RoleChange:
    """Append the feed row for a role row just granted or ended (same transaction)."""
    session.flush()  # the assignment's id
    row = RoleChange(
        at=now,
        action=action,
        case_ref=case_ref_in(reason),
        organisation_code=assignment.organisation.code,
        person_email=assignment.person.email,
        person_name=assignment.person.name,
        service=assignment.service,
        role=assignment.role,
        actor=actor,
        assignment_id=assignment.id,
    )
    session.add(row)
    return row


def _lock_counter(session: Session) -> int:
    """Take the counter row (creating it on first use) and return the last cursor given."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(FeedCounter)
        .values(id=1, last=0)
        .on_conflict_do_update(index_elements=["id"], set_={"last": FeedCounter.last})
        .returning(FeedCounter.last)
    )
    return int(session.execute(stmt).scalar_one())


def publish(session: Session, *, limit: int = 10_000) -> int:
    """Give committed feed rows their cursors, oldest first; returns how many. Run it in a
    transaction of its own (it holds the counter row until commit)."""
    last = _lock_counter(session)
    rows = session.scalars(
        select(RoleChange).where(RoleChange.seq.is_(None)).order_by(RoleChange.id).limit(limit)
    ).all()
    for row in rows:
        last += 1
        row.seq = last
    if rows:
        counter = session.get(FeedCounter, 1)
        assert counter is not None
        counter.last = last
        session.flush()
    return len(rows)


def changes_since(
    session: Session, cursor: int = 0, *, limit: int | None = None
) -> list[RoleChange]:
    """Published changes after `cursor`, in cursor order."""
    query = select(RoleChange).where(RoleChange.seq > cursor).order_by(RoleChange.seq)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def change_document(row: RoleChange) -> dict[str, Any]:
    """One change as `pcse directory changes --json` and the webhook body give it."""
    return {
        "cursor": row.seq,
        "at": row.at.isoformat(),
        "action": row.action,
        "case_ref": row.case_ref,
        "organisation": row.organisation_code,
        "email": row.person_email,
        "name": row.person_name,
        "service": row.service,
        "role": row.role,
        "by": row.actor,
    }
