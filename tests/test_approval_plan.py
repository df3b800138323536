"""Approve shows what it will change first: the plan, its digest, a stale plan refused, the
second-person rule for cases with open findings, and changing a case's kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from caseworker.models import Caseworker
from core.db import Database
from tests.test_actions import _config, pcse, triage_case
from tests.test_workflow_helpers import (
    GUARDIAN,
    MANAGER,
    NOMINEE,
    PARTNER,
    Mail,
    case_of,
    email_request,
    events,
    grant_admins,
    holders,
    mail_from,
    open_request,
    outbox,
)
from workflow import actions, corrections, directory, rekind
from workflow.approval_plan import plan_for
from workflow.cases import get_case
from workflow.env import WorkflowEnv

OLD_CONTACT = ("Olive Old", "olive.old@nhs.net")
NEW_CONTACT = {"name": "Nina New", "email": "nina.new@nhs.net"}
FINDING = {"code": "form_required", "message": "A GPP admin needs the signed form.", "field": None}


def _staff(db: Database) -> None:
    with db.transaction() as session:
        session.add_all(
            [
                Caseworker(email="casey@pcse", name="Casey", password_hash="x"),
                Caseworker(email="sam@pcse", name="Sam", password_hash="x"),
                Caseworker(email="sue@pcse", name="Sue", password_hash="x", is_supervisor=True),
            ]
        )


def _main_contact_case(db: Database, env: WorkflowEnv) -> str:
    with db.transaction() as session:
        directory.set_main_contact(
            session,
            org_code="A81001",
            email=OLD_CONTACT[1],
            name=OLD_CONTACT[0],
            actor="test",
            reason="setup",
        )
    return open_request(db, env, email_request("main_contact", main_contact=NEW_CONTACT))


def _with_findings(db: Database, env: WorkflowEnv) -> str:
    ref = triage_case(db, env)
    with db.transaction() as session:
        get_case(session, ref).findings = [FINDING]
    return ref


def test_the_plan_names_grants_and_the_main_contact_replaced_and_writes_nothing(
    db: Database, env: WorkflowEnv
) -> None:
    ref = _main_contact_case(db, env)
    with db.transaction() as session:
        plan = plan_for(session, env, get_case(session, ref), actor="casey@pcse")
    assert plan.grants == [
        {"role": "Main Contact", "email": NEW_CONTACT["email"], "name": NEW_CONTACT["name"]}
    ]
    assert plan.removals == [
        {"role": "Main Contact", "email": OLD_CONTACT[1], "name": OLD_CONTACT[0]}
    ]
    assert plan.conflict is None and len(plan.digest) == 64
    # The open approval requests end when it is applied.
    assert sorted(plan.cancels) == sorted([PARTNER[1], GUARDIAN[1]])
    assert holders(db, "A81001", "main_contact") == [OLD_CONTACT[1]]  # the dry run left no trace
    with db.transaction() as session:
        done = actions.approve_plan(
            session, env, ref, by="casey@pcse", reason="Phoned the partner", plan_digest=plan.digest
        )
        assert done.case.state == "completed" and not done.proposed
    assert holders(db, "A81001", "main_contact") == [NEW_CONTACT["email"]]
    applied = events(db, ref, "approval")[-1]
    assert applied["data"]["plan"] == plan.digest


def test_a_stale_plan_is_refused_and_nothing_is_applied(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        shown = plan_for(session, env, get_case(session, ref), actor="casey@pcse")
    with db.transaction() as session:  # the directory changes in between
        grant_admins(session, "A81001", "GPP Practice User Administrator", 3)
        directory.revoke_role(
            session,
            org_code="A81001",
            email="admin1@nhs.net",
            role="GPP Practice User Administrator",
            actor="test",
            reason="left",
        )
        directory.set_main_contact(
            session, org_code="A81001", email="mc@nhs.net", name="M C", actor="t", reason="x"
        )
    with db.transaction() as session:
        get_case(session, ref).fields = {
            **get_case(session, ref).fields,
            "nominees": [{"name": "Other One", "email": "other@nhs.net", "services": ["gpp"]}],
        }
    with db.transaction() as session, pytest.raises(actions.StalePlan) as stale:
        actions.approve_plan(
            session, env, ref, by="casey@pcse", reason="ok", plan_digest=shown.digest
        )
    assert stale.value.plan.digest != shown.digest
    assert stale.value.plan.grants[0]["email"] == "other@nhs.net"
    assert case_of(db, ref).state == "triage"
    assert NOMINEE[1] not in holders(db, "A81001", "gpp")


def _refused_then_confirmed(
    db: Database, env: WorkflowEnv, ref: str, digest: str, *, same: str, other: str
) -> None:
    """The proposer confirming their own proposal is refused; another caseworker applies it."""
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="second"):
        actions.approve_plan(session, env, ref, by=same, reason="again", plan_digest=digest)
    with db.transaction() as session:
        second = actions.approve_plan(
            session, env, ref, by=other, reason="Agreed", plan_digest=digest
        )
    assert not second.proposed and case_of(db, ref).state == "completed"


def test_open_findings_need_a_second_caseworker(db: Database, env: WorkflowEnv) -> None:
    _staff(db)
    ref = _with_findings(db, env)
    with db.transaction() as session:
        first = actions.approve_plan(session, env, ref, by="casey@pcse", reason="Phoned them")
    assert first.proposed and case_of(db, ref).state == "triage"
    assert first.plan.findings == [FINDING["message"]]
    assert events(db, ref, "approval_proposed")[0]["actor"] == "casey@pcse"
    _refused_then_confirmed(db, env, ref, first.plan.digest, same="CASEY@pcse", other="sam@pcse")
    approval = events(db, ref, "approval")[-1]
    assert approval["data"]["proposed_by"] == "casey@pcse"
    assert approval["data"]["confirmed_by"] == "sam@pcse"
    assert "confirmed by caseworker sam@pcse" in approval["detail"]
    assert holders(db, "A81001", "gpp") == [NOMINEE[1]]


def test_a_doubt_settled_by_a_caseworker_s_own_correction_still_needs_a_second_person(
    db: Database, env: WorkflowEnv
) -> None:
    """A doubtful reading of the nominee's address calls for a second person; the one
    caseworker correcting it must not be able to settle the doubt and approve alone."""
    _staff(db)
    ref = triage_case(db, env)
    with db.transaction() as session:
        get_case(session, ref).findings = [
            {"code": "ocr_low_confidence", "field": "nominees.0.email", "message": "Unclear"}
        ]
    with db.transaction() as session:
        corrections.correct(
            session,
            env,
            ref,
            field="nominees.0.email",
            value="mallory@nhs.net",
            by="casey@pcse",
            reason="typo",
        )
    with db.transaction() as session:
        case = get_case(session, ref)
        assert case.findings == []  # the doubt itself is settled by the correction
        first = actions.approve_plan(session, env, ref, by="casey@pcse", reason="Looks fine")
    assert first.proposed and case_of(db, ref).state != "completed"
    assert first.plan.as_dict()["needs_second_person"]
    assert first.plan.findings == [
        "Nominee 1's email address is a caseworker's correction (by casey@pcse), not what the "
        "request said: a second person checks it."
    ]
    assert holders(db, "A81001", "gpp") == []
    _refused_then_confirmed(db, env, ref, first.plan.digest, same="casey@pcse", other="sam@pcse")
    assert holders(db, "A81001", "gpp") == ["mallory@nhs.net"]


def test_a_value_a_caseworker_filled_in_is_checked_by_another_or_a_supervisor(
    db: Database, env: WorkflowEnv
) -> None:
    _staff(db)
    ref = triage_case(db, env)
    with db.transaction() as session:
        corrections.correct(
            session, env, ref, field="nominees.0.name", value="Nia Patel", by="sam@pcse", reason="x"
        )
    with db.transaction() as session:
        first = actions.approve_plan(session, env, ref, by="casey@pcse", reason="Phoned them")
    assert first.proposed, "Sam's word on the nominee is not enough on Casey's approval alone"
    with db.transaction() as session:  # Sam, who corrected it, is the second pair of eyes
        second = actions.approve_plan(
            session, env, ref, by="sam@pcse", reason="Agreed", plan_digest=first.plan.digest
        )
    assert not second.proposed and case_of(db, ref).state == "completed"

    other = triage_case(db, env)
    with db.transaction() as session:
        corrections.correct(
            session,
            env,
            other,
            field="nominees.0.email",
            value="nia.p@nhs.net",
            by="sue@pcse",
            reason="x",
        )
    with db.transaction() as session:
        done = actions.approve_plan(session, env, other, by="sue@pcse", reason="Seen the form")
    assert not done.proposed and case_of(db, other).state == "completed"


def test_a_supervisor_approves_open_findings_alone(db: Database, env: WorkflowEnv) -> None:
    _staff(db)
    ref = _with_findings(db, env)
    with db.transaction() as session:
        done = actions.approve_plan(session, env, ref, by="sue@pcse", reason="Seen the form")
    assert not done.proposed and case_of(db, ref).state == "completed"
    assert events(db, ref, "approval")[-1]["data"]["supervisor"] == "sue@pcse"


def test_a_proposal_for_a_plan_that_changed_does_not_count(db: Database, env: WorkflowEnv) -> None:
    _staff(db)
    ref = _with_findings(db, env)
    with db.transaction() as session:
        actions.approve_plan(session, env, ref, by="casey@pcse", reason="Phoned them")
    with db.transaction() as session:  # what was read is corrected afterwards
        case = get_case(session, ref)
        case.fields = {
            **case.fields,
            "nominees": [{"name": "Other One", "email": "other@nhs.net", "services": ["gpp"]}],
        }
    with db.transaction() as session:
        again = actions.approve_plan(session, env, ref, by="sam@pcse", reason="Agreed")
    # Sam's approval is of a different plan from Casey's: it is a new proposal, not applied.
    assert again.proposed and case_of(db, ref).state == "triage"
    assert "has since changed" in events(db, ref, "approval_proposed")[-1]["detail"]
    assert holders(db, "A81001", "gpp") == []


def test_a_proposal_by_an_account_deactivated_since_does_not_count(
    db: Database, env: WorkflowEnv
) -> None:
    _staff(db)
    ref = _with_findings(db, env)
    with db.transaction() as session:
        first = actions.approve_plan(session, env, ref, by="casey@pcse", reason="Phoned them")
    with db.transaction() as session:
        casey = update(Caseworker).where(Caseworker.email == "casey@pcse")
        session.execute(casey.values(active=False))
    with db.transaction() as session:
        again = actions.approve_plan(
            session, env, ref, by="sam@pcse", reason="Agreed", plan_digest=first.plan.digest
        )
    assert again.proposed and case_of(db, ref).state == "triage"
    assert "no longer active" in events(db, ref, "approval_proposed")[-1]["detail"]
    assert holders(db, "A81001", "gpp") == []


def test_cli_dry_run_then_approve_with_the_plan(
    db: Database, env: WorkflowEnv, tmp_path: Path
) -> None:
    config = _config(tmp_path, db)
    ref = _main_contact_case(db, env)
    code, out, _ = pcse(config, "case", "approve", ref, "--by", "casey", "--dry-run")
    assert code == 0, out
    assert f"Grant Main Contact at A81001 to Nina New <{NEW_CONTACT['email']}>." in out
    assert f"End Main Contact at A81001 of Olive Old <{OLD_CONTACT[1]}>." in out
    code, out, _ = pcse(config, "case", "approve", ref, "--by", "casey", "--dry-run", "--json")
    plan = json.loads(out)
    assert plan["removals"][0]["email"] == OLD_CONTACT[1] and plan["needs_second_person"] is False
    assert case_of(db, ref).state == "awaiting_approval"
    code, _, err = pcse(
        config, "case", "approve", ref, "--by", "casey", "--reason", "ok", "--plan", "0" * 64
    )
    assert code == 1 and "no longer the ones that were confirmed" in err
    code, out, _ = pcse(
        config, "case", "approve", ref, "--by", "casey", "--reason", "ok", "--plan", plan["plan"]
    )
    assert code == 0 and out.strip().startswith(f"{ref} is now completed")


def test_cli_second_person_rule(db: Database, env: WorkflowEnv, tmp_path: Path) -> None:
    config = _config(tmp_path, db)
    _staff(db)
    ref = _with_findings(db, env)
    code, out, _ = pcse(config, "case", "approve", ref, "--by", "casey@pcse", "--reason", "ok")
    assert code == 0 and "a second caseworker or a supervisor must confirm it" in out
    code, _, err = pcse(config, "case", "approve", ref, "--by", "casey@pcse", "--reason", "ok")
    assert code == 1 and "second caseworker" in err
    # The same account by its name is the same person; a name with no account is nobody.
    code, _, err = pcse(config, "case", "approve", ref, "--by", "Casey", "--reason", "ok")
    assert code == 1 and "second caseworker" in err
    code, _, err = pcse(config, "case", "approve", ref, "--by", "someone", "--reason", "ok")
    assert code == 1 and "names no active account" in err
    code, out, _ = pcse(
        config, "case", "approve", ref, "--by", "sam@pcse", "--reason", "agreed", "--json"
    )
    assert code == 0 and json.loads(out)["state"] == "completed"


def test_cli_with_no_accounts_a_case_with_findings_waits_for_them(
    db: Database, env: WorkflowEnv, tmp_path: Path
) -> None:
    """Before any caseworker account exists, `--by` names nobody: the second-person rule
    cannot be met by typing a name, and the refusal says how to add accounts."""
    config = _config(tmp_path, db)
    ref = _with_findings(db, env)
    code, _, err = pcse(config, "case", "approve", ref, "--by", "casey", "--reason", "ok")
    assert code == 1 and "names no active account" in err and "pcse caseworker add" in err
    assert case_of(db, ref).state == "triage"
    assert holders(db, "A81001", "gpp") == []


LOCKED_OUT = (
    "Hello,\n\nI am locked out of PCSE Online and cannot reset my password. My practice "
    "is A81001 and our main contact changed last year.\n\nThanks\nMo Manager\n"
)
PL_BODY = (
    "Hello,\n\nPlease set up Jane Smith (jane.smith@nhs.net) as PL Organisation Administrator "
    "for our practice A81001.\n\nMo Manager\nPractice Manager\n"
)


def misread_as_main_contact(db: Database, env: WorkflowEnv) -> tuple[str, Mail]:
    """A password problem read as a change of Main Contact, awaiting approval."""
    mail = mail_from(MANAGER, subject="Locked out of PCSE Online", text=LOCKED_OUT)
    ref = open_request(
        db,
        env,
        email_request("main_contact", main_contact=NEW_CONTACT),
        subject=mail.subject,
        text=mail.text,
    )
    assert case_of(db, ref).state == "awaiting_approval"
    return ref, mail


def test_change_kind_rereads_voids_the_approval_request_and_goes_to_triage(
    db: Database, env: WorkflowEnv
) -> None:
    ref, mail = misread_as_main_contact(db, env)
    with db.transaction() as session:
        case = rekind.change_kind(
            session,
            env,
            ref,
            kind="other",
            by="casey@pcse",
            reason="A password problem, not a Main Contact change",
            mail=mail,
        )
        assert case.kind == "other" and case.state == "triage"
        assert case.fields["main_contact"] is None  # read again: no Main Contact asked for
    changed = events(db, ref, "kind_changed")[0]
    assert changed["actor"] == "casey@pcse"
    assert changed["data"]["from"] == "main_contact" and changed["data"]["to"] == "other"
    assert changed["data"]["before"]["fields"]["main_contact"] == NEW_CONTACT
    assert "A password problem" in changed["detail"]
    assert outbox(db, "approval_void"), "the approver is told the request no longer counts"
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="already"):
        rekind.change_kind(session, env, ref, kind="other", by="c", reason="x", mail=mail)


def test_change_kind_reads_the_email_as_the_new_kind(db: Database, env: WorkflowEnv) -> None:
    mail = mail_from(MANAGER, subject="Main contact", text=PL_BODY)
    ref = open_request(db, env, email_request("other"), subject=mail.subject, text=mail.text)
    with db.transaction() as session:
        case = rekind.change_kind(
            session,
            env,
            ref,
            kind="pl_admin",
            by="casey",
            reason="It asks for a PL admin",
            mail=mail,
        )
        assert case.kind == "pl_admin"
        assert [n["email"] for n in case.fields["nominees"]] == [NOMINEE[1]]
        assert case.fields["nominees"][0]["services"] == ["pl"]


def test_change_kind_refusals(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="no case kind"):
        rekind.change_kind(session, env, ref, kind="nonsense", by="c", reason="x", mail=None)
    with db.transaction() as session:
        actions.withdraw(session, env, ref, by="c", reason="dup")
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="before it is"):
        rekind.change_kind(session, env, ref, kind="other", by="c", reason="x", mail=None)


def test_form_kind_without_its_form_adds_a_finding(db: Database, env: WorkflowEnv) -> None:
    mail = mail_from(MANAGER, subject="PL admin", text=PL_BODY)
    ref = open_request(db, env, email_request("pl_admin"), subject=mail.subject, text=mail.text)
    with db.transaction() as session:
        case = rekind.change_kind(
            session, env, ref, kind="gpp_admin_form", by="c", reason="GPP really", mail=mail
        )
        assert case.kind == "gpp_admin_form" and case.state == "triage"
        assert any(f["code"] == "form_required" for f in case.findings)
