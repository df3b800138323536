"""Changing a case's kind reads its message again before it holds the case: reading a
scanned form may take the PDF and OCR timeouts, and nobody else may wait that long for
the case, its organisation or (on SQLite) the one write lock. What changed in the meantime
is seen once the case is held."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from core.db import Database, is_postgres
from core.inbound import IncomingMail
from tests.test_actions import triage_case
from tests.test_approval_plan import misread_as_main_contact
from tests.test_workflow_helpers import (
    case_of,
    events,
)
from workflow import actions, rekind
from workflow.env import WorkflowEnv


def _lock_from_elsewhere(db: Database, ref: str) -> None:
    """Take, from a connection of its own and without waiting, what holding the case
    takes: the case's row on PostgreSQL, the write lock on SQLite. Raises if it is held."""
    with db.engine.connect() as other:
        if is_postgres(db.engine):
            other.execute(
                text("SELECT id FROM cases WHERE ref = :ref FOR UPDATE NOWAIT"), {"ref": ref}
            )
            other.execute(
                text("SELECT id FROM organisations WHERE code = 'A81001' FOR UPDATE NOWAIT")
            )
            other.rollback()
            return
        other.exec_driver_sql("PRAGMA busy_timeout = 0")
        other.exec_driver_sql("BEGIN IMMEDIATE")
        other.exec_driver_sql("ROLLBACK")


def _reread_then(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]
) -> list[rekind.Rereading]:
    """Run `meanwhile` as the message is read again (where a scan would be read)."""
    reads: list[rekind.Rereading] = []
    real = rekind.reread

    def reading(kind: str, mail: IncomingMail | None, env: WorkflowEnv) -> rekind.Rereading:
        meanwhile()
        reads.append(real(kind, mail, env))
        return reads[-1]

    monkeypatch.setattr(rekind, "reread", reading)
    return reads


def test_the_case_is_not_held_while_its_message_is_read_again(
    db: Database, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, mail = misread_as_main_contact(db, env)
    reads = _reread_then(monkeypatch, lambda: _lock_from_elsewhere(db, ref))
    with db.transaction() as session:
        case = rekind.change_kind(
            session, env, ref, kind="other", by="casey", reason="A password problem", mail=mail
        )
        assert case.kind == "other" and case.state == "triage"
        # Held now, to the end of the transaction, as every action on a case is.
        with pytest.raises(OperationalError):
            _lock_from_elsewhere(db, ref)
    assert len(reads) == 1
    assert case_of(db, ref).kind == "other"


def test_a_case_decided_while_its_message_was_read_again_is_not_re_routed(
    db: Database, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = triage_case(db, env)

    def withdrawn() -> None:
        _lock_from_elsewhere(db, ref)  # fails at once, where waiting would never end
        with db.transaction() as other:
            actions.withdraw(other, env, ref, by="colleague", reason="A duplicate")

    reads = _reread_then(monkeypatch, withdrawn)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="before it is"):
        rekind.change_kind(
            session, env, ref, kind="other", by="casey", reason="Not a form", mail=None
        )
    assert len(reads) == 1
    case = case_of(db, ref)
    assert (case.kind, case.state) == ("gpp_admin_form", "withdrawn")
    assert not events(db, ref, "kind_changed")


def test_a_case_re_routed_by_someone_else_meanwhile_is_not_changed_twice(
    db: Database, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, mail = misread_as_main_contact(db, env)
    colleagues: list[str] = []

    def colleague_first() -> None:
        if colleagues:  # the colleague's own reading, inside the call below
            return
        colleagues.append("colleague")
        _lock_from_elsewhere(db, ref)
        with db.transaction() as other:
            rekind.change_kind(
                other, env, ref, kind="pl_admin", by="colleague", reason="PL", mail=mail
            )

    reads = _reread_then(monkeypatch, colleague_first)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="already"):
        rekind.change_kind(session, env, ref, kind="pl_admin", by="casey", reason="PL", mail=mail)
    assert len(reads) == 2  # the colleague's, then this one's, refused once held
    changed = [e["actor"] for e in events(db, ref, "kind_changed")]
    assert changed == ["colleague"]
