"""Directory edits beyond ending roles (workflow.directory_edits and `pcse directory …`):
restoring a role, signers and AEL contacts added, changed and removed, each refused under
the rules with nothing changed, each recorded with who and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from tests.test_actions import _config, pcse
from tests.test_workflow_helpers import AEL, ICB_CONTACT, PARTNER, grant_admins, holders
from workflow import directory, directory_edits
from workflow.models import DirectoryEvent, RoleAssignment
from workflow.rules import RuleViolation

GPP_ADMIN = "GPP Practice User Administrator"


def _events(db: Database, action: str) -> list[DirectoryEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(DirectoryEvent).where(DirectoryEvent.action == action)))


def test_restore_a_role_goes_through_the_rules(db: Database) -> None:
    with db.transaction() as session:
        grant_admins(session, "A81001", GPP_ADMIN, 1)
        directory.revoke_role(
            session,
            org_code="A81001",
            email="admin1@nhs.net",
            role=GPP_ADMIN,
            actor="a",
            reason="x",
        )
        ended = session.scalars(select(RoleAssignment.id)).one()
        grant_admins(session, "A81001", GPP_ADMIN, 4, start=2)  # the places are full now
    with db.transaction() as session, pytest.raises(RuleViolation, match="the most allowed"):
        directory_edits.restore_role(session, assignment_id=ended, actor="casey", reason="oops")
    assert "admin1@nhs.net" not in holders(db, "A81001", "gpp")
    with db.transaction() as session:
        directory.revoke_role(
            session,
            org_code="A81001",
            email="admin5@nhs.net",
            role=GPP_ADMIN,
            actor="a",
            reason="x",
        )
        directory_edits.restore_role(session, assignment_id=ended, actor="casey", reason="Wrong")
    assert "admin1@nhs.net" in holders(db, "A81001", "gpp")
    granted = _events(db, "role_granted")[-1]
    assert granted.actor == "casey" and granted.reason.endswith(": Wrong")
    with db.transaction() as session, pytest.raises(RuleViolation, match="no ended role"):
        directory_edits.restore_role(session, assignment_id=99999, actor="c", reason="x")


def test_signer_edits_and_their_refusals(db: Database) -> None:
    with db.transaction() as session:
        directory_edits.add_signer(
            session,
            org_code="b82002",
            name="Dr Ann Lee",
            email="Ann.Lee@NHS.net",
            capacity="Company Director",
            actor="casey",
            reason="Letter from the practice",
        )
        assert directory.find_signer(session, "B82002", "ann.lee@nhs.net") is not None
    added = _events(db, "signer_added")[-1]
    assert (added.actor, added.reason, added.organisation_code) == (
        "casey",
        "Letter from the practice",
        "B82002",
    )
    refusals = [
        (dict(org_code="B82002", email="ann.lee@nhs.net", capacity="gp_partner"), "already"),
        (dict(org_code="B82002", email="new@nhs.net", capacity="nurse"), "not a signer's capacity"),
        (dict(org_code="QHM", email="new@nhs.net", capacity="gp_partner"), "is an ICB"),
        (dict(org_code="U12345", email="new@nhs.net", capacity="gp_partner"), "is a PCN: its"),
        (dict(org_code="Z99999", email="new@nhs.net", capacity="gp_partner"), "no organisation"),
        (dict(org_code="B82002", email="not-an-address", capacity="gp_partner"), "valid email"),
    ]
    for arguments, words in refusals:
        with db.transaction() as session, pytest.raises(RuleViolation, match=words):
            directory_edits.add_signer(session, name="X", actor="c", reason="r", **arguments)
    with db.transaction() as session:
        directory_edits.change_signer(
            session,
            org_code="B82002",
            email="ann.lee@nhs.net",
            capacity="gp_partner",
            actor="casey",
            reason="She is a partner now",
        )
    assert _events(db, "signer_updated")[-1].detail["changed"] == {
        "capacity": ["company_director", "gp_partner"]
    }
    with db.transaction() as session, pytest.raises(RuleViolation, match="Nothing to change"):
        directory_edits.change_signer(
            session, org_code="B82002", email="ann.lee@nhs.net", actor="c", reason="r"
        )
    with db.transaction() as session:
        directory_edits.remove_signer(
            session, org_code="B82002", email="ann.lee@nhs.net", actor="casey", reason="Left"
        )
        assert directory.find_signer(session, "B82002", "ann.lee@nhs.net") is None
    with db.transaction() as session, pytest.raises(RuleViolation, match="not a recorded signer"):
        directory_edits.remove_signer(
            session, org_code="B82002", email="ann.lee@nhs.net", actor="c", reason="r"
        )


def test_ael_edits_come_only_from_a_contact_for_the_same_role(db: Database) -> None:
    # A new address needs a requester, or else one caseworker could make anyone an approver.
    with db.transaction() as session, pytest.raises(RuleViolation, match="Say which AEL contact"):
        directory_edits.add_ael_contact(
            session, icb_code="QHM", name="Mallory Mate", email="m@nhs.net", actor="c", reason="r"
        )
    with db.transaction() as session, pytest.raises(RuleViolation, match="Say which AEL contact"):
        directory_edits.change_ael_contact(
            session,
            icb_code="QHM",
            email=ICB_CONTACT[1],
            new_email="m@nhs.net",
            actor="c",
            reason="r",
        )
    with db.transaction() as session, pytest.raises(RuleViolation, match="existing contact"):
        directory_edits.add_ael_contact(
            session,
            icb_code="QHM",
            name="Robin Ray",
            email="robin.ray@nhs.net",
            requested_by=PARTNER[1],
            actor="casey",
            reason="Asked",
        )
    with db.transaction() as session, pytest.raises(RuleViolation, match="no ICB"):
        directory_edits.add_ael_contact(
            session, icb_code="A81001", name="R", email="r@nhs.net", actor="c", reason="r"
        )
    with db.transaction() as session, pytest.raises(RuleViolation, match="not an AEL role"):
        directory_edits.add_ael_contact(
            session,
            icb_code="QHM",
            name="R",
            email="r@nhs.net",
            ael_role="Dentistry",
            actor="c",
            reason="r",
        )
    with db.transaction() as session:
        directory_edits.add_ael_contact(
            session,
            icb_code="QHM",
            name="Robin Ray",
            email="robin.ray@nhs.net",
            requested_by=ICB_CONTACT[1],
            actor="casey",
            reason="Asked by email",
        )
        assert directory.find_ael_contact(session, "QHM", "robin.ray@nhs.net") is not None
        directory_edits.change_ael_contact(
            session,
            icb_code="QHM",
            email="robin.ray@nhs.net",
            new_email="robin.ray2@nhs.net",
            requested_by="robin.ray@nhs.net",
            actor="casey",
            reason="New address",
        )
        directory_edits.remove_ael_contact(
            session, icb_code="QHM", email="robin.ray2@nhs.net", actor="casey", reason="Left"
        )
        assert directory.find_ael_contact(session, "QHM", "robin.ray2@nhs.net") is None
    actions = [e.action for e in _events(db, "ael_contact_added")]
    assert actions == ["ael_contact_added"]
    assert _events(db, "ael_contact_added")[0].detail["requested_by"] == ICB_CONTACT[1]
    assert _events(db, "ael_contact_removed")[0].detail["ael_role"] == AEL


def test_cli_directory_edits(db: Database, tmp_path: Path) -> None:
    config = _config(tmp_path, db)
    code, out, _ = pcse(
        config,
        "directory", "grant", "A81001", "nia.patel@nhs.net", GPP_ADMIN,
        "--name", "Nia Patel", "--by", "casey", "--reason", "Phoned",
    )  # fmt: skip
    assert code == 0 and out.strip() == f"Granted {GPP_ADMIN} at A81001 to nia.patel@nhs.net."
    code, out, err = pcse(
        config,
        "directory", "end-role", "A81001", "nia.patel@nhs.net", GPP_ADMIN,
        "--by", "casey", "--reason", "Wrong person",
    )  # fmt: skip
    assert code == 0 and "lost user management" in err  # R7: the last admin went
    code, out, _ = pcse(
        config,
        "directory", "restore", "A81001", "nia.patel@nhs.net", GPP_ADMIN,
        "--by", "casey", "--reason", "Right person after all", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["assignments"][0]["email"] == "nia.patel@nhs.net"
    assert holders(db, "A81001", "gpp") == ["nia.patel@nhs.net"]
    code, _, err = pcse(
        config,
        "directory", "grant", "A81001", "x@nhs.net", "Main Contact",
        "--by", "casey", "--reason", "x",
    )  # fmt: skip
    assert code == 0  # no Main Contact yet: PCSE sets one
    code, _, err = pcse(
        config,
        "directory", "grant", "A81001", "y@nhs.net", "Main Contact",
        "--by", "casey", "--reason", "x",
    )  # fmt: skip
    assert code == 1 and "already has a Main Contact" in err
    code, out, _ = pcse(
        config,
        "directory", "signer", "add", "C83003", "sol@nhs.net",
        "--name", "Dr Sol", "--capacity", "gp_partner", "--by", "casey", "--reason", "Form",
    )  # fmt: skip
    assert code == 0 and "Added sol@nhs.net as a signer of C83003." in out
    code, _, err = pcse(
        config,
        "directory", "signer", "remove", "C83003", "nobody@nhs.net", "--by", "c", "--reason", "x",
    )  # fmt: skip
    assert code == 1 and "not a recorded signer" in err
    code, out, _ = pcse(
        config,
        "directory", "ael", "add", "QHM", "robin@nhs.net", "--name", "Robin",
        "--requested-by", ICB_CONTACT[1], "--by", "casey", "--reason", "Asked", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["ael_role"] == AEL
    code, _, err = pcse(
        config,
        "directory", "ael", "remove", "QHM", "robin@nhs.net",
        "--requested-by", "stranger@nhs.net", "--by", "c", "--reason", "x",
    )  # fmt: skip
    assert code == 1 and "existing contact for the same role" in err


def test_the_first_contact_for_a_role_and_corrections_need_no_requester(db: Database) -> None:
    """Nobody could ask for the first contact of a role; a corrected name or a removal
    lets no new address approve."""
    with db.transaction() as session:
        directory_edits.add_ael_contact(
            session,
            icb_code="QHM",
            name="Rita Retire",
            email="rita@nhs.net",
            ael_role="Retirements",
            actor="casey",
            reason="NHS England's list",
        )
        directory_edits.change_ael_contact(
            session,
            icb_code="QHM",
            email=ICB_CONTACT[1],
            name="Alex Morgan-Lee",
            new_email=ICB_CONTACT[1].upper(),
            actor="casey",
            reason="Name spelt wrong",
        )
        directory_edits.remove_ael_contact(
            session, icb_code="QHM", email="rita@nhs.net", ael_role="Retirements",
            actor="casey", reason="Mail to her bounces",
        )  # fmt: skip
        assert directory.find_ael_contact(session, "QHM", ICB_CONTACT[1]).name == "Alex Morgan-Lee"
        assert directory.find_ael_contact(session, "QHM", "rita@nhs.net", "Retirements") is None


def test_removing_every_contact_does_not_open_the_way_to_an_unasked_addition(
    db: Database,
) -> None:
    with db.transaction() as session:
        for contact in directory.ael_contacts_for(session, "QHM"):
            directory_edits.remove_ael_contact(
                session, icb_code="QHM", email=contact.email, actor="casey", reason="Left"
            )
        assert directory.ael_contacts_for(session, "QHM") == []  # the premise
    with db.transaction() as session, pytest.raises(RuleViolation, match="Say which AEL contact"):
        directory_edits.add_ael_contact(
            session, icb_code="QHM", name="Mallory Mate", email="m@nhs.net", actor="c", reason="r"
        )
