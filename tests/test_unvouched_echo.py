"""A reply to a sender nobody vouched for repeats nothing they wrote.

Anyone can write any From. An acknowledgement from the inbox's own address that quoted the
sender's words (an organisation "named" with a phishing line, a display name of their
choosing) would carry those words, from NHS mail, to whomever they named.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database
from service.config import Config
from tests.test_names_shown import form_mail, gpp_form
from tests.test_workflow_helpers import NOW, make_env
from tests.test_workflow_mail import (
    MANAGER,
    PARTNER,
    arrive,
    mail_config,
    mail_world,
    reply_to,
    sent,
    the_case,
)
from workflow import actions, directory
from workflow.apply import REFUSED_PLAINLY
from workflow.env import WorkflowEnv
from workflow.merge_cases import merge
from workflow.models import Case
from workflow.reminders import run_due

LURE = "Your NHSmail password expires today. Keep access at nhsmail-reset.example"
# The lure drawn small enough to show whole in the practice name's box, so that it is read.
SHOWN_WHOLE = (LURE, "", 7.0)
VICTIM = ("Colleague. Action needed", "victim@example.org")


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def test_the_acknowledgement_to_an_unvouched_sender_repeats_none_of_their_words(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    pdf = gpp_form(organisation_name=LURE, organisation_code="Z99999")
    arrive(db, config, env, form_mail(VICTIM, pdf, dmarc="fail"))
    assert the_case(db, VICTIM[1]).fields["organisation_name"] == LURE  # the premise
    (ack,) = sent(db, "acknowledgement", VICTIM[1])
    assert ack.to_name is None
    for body in (ack.body_text, ack.body_html):
        assert "password" not in body and "Colleague" not in body
        assert "Z99999" in body and the_case(db, VICTIM[1]).ref in body


def test_a_vouched_sender_still_sees_what_was_read(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    sender = ("Mo Manager", "manager@riverside.nhs.net")
    pdf = gpp_form(organisation_name="Riverside Surgery Annexe", organisation_code="Z99999")
    arrive(db, config, env, form_mail(sender, pdf))
    (ack,) = sent(db, "acknowledgement", sender[1])
    assert ack.to_name == "Mo Manager"
    assert "Riverside Surgery Annexe" in ack.body_text
    assert "What we read from it" in ack.body_text


def test_a_request_for_information_to_an_unvouched_sender_quotes_nothing(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    pdf = gpp_form(nominee_email="Password expires today - nhsmail-reset.example")
    arrive(db, config, env, form_mail(VICTIM, pdf, dmarc="fail"))
    assert the_case(db, VICTIM[1]).state == "needs_info"  # the premise
    (asked,) = sent(db, "needs_info", VICTIM[1])
    assert "Password expires" not in asked.body_text + asked.body_html
    assert "Nominee 1's email address: not valid, or not clear." in asked.body_text


def test_a_vouched_sender_is_told_what_was_read_wrong(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    sender = ("Mo Manager", "manager@riverside.nhs.net")
    arrive(db, config, env, form_mail(sender, gpp_form(nominee_email="jane at nhs")))
    (asked,) = sent(db, "needs_info", sender[1])
    assert "'janeatnhs'" in asked.body_text or "jane at nhs" in asked.body_text


def test_an_unreadable_attachment_from_an_unvouched_sender_is_not_named(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    lure = "Password expires today - nhsmail-reset.example.pdf"
    arrive(db, config, env, form_mail(VICTIM, b"not a pdf", dmarc="fail", filename=lure))
    (told,) = sent(db, "attachment_unreadable", VICTIM[1])
    assert "Password expires" not in told.body_text + told.body_html + told.subject
    assert "could not read the attachment you sent" in told.body_text


def test_the_later_emails_to_an_unvouched_sender_repeat_none_of_their_words(
    db: Database, config: Config
) -> None:
    """The reminder, the expiry and a caseworker's answer, as much as the first emails."""
    clock = FixedClock(NOW)
    env = make_env(clock)
    lured = gpp_form(
        organisation_name=SHOWN_WHOLE,
        organisation_code="Z99999",
        nominee_email="Password expires today - nhsmail-reset.example",
    )
    arrive(db, config, env, form_mail(VICTIM, lured, dmarc="fail"))
    clock.advance(days=env.reminder_after_days + 1)
    run_due(db, env)
    clock.advance(days=env.expire_after_days + 1)
    run_due(db, env)
    arrive(
        db, config, env, form_mail(VICTIM, gpp_form(organisation_name=SHOWN_WHOLE), dmarc="fail")
    )
    triage = the_case(db, VICTIM[1])
    with db.transaction() as session:
        actions.reject(session, env, triage.ref, by="casey@pcse.nhs.uk", reason="Not confirmed.")
    later = [
        *sent(db, "requester_reminder", VICTIM[1]),
        *sent(db, "outcome_expired", VICTIM[1]),
        *sent(db, "outcome_rejected", VICTIM[1]),
    ]
    assert len(later) == 3  # the premise: each was sent
    for email in later:
        assert email.to_name is None, email.purpose
        words = (email.body_text + email.body_html).lower()
        assert "password" not in words and "colleague" not in words, email.purpose
    (reminder,) = sent(db, "requester_reminder", VICTIM[1])
    assert "Nominee 1's email address: not valid, or not clear." in reminder.body_text


@pytest.mark.parametrize("forged", ["duplicate", "original"])
def test_a_merge_repeats_none_of_an_unvouched_senders_words(
    forged: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    """A forged case merged into a real one, or a real one into a forged one: the email
    about the merge carries neither the forged display name nor the forged practice name."""
    real = ("Mo Manager", "manager@riverside.nhs.net")
    lure = ("Colleague. Action needed", real[1])
    # The same practice (cases about two are not one request), under a forged name.
    forged_form = gpp_form(organisation_name=LURE, organisation_code="A81001")
    first, second = (real, lure) if forged == "duplicate" else (lure, real)
    for sender in (first, second):
        forged_one = sender is lure
        form = forged_form if forged_one else gpp_form()
        arrive(db, config, env, form_mail(sender, form, dmarc="fail" if forged_one else "pass"))
    with db.transaction() as session:
        refs = [c.ref for c in session.scalars(select(Case).order_by(Case.id))]
    with db.transaction() as session:
        merge(session, env, refs[1], into=refs[0], by="casey@pcse.nhs.uk", reason="Same request.")
    (merged,) = sent(db, "case_merged")
    words = merged.body_text + merged.body_html + (merged.to_name or "")
    assert "Colleague" not in words and "password" not in words.lower()


@pytest.mark.parametrize("vouched", [False, True])
def test_a_refusal_as_the_changes_are_applied_quotes_nothing_to_an_unvouched_sender(
    vouched: bool, db: Database, config: Config, env: WorkflowEnv
) -> None:
    """A caseworker asks the signer, who approves; by then the nominee already holds the
    role, so the rules refuse it. The rule's reason names the nominee's address as the
    sender typed it: the requester is told it only when their request was vouched for."""
    sender = MANAGER if vouched else VICTIM
    arrive(db, config, env, form_mail(sender, gpp_form(), dmarc="pass" if vouched else "fail"))
    case = the_case(db, sender[1])
    nominee = case.fields["nominees"][0]["email"]
    if not vouched:
        assert case.state == "triage"  # the premise: nobody is asked without a person
        with db.transaction() as session:
            actions.send_approval_request(
                session, env, case.ref, by="casey@pcse.nhs.uk", approver_email=PARTNER[1]
            )
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code=case.organisation_code,
            email=nominee,
            name="Jane Smith",
            role="GPP Practice User Administrator",
            actor="test",
            reason="set up",
        )
    (request,) = sent(db, "approval_request")
    arrive(db, config, env, reply_to(request, PARTNER, "APPROVE"))
    case = the_case(db, sender[1])
    assert case.state == "triage" and nominee in (case.reason or "")
    (told,) = sent(db, "outcome_triage", sender[1])
    words = told.body_text + told.body_html
    assert (nominee in words) is vouched
    assert (REFUSED_PLAINLY in told.body_text) is not vouched
