"""Caseworker actions, through the functions and through `pcse case …`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from caseworker.accounts import account_of, is_supervisor
from caseworker.models import Caseworker
from core.clock import FixedClock
from core.db import Database
from core.inbound import MessageKind
from tests.test_workflow_helpers import (
    MANAGER,
    NOMINEE,
    NOW,
    PARTNER,
    answer,
    case_of,
    deliver,
    email_request,
    events,
    gpp_form,
    grant_admins,
    holders,
    mail_from,
    make_env,
    open_request,
    outbox,
    token_for,
)
from workflow import actions
from workflow.cases import get_case
from workflow.env import WorkflowEnv
from workflow.reminders import run_due

UNRECORDED = {
    "name": "Eve Mallory",
    "email": "eve@nhs.net",
    "capacity": "gp_partner",
    "date": None,
    "declaration": True,
}


def triage_case(db: Database, env: WorkflowEnv) -> str:
    ref = open_request(db, env, gpp_form(signer=UNRECORDED))
    assert case_of(db, ref).state == "triage"
    return ref


def test_caseworker_approves_a_triage_case(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        assert actions.allowed_actions(get_case(session, ref)) == [
            "approve",
            "reject",
            "request_info",
            "send_approval_request",
            "withdraw",
        ]
        actions.approve(session, env, ref, by="casey@pcse", reason="Signer confirmed by phone")
    assert case_of(db, ref).state == "completed"
    assert holders(db, "A81001", "gpp") == [NOMINEE[1]]
    action = events(db, ref, "caseworker_action")[0]
    assert action["actor"] == "casey@pcse"
    assert action["data"]["reason"] == "Signer confirmed by phone"


def test_approval_that_breaks_a_rule_is_refused_and_changes_nothing(
    db: Database,
    env: WorkflowEnv,
) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        grant_admins(session, "A81001", "GPP Practice User Administrator", 4)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match=r"four|4"):
        actions.approve(session, env, ref, by="casey", reason="ok")
    assert case_of(db, ref).state == "triage"
    assert NOMINEE[1] not in holders(db, "A81001", "gpp")


def test_reject_tells_the_requester(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        actions.reject(session, env, ref, by="casey", reason="The signer is not a partner.")
    assert case_of(db, ref).state == "rejected"
    (told,) = outbox(db, "outcome_rejected")
    assert "not a partner" in told.body_text and told.to_address == MANAGER[1]


def test_reject_cancels_open_tokens(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    with db.transaction() as session:
        actions.reject(session, env, ref, by="casey", reason="Duplicate of another case.")
    assert "refused" in answer(db, env, ref, PARTNER, "APPROVE").lower()
    assert holders(db, "A81001", "gpp") == []


def test_request_info_then_the_reply_comes_back_to_a_caseworker(
    db: Database,
    env: WorkflowEnv,
) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        actions.request_info(
            session, env, ref, by="casey", message="Please ask a GP partner to sign Part B."
        )
    assert case_of(db, ref).state == "needs_info"
    (asked,) = outbox(db, "needs_info")
    assert "GP partner to sign" in asked.body_text
    reply = mail_from(
        MANAGER,
        subject=f"RE: [{ref}] More information needed",
        text="Dr Patel will sign it today.\n\n> Please ask a GP partner\n",
    )
    deliver(db, env, reply, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "answered the caseworker" in case.reason


def test_ask_approver_only_a_recorded_one(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="recorded"):
        actions.send_approval_request(session, env, ref, by="casey", approver_email="eve@nhs.net")
    with db.transaction() as session:
        approval = actions.send_approval_request(
            session, env, ref, by="casey", approver_email="A.Patel@nhs.net"
        )
        assert approval.approver_email == PARTNER[1]
    assert case_of(db, ref).state == "awaiting_approval"
    answer(db, env, ref, PARTNER, "Approved")
    assert case_of(db, ref).state == "completed"


def expired_case(db: Database) -> tuple[WorkflowEnv, str]:
    """A request nobody answered, expired after ten days."""
    clock = FixedClock(NOW)
    env = make_env(clock)
    ref = open_request(db, env, email_request("pl_admin"))
    clock.advance(days=11)
    run_due(db, env)
    return env, ref


def test_reopen_needs_a_supervisor(db: Database) -> None:
    env, ref = expired_case(db)
    with db.transaction() as session:
        session.add_all(
            [
                Caseworker(email="casey@pcse", name="Casey", password_hash="x"),
                Caseworker(
                    email="sue@pcse", name="Sue Super", password_hash="x", is_supervisor=True
                ),
            ]
        )
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="supervisor"):
        actions.reopen(session, env, ref, by="casey@pcse", reason="late answer")
    with db.transaction() as session:
        actions.reopen(session, env, ref, by="Sue Super", reason="The partner answered late.")
    assert case_of(db, ref).state == "triage"


def test_with_no_caseworker_accounts_nobody_is_a_supervisor(db: Database) -> None:
    """Before the first account is added, `--by` names nobody: what needs a supervisor
    waits for accounts, and the refusal says how to add them."""
    env, ref = expired_case(db)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Caseworker)) == 0  # premise
        with pytest.raises(actions.ActionRefused, match="pcse caseworker add"):
            actions.reopen(session, env, ref, by="The Supervisor", reason="late answer")
    assert case_of(db, ref).state == "expired"


def test_withdraw_and_actions_not_allowed(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    with db.transaction() as session:
        actions.withdraw(session, env, ref, by="casey", reason="Sent twice.")
    assert case_of(db, ref).state == "withdrawn"
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="withdrawn"):
        actions.approve(session, env, ref, by="casey", reason="x")
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="reason"):
        actions.reject(session, env, ref, by="casey", reason="  ")
    with db.transaction() as session:
        assert actions.allowed_actions(get_case(session, ref)) == []


def _accounts(db: Database, *emails: str) -> None:
    with db.transaction() as session:
        for email in emails:
            name = email.split("@")[0].title()
            session.add(Caseworker(email=email, name=name, password_hash="x"))


def test_assign_take_over_and_release_are_recorded(db: Database, env: WorkflowEnv) -> None:
    ref = triage_case(db, env)
    _accounts(db, "casey@pcse.nhs.uk", "sam@pcse.nhs.uk")
    with db.transaction() as session:
        actions.assign(session, env, ref, to="Casey@PCSE.nhs.uk", by="casey@pcse.nhs.uk")
        actions.assign(session, env, ref, to="casey@pcse.nhs.uk", by="casey@pcse.nhs.uk")
        actions.assign(session, env, ref, to="sam@pcse.nhs.uk", by="sam@pcse.nhs.uk")
        assert get_case(session, ref).assigned_to == "sam@pcse.nhs.uk"
        actions.assign(session, env, ref, to=None, by="sam@pcse.nhs.uk")
        assert get_case(session, ref).assigned_to is None
    # The repeated assignment changed nothing, so it is recorded once.
    assert [e["detail"] for e in events(db, ref, "assigned")] == [
        "casey@pcse.nhs.uk assigned the case to casey@pcse.nhs.uk.",
        "sam@pcse.nhs.uk assigned the case to sam@pcse.nhs.uk (it was with casey@pcse.nhs.uk).",
        "sam@pcse.nhs.uk released the case (it was with sam@pcse.nhs.uk).",
    ]
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="who"):
        actions.assign(session, env, ref, to="x@nhs.net", by=" ")
    # By the account's name too; a name of no account is refused, the case left as it was.
    with db.transaction() as session:
        assert actions.assign(session, env, ref, to="Sam", by="sam").assigned_to == (
            "sam@pcse.nhs.uk"
        )
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="no active"):
        actions.assign(session, env, ref, to="nobody@nhs.net", by="sam")
    assert case_of(db, ref).assigned_to == "sam@pcse.nhs.uk"


def test_an_address_names_its_own_account_and_a_shared_name_names_none(
    db: Database, env: WorkflowEnv
) -> None:
    """An account called by another's address does not hide that account; two accounts
    with one name are named by neither, for assigning and for a supervisor's say alike."""
    ref = triage_case(db, env)
    with db.transaction() as session:
        session.add_all(
            [
                Caseworker(email="sam@pcse.nhs.uk", name="Sam Jones", password_hash="x"),
                Caseworker(
                    email="sam.j@pcse.nhs.uk", name="Sam Jones", password_hash="x",
                    is_supervisor=True,
                ),
                Caseworker(email="casey@pcse.nhs.uk", name="sam@pcse.nhs.uk", password_hash="x"),
            ]
        )  # fmt: skip
    with db.transaction() as session:
        assert account_of(session, "SAM@pcse.nhs.uk") == "sam@pcse.nhs.uk"
        assert account_of(session, "Sam Jones") is None
        assert not is_supervisor(session, "Sam Jones")
        assert is_supervisor(session, "sam.j@pcse.nhs.uk")
        actions.assign(session, env, ref, to="sam@pcse.nhs.uk", by="casey")
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="more than one"):
        actions.assign(session, env, ref, to="Sam Jones", by="casey")
    assert case_of(db, ref).assigned_to == "sam@pcse.nhs.uk"


# --------------------------------------------------------------------------- the command line


def _config(tmp_path: Path, db: Database) -> Path:
    path = tmp_path / "pcse.toml"
    path.write_text(
        f'[database]\nurl = "{db.url}"\n\n[security]\n'
        'sender_authentication = "authserv-id"\n'
        f'trusted_authserv_ids = ["mx.nhs.net"]\n'
    )
    return path


def pcse(config: Path, *args: str) -> tuple[int, str, str]:
    from service.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        # The entry point turns PcseError into one line on stderr; show it the same way.
        return 1, result.stdout, str(result.exception)
    return result.exit_code, result.stdout, result.stderr


def test_cli_actions_and_case_show_history(db: Database, env: WorkflowEnv, tmp_path: Path) -> None:
    config = _config(tmp_path, db)
    ref = triage_case(db, env)
    code, out, err = pcse(
        config, "case", "ask-approver", ref, "--by", "casey", "--approver", "eve@nhs.net"
    )
    assert code == 1 and "not a recorded signer" in err
    code, out, _ = pcse(
        config, "case", "approve", ref, "--by", "casey", "--reason", "Confirmed by phone", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["state"] == "completed"
    code, out, _ = pcse(config, "case", "show", ref, "--json")
    document = json.loads(out)
    kinds = [h["event"] for h in document["history"]]
    assert {"created", "check", "decision", "caseworker_action", "applied"} <= set(kinds)
    signer_check = next(
        h for h in document["history"] if h["data"].get("check") == "signer_recorded"
    )
    assert "Eve Mallory" in signer_check["detail"]
    assert signer_check["data"]["passed"] is False


def test_cli_assign_and_release(db: Database, env: WorkflowEnv, tmp_path: Path) -> None:
    config = _config(tmp_path, db)
    ref = triage_case(db, env)
    code, _, err = pcse(config, "case", "assign", ref, "--by", "casey", "--to", "sam@nhs.net")
    assert code == 1 and "sam@nhs.net names no active caseworker account" in err
    _accounts(db, "sam@nhs.net")
    code, out, _ = pcse(config, "case", "assign", ref, "--by", "casey", "--to", "sam@nhs.net")
    assert code == 0 and out.strip() == f"{ref} is now with sam@nhs.net."
    code, out, _ = pcse(config, "case", "assign", ref, "--by", "casey", "--release")
    assert code == 0 and out.strip() == f"{ref} is now with nobody."
    code, _, err = pcse(config, "case", "assign", ref, "--by", "casey")
    assert code == 2 and "Give either --to EMAIL or --release." in err
    with db.transaction() as session:
        assert get_case(session, ref).assigned_to is None


def test_cli_history_shows_every_check_of_an_answer(
    db: Database, env: WorkflowEnv, tmp_path: Path
) -> None:
    config = _config(tmp_path, db)
    ref = open_request(db, env, gpp_form())
    answer(
        db,
        env,
        ref,
        ("Mallory", "mallory@nhs.net"),
        "APPROVE",
        token=token_for(db, ref, PARTNER[1]),
    )
    answer(db, env, ref, PARTNER, "REJECT she has left")
    code, out, _ = pcse(config, "case", "show", ref, "--json")
    assert code == 0
    history = json.loads(out)["history"]
    checks = [h for h in history if h["event"] == "check"]
    names = {h["data"]["check"] for h in checks}
    assert {
        "token_known",
        "token_open",
        "token_unexpired",
        "changes_unchanged",
        "sender_parsed",
        "sender_authenticated",
        "sender_is_approver",
        "approver_independent",
        "signer_recorded",
    } <= names
    refused = [h for h in history if h["event"] == "approval_refused"]
    assert refused and "mallory@nhs.net" in refused[0]["detail"]
    said = [h["data"]["said"] for h in history if h["event"] == "message" and "said" in h["data"]]
    assert "REJECT she has left" in said
    assert json.loads(out)["state"] == "rejected"
