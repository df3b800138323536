"""The new reply marker in the workflow: which messages set it, and that only a person,
with a reason, clears it or reopens the case (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from caseworker.accounts import add_caseworker
from core.db import Database
from core.inbound import MessageKind
from tests.test_workflow_helpers import (
    ICB_CONTACT,
    ICB_CONTACT_2,
    MANAGER,
    NOMINEE,
    PARTNER,
    answer,
    case_of,
    deliver,
    email_request,
    events,
    gpp_form,
    mail_from,
    open_request,
    outbox,
    pcn_form,
)
from workflow import actions, new_replies
from workflow.env import WorkflowEnv
from workflow.models import Case
from workflow.new_replies import MarkerRefused
from workflow.retention import preview
from workflow.settings import RetentionConfig


def _reply(db: Database, env: WorkflowEnv, ref: str, sender=MANAGER, text="One more thing.") -> str:
    mail = mail_from(sender, subject=f"Re: [{ref}] Your request", text=text)
    return deliver(db, env, mail, MessageKind.CASE_REPLY, case_ref=ref)


def test_a_late_no_from_a_second_approver_reaches_a_person(db: Database, env: WorkflowEnv) -> None:
    request = pcn_form()
    ref = open_request(db, env, request)
    answer(db, env, ref, ICB_CONTACT_2, "approved")
    assert case_of(db, ref).state == "completed" and case_of(db, ref).new_reply_at is None
    answer(db, env, ref, ICB_CONTACT, "REJECT she has left the PCN")
    case = case_of(db, ref)
    assert case.state == "completed" and case.new_reply_at is not None
    assert events(db, ref, "new_reply")[-1]["detail"].endswith("an approval answer came in late")


def test_the_requester_writing_again_marks_an_open_case(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, email_request("oph_admin", organisation_code="OC4567"))
    assert case_of(db, ref).state == "triage"
    outcome = _reply(db, env, ref, text="Also, please add Sam.")
    assert "requester wrote again" in outcome
    case = case_of(db, ref)
    assert case.state == "triage" and case.new_reply_at is not None
    assert outbox(db)[-1].purpose == "acknowledgement"  # nothing is sent back automatically


def test_during_approval_the_requester_goes_to_triage_and_a_stranger_is_marked(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    _reply(db, env, ref, sender=("Someone Else", "someone.else@nhs.net"))
    case = case_of(db, ref)
    assert case.state == "awaiting_approval" and case.new_reply_at is not None
    _reply(db, env, ref, text="I did not send this.")
    assert case_of(db, ref).state == "triage"


def test_the_answer_a_case_waits_for_is_not_marked(db: Database, env: WorkflowEnv) -> None:
    missing = gpp_form(nominees=[{"name": NOMINEE[0], "email": None, "services": ["gpp"]}])
    ref = open_request(db, env, missing)
    assert case_of(db, ref).state == "needs_info"
    _reply(db, env, ref, text=f"Her address is {NOMINEE[1]}")
    case = case_of(db, ref)
    assert case.state == "awaiting_approval" and case.new_reply_at is None


def test_only_a_person_with_a_reason_clears_or_reopens(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "Approved")
    with db.transaction() as session, pytest.raises(MarkerRefused, match="has no new reply"):
        new_replies.clear(session, env, ref, by="casey", reason="read")
    _reply(db, env, ref, text="This is a mistake, please reverse it.")
    with db.transaction() as session, pytest.raises(MarkerRefused, match="reason"):
        new_replies.reopen(session, env, ref, by="casey", reason=" ")
    with db.transaction() as session, pytest.raises(MarkerRefused, match="who is acting"):
        new_replies.clear(session, env, ref, by="", reason="read")
    with db.transaction() as session:
        new_replies.reopen_case(session, env, ref, by="casey", reason="Reversal asked for.")
    case = case_of(db, ref)
    assert case.state == "triage" and case.new_reply_at is None
    assert events(db, ref, "new_reply_cleared")[-1]["data"]["reason"] == "Reversal asked for."
    _reply(db, env, ref, text="Thanks.")
    with db.transaction() as session, pytest.raises(MarkerRefused, match="not closed"):
        new_replies.reopen(session, env, ref, by="casey", reason="again")
    with db.transaction() as session:
        new_replies.clear(session, env, ref, by="casey", reason="A thank-you.")
    assert case_of(db, ref).new_reply_at is None and case_of(db, ref).state == "triage"


def test_an_expired_case_is_reopened_after_a_reply_by_a_supervisor_only(
    db: Database, env: WorkflowEnv
) -> None:
    """Anyone can write in with a case's reference; that does not let any caseworker bring
    back an expired case, which only a supervisor may (workflow.actions.reopen)."""
    ref = open_request(db, env, gpp_form())
    with db.transaction() as session:
        session.execute(update(Case).where(Case.ref == ref).values(state="expired"))
        add_caseworker(session, email="casey@pcse.nhs.uk", name="Casey", password="x" * 20)
        add_caseworker(
            session, email="sam@pcse.nhs.uk", name="Sam", password="x" * 20, supervisor=True
        )
    _reply(db, env, ref, sender=("Anyone", "anyone@gmail.com"), text="Please look again.")
    with db.transaction() as session, pytest.raises(MarkerRefused, match="supervisor"):
        new_replies.reopen(session, env, ref, by="casey@pcse.nhs.uk", reason="Asked to.")
    assert case_of(db, ref).state == "expired"
    with db.transaction() as session:
        new_replies.reopen(session, env, ref, by="sam@pcse.nhs.uk", reason="Asked to.")
    assert case_of(db, ref).state == "triage"


def test_a_closed_case_with_an_unread_reply_is_not_purged(db: Database, env: WorkflowEnv) -> None:
    marked = open_request(db, env, gpp_form())
    answer(db, env, marked, PARTNER, "Approved")
    quiet = open_request(db, env, email_request("oph_admin", organisation_code="OC4567"))
    with db.transaction() as session:
        actions.withdraw(session, env, quiet, by="casey", reason="Sent twice.")
    _reply(db, env, marked, text="Please reverse this.")
    later = env.clock.now() + timedelta(days=1000)
    assert preview(db, RetentionConfig(), now=later).cases_personal == 1  # only the quiet one
    with db.transaction() as session:
        new_replies.clear(session, env, marked, by="casey", reason="Read; nothing to do.")
    assert preview(db, RetentionConfig(), now=later).cases_personal == 2
