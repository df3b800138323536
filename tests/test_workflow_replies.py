"""Requesters' replies on a case: what they send is merged in and the case is read again."""

from __future__ import annotations

from core.db import Database
from core.inbound import MessageKind
from forms.model import Finding, ParsedRequest
from tests.test_workflow_helpers import (
    MANAGER,
    PARTNER,
    case_of,
    deliver,
    email_request,
    events,
    gpp_form,
    mail_from,
    open_request,
    outbox,
)
from workflow.env import WorkflowEnv
from workflow.merging import merge_fields

MISSING_EMAIL = Finding(
    "missing_field", "The email address of the nominee is missing.", "nominees.0.email"
)


# --------------------------------------------------------------------------- merging (pure)


def test_a_bare_address_fills_the_one_missing() -> None:
    old = {
        "organisation_code": "A81001",
        "nominees": [{"name": "Jane Smith", "email": None, "services": ["pl"]}],
    }
    fields, findings = merge_fields(
        "pl_admin",
        old,
        [MISSING_EMAIL],
        ParsedRequest(kind="other", fields={"nominees": []}),
        "Her address is Jane.Smith@nhs.net.\nThanks",
        exclude={"mo@nhs.net"},
    )
    assert fields["nominees"][0]["email"] == "jane.smith@nhs.net"
    assert findings == []


def test_the_senders_own_address_is_not_taken_for_the_nominee() -> None:
    old = {"nominees": [{"name": "Jane Smith", "email": None}]}
    fields, findings = merge_fields(
        "pl_admin",
        old,
        [MISSING_EMAIL],
        ParsedRequest(kind="other", fields={}),
        "Mo, mo@nhs.net",
        exclude={"mo@nhs.net"},
    )
    assert fields["nominees"][0]["email"] is None
    assert findings == [MISSING_EMAIL]


def test_two_addresses_are_too_many_to_guess() -> None:
    old = {"nominees": [{"name": "Jane Smith", "email": None}]}
    fields, _ = merge_fields(
        "pl_admin",
        old,
        [MISSING_EMAIL],
        ParsedRequest(kind="other", fields={}),
        "jane@nhs.net or j.smith@nhs.net",
    )
    assert fields["nominees"][0]["email"] is None


def test_a_nominee_is_matched_by_name_and_completed() -> None:
    old = {
        "nominees": [
            {"name": "Jane Smith", "email": None},
            {"name": "Raj Kumar", "email": "raj@nhs.net"},
        ]
    }
    new = ParsedRequest(
        kind="pl_admin",
        fields={
            "organisation_code": "A81001",
            "nominees": [{"name": "jane smith", "email": "jane@nhs.net", "services": ["pl"]}],
        },
    )
    fields, findings = merge_fields("pl_admin", old, [MISSING_EMAIL], new, "")
    assert fields["organisation_code"] == "A81001"
    assert fields["nominees"][0]["email"] == "jane@nhs.net"
    assert fields["nominees"][1]["email"] == "raj@nhs.net"
    assert findings == []


def test_a_pdf_forms_signature_cannot_be_given_by_email() -> None:
    unsigned = Finding("not_signed", "Part B is not signed.", None)
    _, findings = merge_fields(
        "gpp_admin_form",
        {"nominees": []},
        [unsigned],
        ParsedRequest(kind="other", fields={}),
        "I am the partner.",
    )
    assert findings == [unsigned]


# --------------------------------------------------------------------------- through the handler


def reply(db: Database, env: WorkflowEnv, ref: str, text: str, **kwargs) -> str:
    mail = mail_from(MANAGER, subject=f"RE: [{ref}] More information needed", text=text, **kwargs)
    return deliver(db, env, mail, MessageKind.CASE_REPLY, case_ref=ref)


def test_missing_address_supplied_in_a_reply(db: Database, env: WorkflowEnv) -> None:
    request = email_request(
        "pl_admin", nominees=[{"name": "Jane Smith", "email": None, "services": ["pl"]}]
    )
    ref = open_request(db, env, request)
    assert case_of(db, ref).state == "needs_info"
    reply(
        db,
        env,
        ref,
        "Sorry - it is jane.smith@nhs.net\n\nKind regards,\nMo\n\n"
        "On Mon, PCSE wrote:\n> The email address of the nominee is missing.",
    )
    case = case_of(db, ref)
    assert case.state == "awaiting_approval", case.reason
    assert case.fields["nominees"][0]["email"] == "jane.smith@nhs.net"
    assert len(outbox(db, "approval_request")) == 2
    said = [e["data"].get("said") for e in events(db, ref, "message")]
    assert "Sorry - it is jane.smith@nhs.net" in said


def test_a_reply_from_someone_else_goes_to_a_caseworker_unread(
    db: Database, env: WorkflowEnv
) -> None:
    request = email_request(
        "pl_admin", nominees=[{"name": "Jane Smith", "email": None, "services": ["pl"]}]
    )
    ref = open_request(db, env, request)
    mail = mail_from(
        ("Someone Else", "someone.else@nhs.net"),
        subject=f"RE: [{ref}] More information needed",
        text="Use someone.else@nhs.net for Jane.",
    )
    deliver(db, env, mail, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "someone.else@nhs.net" in case.reason and MANAGER[1] in case.reason
    assert case.fields["nominees"][0]["email"] is None
    assert outbox(db, "approval_request") == []


def test_a_reply_that_still_lacks_it_asks_again(db: Database, env: WorkflowEnv) -> None:
    request = email_request(
        "pl_admin", nominees=[{"name": "Jane Smith", "email": None, "services": ["pl"]}]
    )
    ref = open_request(db, env, request)
    reply(db, env, ref, "I will find out and let you know.")
    assert case_of(db, ref).state == "needs_info"
    assert len(outbox(db, "needs_info")) == 2


def test_a_requester_reply_while_awaiting_approval_goes_to_a_person(
    db: Database,
    env: WorkflowEnv,
) -> None:
    """It may say "I did not send this": no answer counts until a person has read it."""
    ref = open_request(db, env, gpp_form())
    reply(db, env, ref, "Any news?")
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "The requester wrote while the case awaits approval" in case.reason
    assert events(db, ref, "message")[-1]["data"]["said"] == "Any news?"


def test_an_approver_writing_without_the_code_goes_to_a_person(
    db: Database,
    env: WorkflowEnv,
) -> None:
    ref = open_request(db, env, gpp_form())
    mail = mail_from(PARTNER, subject=f"RE: [{ref}] Your request", text="Fine by me.")
    deliver(db, env, mail, MessageKind.CASE_REPLY, case_ref=ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "without the approval code" in case.reason
