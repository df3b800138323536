"""Approvals that cannot be faked or misread, tried as an attacker and a careless reader would.

Each test is one way a role could be granted that nobody approved: a sender nobody vouched
for, a display name posing as an address, a token answering for changes it never saw, a
forged reply on a case, an approver approving their own nomination. Every one must end
with nothing granted and, where someone has to look, the case with a person.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from core.addresses import mailbox_key
from core.db import Database
from core.inbound import MessageKind
from tests.test_workflow_helpers import (
    GUARDIAN,
    ICB_CONTACT,
    ICB_CONTACT_2,
    MANAGER,
    NOMINEE,
    PARTNER,
    answer,
    case_of,
    deliver,
    email_request,
    failed_checks,
    gpp_form,
    holders,
    mail_from,
    ms365_env,
    open_request,
    outbox,
    token_for,
)
from workflow import actions, directory
from workflow.approvals import case_digest, check_sender, independent
from workflow.cases import get_case
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case, CaseEvent


def granted(db: Database, org: str, service: str) -> list[str]:
    return holders(db, org, service)


def pcn_form(**fields: Any):
    from forms.model import ParsedRequest

    values = {
        "organisation_code": "U12345",
        "organisation_name": "North PCN",
        "nominees": [{"name": NOMINEE[0], "email": NOMINEE[1], "services": ["pcn"]}],
        "main_contact": None,
        "signer": None,
    }
    values.update(fields)
    return ParsedRequest(kind="pcn_admin_form", fields=values, source="acroform")


def from_inside_the_tenant(db: Database, subject: str = "PCN form", text: str = "") -> str:
    """The AEL contact sends the PCN form from their NHSmail mailbox (AuthAs: Internal)."""
    return open_request(
        db,
        ms365_env(),
        pcn_form(),
        sender=ICB_CONTACT,
        subject=subject,
        text=text,
        authentication_results=[],
        auth_as=["Internal"],
    )


# --------------------------------------------------------------------------- who sent it


def test_a_pcn_form_from_an_unauthenticated_ael_address_goes_to_a_person(db: Database) -> None:
    """No sender authentication vouches for the forged From: nothing is granted, and no
    approver is asked in the name of someone who may not have asked."""
    env = ms365_env()  # the real platform's profile; the forged mail has no AuthAs
    ref = open_request(db, env, pcn_form(), sender=ICB_CONTACT, authentication_results=[])
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "nobody vouched" in case.reason
    assert granted(db, "U12345", "pcn") == []
    assert outbox(db, "approval_request") == []
    assert [m.to_address for m in outbox(db, "acknowledgement")] == [ICB_CONTACT[1]]


def test_a_forged_requester_is_not_put_to_an_approver_in_their_name(db: Database) -> None:
    """A signer's address forged from outside (Exchange: dmarc=fail) asks for a new Main
    Contact. The other signer must not be told that the first asked; a person confirms."""
    env = ms365_env()
    request = email_request(
        "main_contact", main_contact={"name": "Nina Nominee", "email": "nina@evil.example"}
    )
    failing = [
        "spf=fail smtp.mailfrom=nhs.net; dmarc=fail action=quarantine "
        "header.from=nhs.net;compauth=fail reason=000"
    ]
    ref = open_request(
        db, env, request, sender=GUARDIAN, authentication_results=failing, auth_as=["Anonymous"]
    )
    case = case_of(db, ref)
    assert case.state == "triage"
    assert outbox(db, "approval_request") == []
    assert "sender_vouched" in failed_checks(db, ref)
    # The person whose address was used hears of it, and can say they never asked.
    assert [m.to_address for m in outbox(db, "acknowledgement")] == [GUARDIAN[1]]


def test_a_pcn_form_from_an_authenticated_ael_contact_completes(db: Database) -> None:
    ref = from_inside_the_tenant(db)
    assert case_of(db, ref).state == "completed"
    assert granted(db, "U12345", "pcn") == [NOMINEE[1]]


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        (
            "FW: PCN form",
            "Hello PCSE,\n\nI do NOT approve this - I have never heard of Jane Smith. Is this "
            "form genuine? Please do not set her up.\n\nChris\n\n-----Original Message-----\n"
            "From: tariq@pcn.example\nSent: Monday\nTo: Chris Green\nSubject: PCN form\n\n"
            "Please forward to PCSE for us.\n",
        ),
        ("PCN form", "Only once her contract is signed, please.\n"),
        ("PCN form", "Can you check this one with me first?\n"),
    ],
)
def test_a_pcn_form_from_an_ael_contact_whose_words_doubt_it_goes_to_a_person(
    db: Database, subject: str, text: str
) -> None:
    """Sending the form is the AEL contact's approval only when what they wrote with it
    raises no doubt: a forward that says "do not set her up" is no approval."""
    ref = from_inside_the_tenant(db, subject, text)
    assert case_of(db, ref).state == "triage"
    assert granted(db, "U12345", "pcn") == []
    assert "sender_raises_no_doubt" in failed_checks(db, ref)


def test_a_pcn_form_from_an_ael_contact_with_a_plain_covering_note_completes(db: Database) -> None:
    note = "Hello,\n\nPlease find attached the PCN form.\n\nThanks,\nChris\n"
    ref = from_inside_the_tenant(db, text=note)
    assert case_of(db, ref).state == "completed"
    assert granted(db, "U12345", "pcn") == [NOMINEE[1]]


def test_a_pcn_form_from_an_ael_contact_whose_note_says_more_asks_the_ael_contacts(
    db: Database,
) -> None:
    """A note naming someone, or saying anything beyond a plain covering line, may not be
    what the form says: the AEL contacts, the sender among them, confirm with a code."""
    note = "Hello,\n\nPlease find attached the PCN form for Jane Smith only.\n\nThanks,\nChris\n"
    ref = from_inside_the_tenant(db, text=note)
    assert case_of(db, ref).state == "awaiting_approval"
    assert "sender_note_is_plain" in failed_checks(db, ref)
    assert ICB_CONTACT[1] in [m.to_address for m in outbox(db, "approval_request")]
    assert granted(db, "U12345", "pcn") == []


def test_an_ael_contacts_mail_to_someone_else_replayed_into_the_inbox_grants_nothing(
    db: Database,
) -> None:
    """DKIM survives a replay, so Exchange says dmarc=pass for mail the contact sent to
    someone else; only mail addressed to us from inside the tenant is their submission."""
    env = ms365_env()
    passing = [
        "spf=pass smtp.mailfrom=nhs.net; dkim=pass header.d=nhs.net;dmarc=pass "
        "action=none header.from=nhs.net;compauth=pass reason=100"
    ]
    ref = open_request(
        db,
        env,
        pcn_form(),
        sender=ICB_CONTACT,
        auth_as=["Anonymous"],
        authentication_results=passing,
        to_addresses=["tariq@pcn.example"],
    )
    assert case_of(db, ref).state == "awaiting_approval"
    assert granted(db, "U12345", "pcn") == []


def test_an_answer_sent_on_behalf_of_the_approver_is_refused(db: Database) -> None:
    """A delegate answering from the partner's mailbox (Send on Behalf: a Sender header)."""
    env = ms365_env()
    request = email_request("pl_admin", nominees=[{"name": MANAGER[0], "email": MANAGER[1]}])
    ref = open_request(db, env, request, sender=GUARDIAN, auth_as=["Internal"])
    token = token_for(db, ref, PARTNER[1])
    answer(
        db, env, ref, PARTNER, "APPROVE", token=token, auth_as=["Internal"], on_behalf=[MANAGER[1]]
    )
    assert granted(db, "A81001", "pl") == []
    assert "sender_authenticated" in failed_checks(db, ref)


def test_the_requester_writing_during_approval_stops_every_answer(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, email_request("pl_admin"))
    protest = mail_from(
        MANAGER, subject=f"RE: [{ref}] Your request", text="I did NOT send this. Please stop."
    )
    deliver(db, env, protest, MessageKind.CASE_REPLY, case_ref=ref)
    assert case_of(db, ref).state == "triage"
    answer(db, env, ref, PARTNER, "APPROVE")
    assert granted(db, "A81001", "pl") == []
    assert "case_waiting" in failed_checks(db, ref)


def test_a_case_sent_to_a_person_is_not_decided_by_another_approver(
    db: Database, env: WorkflowEnv
) -> None:
    """One signer's hesitation parks the case; the other signer's code no longer decides."""
    ref = open_request(db, env, email_request("pl_admin"))
    answer(db, env, ref, GUARDIAN, "Not approved - Nina left the practice in May")
    assert case_of(db, ref).state == "triage"
    answer(db, env, ref, PARTNER, "APPROVE")
    assert case_of(db, ref).state == "triage"
    assert granted(db, "A81001", "pl") == []


def test_codes_sent_before_a_person_took_the_case_decide_nothing_once_it_is_asked_again(
    db: Database, env: WorkflowEnv
) -> None:
    """The requester protests while the signers are asked; a caseworker asks one of them
    again. The other signer's code, sent before the protest, must not decide the case."""
    ref = open_request(db, env, email_request("pl_admin"))
    partners_first_code = token_for(db, ref, PARTNER[1])
    protest = mail_from(
        MANAGER, subject=f"RE: [{ref}] Your request", text="I did NOT send this. Please stop."
    )
    deliver(db, env, protest, MessageKind.CASE_REPLY, case_ref=ref)
    assert case_of(db, ref).state == "triage"
    with db.transaction() as session:
        actions.send_approval_request(session, env, ref, by="cw@pcse", approver_email=GUARDIAN[1])
    assert case_of(db, ref).state == "awaiting_approval"

    answer(db, env, ref, PARTNER, "APPROVE", token=partners_first_code)
    assert granted(db, "A81001", "pl") == []
    assert case_of(db, ref).state != "completed"
    # The code sent now still decides it.
    answer(db, env, ref, GUARDIAN, "APPROVE")
    assert granted(db, "A81001", "pl") != []


def make_main_contact(db: Database, email: str, name: str, why: str) -> None:
    with db.transaction() as session:
        directory.set_main_contact(
            session, org_code="A81001", email=email, name=name, actor="cw@pcse", reason=why
        )


def ask_to_replace_tom_baker(db: Database, env: WorkflowEnv) -> str:
    """A81001's Main Contact is Tom Baker; a request asks for Lisa Moore instead."""
    make_main_contact(db, "tom.baker@nhs.net", "Tom Baker", "the practice's Main Contact")
    new_contact = {"name": "Lisa Moore", "email": "lisa.moore@nhs.net"}
    return open_request(
        db, env, email_request("main_contact", nominees=[], main_contact=new_contact)
    )


def test_an_approval_to_replace_one_main_contact_does_not_remove_another(
    db: Database, env: WorkflowEnv
) -> None:
    """The approval request says who loses the Main Contact role; should someone else hold
    it by the time the approver answers, the answer is about another change."""
    ref = ask_to_replace_tom_baker(db, env)
    asked = [m for m in outbox(db, "approval_request") if m.to_address == PARTNER[1]]
    assert asked and "Tom Baker" in asked[0].body_text
    make_main_contact(db, "uma.new@nhs.net", "Uma New", "another case")

    answer(db, env, ref, PARTNER, "APPROVE")
    assert granted(db, "A81001", "main_contact") == ["uma.new@nhs.net"]
    assert outbox(db, "main_contact_replaced") == []
    assert "changes_unchanged" in failed_checks(db, ref)


def test_an_approval_to_replace_the_main_contact_applies_while_the_holder_is_the_same(
    db: Database, env: WorkflowEnv
) -> None:
    ref = ask_to_replace_tom_baker(db, env)
    answer(db, env, ref, PARTNER, "APPROVE")
    assert granted(db, "A81001", "main_contact") == ["lisa.moore@nhs.net"]
    assert [m.to_address for m in outbox(db, "main_contact_replaced")] == ["tom.baker@nhs.net"]


def test_an_answer_from_a_display_name_posing_as_the_approver_is_refused(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    # What intake hands over for `=?utf-8?q?a.patel=40nhs.net=0A?= <mallory@nhs.net>`.
    outcome = answer(
        db,
        env,
        ref,
        (PARTNER[1], "mallory@nhs.net"),
        "APPROVE",
        token=token,
        sender_problem="The From display name holds an email address.",
    )
    assert "refused" in outcome.lower()
    assert granted(db, "A81001", "gpp") == []
    assert {"sender_parsed", "sender_is_approver"} <= failed_checks(db, ref)


def test_an_answer_whose_from_did_not_parse_reaches_a_person_without_naming_the_approver(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    answer(
        db,
        env,
        ref,
        PARTNER,
        "APPROVE",
        token=token,
        sender_problem="The From header is malformed (InvalidHeaderDefect).",
    )
    case = case_of(db, ref)
    assert granted(db, "A81001", "gpp") == []
    assert case.state == "triage"
    assert PARTNER[1] not in (case.reason or "")
    assert "could not be verified" in case.reason


def test_an_unverified_new_request_goes_to_a_person_and_acknowledges_only_the_real_address(
    db: Database, env: WorkflowEnv
) -> None:
    mail = mail_from(
        ("approver@nhs.net", "mallory@nhs.net"),
        subject="PL admin please",
        text="Please make Nina Nominee (nina.nominee@nhs.net) PL Organisation "
        "Administrator for A81001.",
        sender_problem="The From display name holds an email address.",
    )
    outcome = deliver(db, env, mail, MessageKind.NEW_REQUEST)
    assert "unverified sender" in outcome
    with db.transaction() as session:
        case = session.scalars(select(Case)).one()
        assert case.state == "triage"
        assert "Unverified sender" in case.reason
    acks = outbox(db, "acknowledgement")
    assert [m.to_address for m in acks] == ["mallory@nhs.net"]
    assert outbox(db, "approval_request") == []


# --------------------------------------------------------------------------- replies on a case


def test_a_forged_requester_reply_is_not_merged(db: Database) -> None:
    env = ms365_env()
    request = email_request("pl_admin", nominees=[{"name": NOMINEE[0], "email": None}])
    ref = open_request(db, env, request, auth_as=["Internal"])
    assert case_of(db, ref).state == "needs_info"
    forged = mail_from(
        MANAGER,
        subject=f"RE: [{ref}] more information",
        text="Her address is mallory@nhs.net",
        authentication_results=[],
    )
    deliver(db, env, forged, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "unverified sender" in case.reason
    assert "mallory@nhs.net" not in str(case.fields)
    assert outbox(db, "approval_request") == []


def test_an_authenticated_requester_reply_is_merged(db: Database) -> None:
    env = ms365_env()
    request = email_request("pl_admin", nominees=[{"name": NOMINEE[0], "email": None}])
    ref = open_request(db, env, request, auth_as=["Internal"])
    reply = mail_from(
        MANAGER,
        subject=f"RE: [{ref}] more information",
        text=f"Her address is {NOMINEE[1]}",
        authentication_results=[],
        auth_as=["Internal"],
    )
    deliver(db, env, reply, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.fields["nominees"][0]["email"] == NOMINEE[1]
    assert case.state == "awaiting_approval"


def test_a_forged_approver_reply_without_the_code_names_nobody(db: Database) -> None:
    env = ms365_env()
    ref = open_request(db, env, gpp_form(), auth_as=["Internal"])
    forged = mail_from(
        PARTNER,
        subject=f"RE: [{ref}] Approval needed",
        text="Yes go ahead, I approve",
        authentication_results=[],
    )
    deliver(db, env, forged, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert PARTNER[1] not in case.reason
    assert "unverified sender" in case.reason
    assert granted(db, "A81001", "gpp") == []


# ---------------------------------------------------------------- tokens bound to changes


def test_a_token_does_not_outlive_a_new_form(db: Database, env: WorkflowEnv) -> None:
    """The attack: a caseworker asks for information, a new form names someone else, and
    the approver's APPROVE to the original email granted the new nominee."""
    ref = open_request(db, env, gpp_form())
    old_token = token_for(db, ref, PARTNER[1])
    answer(db, env, ref, PARTNER, "Is this the right person?", token=old_token)
    assert case_of(db, ref).state == "triage"  # the token is still open here
    with db.transaction() as session:
        actions.request_info(session, env, ref, by="cw@pcse.test", message="Please confirm")
    voids = outbox(db, "approval_void")
    assert {m.to_address for m in voids} == {PARTNER[1]}
    other = ("Oscar Other", "oscar.other@nhs.net")
    reply = mail_from(MANAGER, subject=f"RE: [{ref}] more information", text="New form attached")
    from tests.test_workflow_helpers import inbound_row
    from workflow.case_replies import _merge_reply

    with db.transaction() as session:
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        row = inbound_row(session, reply)
        case.fields = {
            **case.fields,
            "nominees": [{"name": other[0], "email": other[1], "services": ["gpp"]}],
        }
        _merge_reply(session, env, case, row, reply, "New form attached", check_sender(reply, env))
    assert case_of(db, ref).state == "triage"  # the answer to a caseworker goes back to one
    outcome = answer(db, env, ref, PARTNER, "APPROVE", token=old_token)
    assert "refused" in outcome.lower()
    assert granted(db, "A81001", "gpp") == []
    assert "token_open" in failed_checks(db, ref)


def test_a_token_is_void_once_the_changes_differ_from_what_was_asked(
    db: Database, env: WorkflowEnv
) -> None:
    """The digest is the backstop: changes made behind an open token are never approved."""
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    with db.transaction() as session:
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        case.fields = {
            **case.fields,
            "nominees": [{"name": "Mallory", "email": "mallory@nhs.net", "services": ["gpp"]}],
        }
    outcome = answer(db, env, ref, PARTNER, "APPROVE", token=token)
    assert "refused" in outcome.lower()
    assert granted(db, "A81001", "gpp") == []
    assert "changes_unchanged" in failed_checks(db, ref)
    assert case_of(db, ref).state == "triage"


def test_tokens_are_masked_in_the_history(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    answer(db, env, ref, PARTNER, "APPROVE", token=token)
    with db.transaction() as session:
        rows = session.scalars(select(CaseEvent)).all()
        text = " ".join(f"{r.detail} {r.data}" for r in rows)
    assert token not in text
    assert f"APV-{token[:6]}" in text


# --------------------------------------------------------------------------- one-click answers


def test_a_one_click_approve_from_the_approver_approves(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    request = outbox(db, "approval_request", to=PARTNER[1])[0]
    assert f"APPROVE%20%5B{ref}%5D%20APV-{token}" in request.body_text
    mail = mail_from(PARTNER, subject=f"APPROVE [{ref}] APV-{token}", text="")
    deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)
    assert case_of(db, ref).state == "completed"
    assert granted(db, "A81001", "gpp") == [NOMINEE[1]]


def test_a_one_click_reject_carries_its_reason(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    mail = mail_from(
        PARTNER, subject=f"REJECT [{ref}] APV-{token}", text="Reason for rejecting: she left in May"
    )
    deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)
    case = case_of(db, ref)
    assert case.state == "rejected"
    assert "she left in May" in case.reason
    assert granted(db, "A81001", "gpp") == []


def test_a_one_click_approve_from_someone_else_is_refused(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    mail = mail_from(("Mallory", "mallory@nhs.net"), subject=f"APPROVE [{ref}] APV-{token}")
    deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)
    assert granted(db, "A81001", "gpp") == []
    assert "sender_is_approver" in failed_checks(db, ref)


# --------------------------------------------------------------------------- refusals in words


@pytest.mark.parametrize(
    "words",
    [
        "I wouldn't approve this, she has not started yet",
        "I am not able to approve this",
        "Yes\n\nActually please don't set her up, she left last week",
        "Approve? I don't know who this is",
    ],
)
def test_refusals_in_ordinary_words_grant_nothing(
    db: Database, env: WorkflowEnv, words: str
) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, words)
    assert granted(db, "A81001", "gpp") == []
    assert case_of(db, ref).state in ("triage", "rejected")


def test_an_unclear_answer_tells_the_approver_a_person_will_read_it(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "Happy to approve if the partners agree")
    assert case_of(db, ref).state == "triage"
    assert [m.to_address for m in outbox(db, "answer_unclear")] == [PARTNER[1]]


# --------------------------------------------------------------------------- separation of duties


def test_a_signer_nominating_themself_is_not_asked_another_signer_is(
    db: Database, env: WorkflowEnv
) -> None:
    form = gpp_form(nominees=[{"name": PARTNER[0], "email": PARTNER[1], "services": ["gpp"]}])
    ref = open_request(db, env, form)
    asked = {m.to_address for m in outbox(db, "approval_request")}
    assert PARTNER[1] not in asked
    assert GUARDIAN[1] in asked
    assert case_of(db, ref).state == "awaiting_approval"


def test_self_approval_with_a_stale_token_is_refused(db: Database, env: WorkflowEnv) -> None:
    """Defence in depth: even with a token in hand, a nominee cannot approve themself."""
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    with db.transaction() as session:
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        case.fields = {
            **case.fields,
            "nominees": [{"name": PARTNER[0], "email": PARTNER[1], "services": ["gpp"]}],
        }
        session.execute(update(ApprovalRequest).values(digest=case_digest(case)))
    answer(db, env, ref, PARTNER, "APPROVE", token=token)
    assert granted(db, "A81001", "gpp") == []
    assert "approver_independent" in failed_checks(db, ref)


def test_an_ael_contact_asking_a_pcn_role_for_themself_needs_another_contact(db: Database) -> None:
    env = ms365_env()
    form = pcn_form(
        nominees=[{"name": ICB_CONTACT[0], "email": ICB_CONTACT[1], "services": ["pcn"]}]
    )
    ref = open_request(db, env, form, sender=ICB_CONTACT, auth_as=["Internal"])
    assert case_of(db, ref).state == "awaiting_approval"
    assert granted(db, "U12345", "pcn") == []
    assert {m.to_address for m in outbox(db, "approval_request")} == {ICB_CONTACT_2[1]}


def test_a_caseworker_cannot_ask_the_nominee_to_approve(db: Database, env: WorkflowEnv) -> None:
    form = gpp_form(nominees=[{"name": PARTNER[0], "email": PARTNER[1], "services": ["gpp"]}])
    ref = open_request(db, env, form)
    with db.transaction() as session, pytest.raises(actions.ActionRefused, match="cannot approve"):
        actions.send_approval_request(
            session, env, ref, by="cw@pcse.test", approver_email=PARTNER[1]
        )


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("A.Patel+GPP@nhs.net", "a.patel@nhs.net"),
        ("a.patel+gpp+more@nhs.net", "a.patel@nhs.net"),
        (" a.patel@NHS.net ", "a.patel@nhs.net"),
        ("+only@nhs.net", "@nhs.net"),
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_the_mailbox_an_address_reaches(address: str, key: str) -> None:
    assert mailbox_key(address) == key


def test_a_signer_is_not_asked_about_their_own_nomination_under_a_plus_tag(
    db: Database, env: WorkflowEnv
) -> None:
    """Exchange delivers a.patel+gpp@ to a.patel@: the nominee is the partner themself."""
    alias = "a.patel+gpp@nhs.net"
    assert mailbox_key(alias) == PARTNER[1]
    form = gpp_form(nominees=[{"name": PARTNER[0], "email": alias, "services": ["gpp"]}])
    ref = open_request(db, env, form)
    asked = {m.to_address for m in outbox(db, "approval_request")}
    assert PARTNER[1] not in asked and GUARDIAN[1] in asked
    with db.transaction() as session:
        check = independent(get_case(session, ref), PARTNER[1])
    assert not check.passed and "named for a role" in check.detail
    assert holders(db, "A81001", "gpp") == []


def test_an_ael_contact_cannot_grant_themself_a_pcn_role_under_a_plus_tag(db: Database) -> None:
    env = ms365_env()
    alias = "chris.green+pcn@nhs.net"  # the AEL contact's own mailbox
    assert mailbox_key(alias) == ICB_CONTACT[1]
    form = pcn_form(nominees=[{"name": ICB_CONTACT[0], "email": alias, "services": ["pcn"]}])
    open_request(db, env, form, sender=ICB_CONTACT, auth_as=["Internal"])
    assert holders(db, "U12345", "pcn") == [], "the AEL contact granted themself the PCN role"
    assert {m.to_address for m in outbox(db, "approval_request")} == {ICB_CONTACT_2[1]}


def test_an_approval_with_an_objection_in_noscript_goes_to_a_person(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    html = "<div>APPROVE</div><noscript>Do not add Jane, she has left</noscript>"
    answer(db, env, ref, PARTNER, "APPROVE", html=html)
    assert holders(db, "A81001", "gpp") == []
    assert case_of(db, ref).state == "triage"


def test_an_approval_that_says_something_of_the_nominee_under_the_signature_goes_to_a_person(
    db: Database, env: WorkflowEnv
) -> None:
    """Capitalised, "Jane Quit" reads like a line of a signature; it names the nominee."""
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "APPROVE\n\nAnil\nJane Quit")
    assert holders(db, "A81001", "gpp") == []
    case = case_of(db, ref)
    assert case.state == "triage" and '"jane quit"' in (case.reason or "").lower()
