"""An erasure racing an approval for the person it erases.

Erasure refuses a person who still holds roles. It holds the cases naming them, then the
person, before it checks: an approval landing between the check and the erasure's rewrite
would otherwise leave an erased, inactive person holding an open role, which neither the
four-admin count nor the Main Contact count sees.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Database
from core.timeutil import utcnow
from tests.test_workflow_helpers import NOMINEE, PARTNER, answer, case_of, gpp_form, open_request
from workflow import privacy
from workflow.env import WorkflowEnv
from workflow.models import Person, RoleAssignment


def test_an_approval_landing_during_an_erasure_leaves_no_erased_person_holding_a_role(
    db: Database, env: WorkflowEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = open_request(db, env, gpp_form())
    assert case_of(db, ref).state == "awaiting_approval"
    checked, go = threading.Event(), threading.Event()
    real = privacy._refuse_if_not_erasable

    def check_then_wait(session: Any, address: str) -> None:
        real(session, address)
        checked.set()
        go.wait(30)  # the approver's answer comes in now

    monkeypatch.setattr(privacy, "_refuse_if_not_erasable", check_then_wait)
    outcome: dict[str, Any] = {}

    def erase() -> None:
        try:
            with db.transaction() as session:
                privacy.erase_person(
                    session, NOMINEE[1], by="dpo@pcse.nhs.uk", reason="SAR", raw_dir=tmp_path,
                    now=utcnow(),
                )  # fmt: skip
            outcome["erasure"] = "done"
        except Exception as exc:
            outcome["erasure"] = exc

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert checked.wait(30)
    approver = threading.Thread(target=lambda: answer(db, env, ref, PARTNER, "Approved"))
    approver.start()
    approver.join(2)
    # The answer waits for the erasure: it cannot grant the role while the erasure holds.
    assert approver.is_alive()
    go.set()
    eraser.join(60)
    approver.join(60)
    assert not eraser.is_alive() and not approver.is_alive()
    assert outcome["erasure"] == "done", outcome
    with db.transaction() as session:
        held_by_the_inactive = session.execute(
            select(Person.email, RoleAssignment.role)
            .join(RoleAssignment, RoleAssignment.person_id == Person.id)
            .where(RoleAssignment.ended_at.is_(None), Person.active.is_(False))
        ).all()
    assert held_by_the_inactive == []
    # The answer found its case rewritten: a person decides what follows.
    assert case_of(db, ref).state == "triage"
