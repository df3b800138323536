"""An answer that decides nothing still reaches a person when it says no.

An approver may answer the email they were first sent after the case has moved on (a
caseworker asked again, with a new code): their "REJECT, this looks like fraud" carries a
code no longer valid. And a new request may quote an approval code of no case at all. Each
used to end as a line in a history nobody was shown, and a second approver's APPROVE could
complete the case the first had reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.inbound import MessageKind
from intake.models import InboundMessage
from service.config import Config
from tests.test_workflow_helpers import (
    GUARDIAN,
    MANAGER,
    PARTNER,
    answer,
    case_of,
    deliver,
    email_request,
    holders,
    mail_from,
    open_request,
    token_for,
)
from tests.test_workflow_mail import arrive, email, mail_config, mail_world, sent, the_case
from workflow import actions
from workflow.env import WorkflowEnv

FRAUD = "REJECT - I never signed anything like this. This looks like fraud."


def asked_again(db: Database, env: WorkflowEnv) -> tuple[str, str]:
    """A PL admin request whose first codes a caseworker replaced, asking the Guardian only;
    the case's reference and the Partner's first code."""
    ref = open_request(db, env, email_request("pl_admin"))
    partners_code = token_for(db, ref, PARTNER[1])
    update = mail_from(MANAGER, subject=f"RE: [{ref}] Your request", text="Any update?")
    deliver(db, env, update, MessageKind.CASE_REPLY, case_ref=ref)
    with db.transaction() as session:
        actions.send_approval_request(session, env, ref, by="cw@pcse", approver_email=GUARDIAN[1])
    assert case_of(db, ref).state == "awaiting_approval"  # the premise
    return ref, partners_code


def test_a_rejection_with_an_old_code_stops_the_case_for_a_person(
    db: Database, env: WorkflowEnv
) -> None:
    ref, partners_code = asked_again(db, env)
    answer(db, env, ref, PARTNER, FRAUD, token=partners_code)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "did not approve" in (case.reason or "")
    answer(db, env, ref, GUARDIAN, "APPROVE")  # the Guardian's code no longer decides
    assert case_of(db, ref).state == "triage"
    assert holders(db, "A81001", "pl") == []


def test_an_approval_with_an_old_code_still_waits_for_the_live_one(
    db: Database, env: WorkflowEnv
) -> None:
    ref, partners_code = asked_again(db, env)
    answer(db, env, ref, PARTNER, "APPROVE", token=partners_code)
    assert case_of(db, ref).state == "awaiting_approval"
    answer(db, env, ref, GUARDIAN, "APPROVE")
    assert case_of(db, ref).state == "completed"


def test_a_rejection_with_an_old_code_on_a_case_a_person_has_is_marked(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, email_request("pl_admin"))
    partners_code = token_for(db, ref, PARTNER[1])
    update = mail_from(MANAGER, subject=f"RE: [{ref}] Your request", text="Any update?")
    deliver(db, env, update, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage" and case.new_reply_at is not None  # the premise
    with db.transaction() as session:
        session.get(type(case), case.id).new_reply_at = None  # the caseworker read it
    answer(db, env, ref, PARTNER, FRAUD, token=partners_code)
    case = case_of(db, ref)
    assert case.state == "triage" and case.new_reply_at is not None


@pytest.fixture
def mail_db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(mail_db: Database, tmp_path: Path) -> Config:
    return mail_config(mail_db, tmp_path)


def test_a_new_request_quoting_a_code_of_no_case_is_read_as_one(
    mail_db: Database, config: Config, env: WorkflowEnv
) -> None:
    db = mail_db
    text = "Form attached. (Our earlier approval ref was APV-0123456789abcdef0123.)"
    arrive(db, config, env, email(MANAGER, "GPP user admin form", text, pdf="gpp-acroform.pdf"))
    case = the_case(db, MANAGER[1])
    assert case.kind == "gpp_admin_form"
    assert [m.to_address for m in sent(db, "acknowledgement")] == [MANAGER[1]]
    with db.transaction() as session:
        (row,) = session.scalars(select(InboundMessage)).all()
        assert row.case_id == case.id


@pytest.mark.parametrize("who", ["stranger", "forged"])
def test_an_old_code_from_anyone_but_its_approver_only_marks_the_case(
    who: str, db: Database, env: WorkflowEnv
) -> None:
    """Whoever holds an old code, or writes the approver's From without the receiving
    server vouching, cannot stop the case: a person is shown the reply, and the live code
    still decides."""
    ref, partners_code = asked_again(db, env)
    if who == "stranger":
        answer(db, env, ref, ("Eve Other", "eve.other@nhs.net"), FRAUD, token=partners_code)
    else:
        answer(db, env, ref, PARTNER, FRAUD, token=partners_code, dmarc=False)
    case = case_of(db, ref)
    assert case.state == "awaiting_approval" and case.new_reply_at is not None
    answer(db, env, ref, GUARDIAN, "APPROVE")
    assert case_of(db, ref).state == "completed"


def test_a_rejection_with_a_mistyped_code_on_its_case_is_shown_to_a_person(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, email_request("pl_admin"))
    answer(db, env, ref, PARTNER, FRAUD, token="0123456789abcdef0123")
    case = case_of(db, ref)
    assert case.state == "awaiting_approval" and case.new_reply_at is not None
