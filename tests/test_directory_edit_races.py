"""Directory edits racing each other or a grant, on SQLite and PostgreSQL.

Each test stops the first edit just after it has checked what the rules weigh, starts the
second, and lets the first go on: the second must wait for it and then see its outcome,
as if the two had run one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Database
from tests.test_workflow_helpers import AEL, ICB_CONTACT, ICB_CONTACT_2
from workflow import directory, directory_edits, imports
from workflow.models import Organisation, RoleAssignment
from workflow.rules import RuleViolation

PCN_ADMIN = "PCN User Admin"


def _paused_after(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> tuple[threading.Event, threading.Event]:
    """Make module.name pause after it has run the first time it is called: (checked, go)."""
    checked, go = threading.Event(), threading.Event()
    real = getattr(module, name)
    first = threading.Lock()

    def check_then_wait(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if first.acquire(blocking=False):
            checked.set()
            go.wait(30)
        return result

    monkeypatch.setattr(module, name, check_then_wait)
    return checked, go


def _in_thread(db: Database, work: Callable[[Any], object], outcome: dict[str, Any], key: str):
    def run() -> None:
        try:
            with db.transaction() as session:
                work(session)
            outcome[key] = "done"
        except Exception as exc:
            outcome[key] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _race(
    db: Database,
    checked: threading.Event,
    go: threading.Event,
    first: Callable[[Any], object],
    second: Callable[[Any], object],
) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    one = _in_thread(db, first, outcome, "first")
    assert checked.wait(30)
    two = _in_thread(db, second, outcome, "second")
    two.join(2)
    assert two.is_alive(), outcome  # it waits for the first edit's transaction
    go.set()
    one.join(60)
    two.join(60)
    assert not one.is_alive() and not two.is_alive()
    return outcome


def test_two_ael_contacts_removing_each_other_at_once_do_not_both_succeed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, go = _paused_after(monkeypatch, directory_edits, "_require_requester")

    def removal(email: str, by: str) -> Callable[[Any], object]:
        return lambda session: directory_edits.remove_ael_contact(
            session, icb_code="QHM", email=email, requested_by=by, actor="casey", reason="Left"
        )

    outcome = _race(
        db,
        checked,
        go,
        removal(ICB_CONTACT_2[1], ICB_CONTACT[1]),
        removal(ICB_CONTACT[1], ICB_CONTACT_2[1]),
    )
    assert outcome["first"] == "done", outcome
    refused = outcome["second"]
    assert isinstance(refused, RuleViolation) and refused.code == "not_an_ael_contact", outcome
    with db.transaction() as session:
        left = [c.email for c in directory.ael_contacts_for(session, "QHM", AEL)]
    assert left == [ICB_CONTACT[1]]


@pytest.mark.parametrize("read_first", [False, True], ids=["grant", "read, then grant"])
def test_a_grant_racing_an_import_that_changes_the_kind_leaves_no_role_of_the_old_kind(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, read_first: bool
) -> None:
    retyped = tmp_path / "orgs.csv"
    retyped.write_text("code,name,type,icb_code\nU12345,North PCN,gp_practice,QHM\n")
    checked, go = _paused_after(monkeypatch, imports, "_holds_open_roles")

    def import_file(session: Any) -> object:
        report = imports.import_organisations(session, retyped, actor="setup")
        assert report.updated == 1, report.errors
        return report

    def grant(session: Any) -> object:
        if read_first:  # the transaction has the organisation as it was before the import
            assert directory.get_org(session, "U12345").type == "pcn"
        return directory.grant_role(
            session,
            org_code="U12345",
            email="pat.new@nhs.net",
            role=PCN_ADMIN,
            name="Pat New",
            actor="casey",
            reason="Phoned",
        )

    outcome = _race(db, checked, go, import_file, grant)
    assert outcome["first"] == "done", outcome
    refused = outcome["second"]
    assert isinstance(refused, RuleViolation), outcome
    assert refused.code == "wrong_organisation_type", outcome
    with db.transaction() as session:
        kind = session.scalar(select(Organisation.type).where(Organisation.code == "U12345"))
        roles = session.scalars(
            select(RoleAssignment.role)
            .join(Organisation, Organisation.id == RoleAssignment.organisation_id)
            .where(Organisation.code == "U12345", RoleAssignment.ended_at.is_(None))
        ).all()
    assert (kind, roles) == ("gp_practice", [])


def test_a_replacing_ael_import_racing_an_addition_leaves_what_one_after_the_other_would(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """NHS England's new list drops Chris Green while Chris asks for a newcomer: either the
    import removes the newcomer (the addition first) or the addition is refused (the
    import first); never a contact added on the word of one the list removed."""
    whole = tmp_path / "ael.csv"
    whole.write_text(
        f"icb_code,name,email,ael_role\nQHM,{ICB_CONTACT_2[0]},{ICB_CONTACT_2[1]},{AEL}\n"
    )
    checked, go = _paused_after(monkeypatch, directory_edits, "_require_requester")

    def addition(session: Any) -> object:
        return directory_edits.add_ael_contact(
            session, icb_code="QHM", name="New Person", email="new.person@nhs.net",
            requested_by=ICB_CONTACT[1], actor="casey", reason="Asked by Chris",
        )  # fmt: skip

    def replacing_import(session: Any) -> object:
        return imports.import_ael(session, whole, actor="ops", replace=True)

    outcome = _race(db, checked, go, addition, replacing_import)
    assert outcome == {"first": "done", "second": "done"}, outcome
    with db.transaction() as session:
        left = {c.email for c in directory.ael_contacts_for(session, "QHM", AEL)}
    assert left == {ICB_CONTACT_2[1]}


def test_an_organisation_import_and_a_user_import_at_once_both_finish(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each import holds the organisations its file names in one go, in the order of their
    ids, before anything else: they take turns, where holding them in file order could
    deadlock on PostgreSQL (one import aborted)."""
    orgs = tmp_path / "orgs.csv"  # the directory as it is: nothing changes
    orgs.write_text(
        "code,name,type,icb_code\nA81001,The Surgery,gp_practice,QHM\nU12345,North PCN,pcn,QHM\n"
    )
    users = tmp_path / "users.csv"  # the PCN (the higher id) first, then the practice
    users.write_text(
        "org_code,name,email,role\n"
        f"U12345,Pat New,pat.new@nhs.net,{PCN_ADMIN}\n"
        "A81001,Pat New,pat.new@nhs.net,Claims Admin\n"
    )
    checked, go = _paused_after(monkeypatch, imports, "grant_role")
    outcome = _race(
        db,
        checked,
        go,
        lambda session: imports.import_users(session, users, actor="ops"),
        lambda session: imports.import_organisations(session, orgs, actor="ops"),
    )
    assert outcome == {"first": "done", "second": "done"}, outcome
