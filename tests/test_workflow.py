"""Persisted flows through the handler, on SQLite and PostgreSQL, with a fixed clock."""

from __future__ import annotations

import pytest

from core.db import Database
from tests.test_workflow_helpers import (
    GUARDIAN,
    ICB_CONTACT,
    ICB_CONTACT_2,
    MANAGER,
    NOMINEE,
    PARTNER,
    answer,
    case_of,
    email_request,
    events,
    gpp_form,
    grant_admins,
    holders,
    ms365_env,
    open_request,
    outbox,
    pcn_form,
    token_for,
)
from workflow import actions, directory
from workflow.env import WorkflowEnv
from workflow.models import Signer


def test_gpp_form_happy_path(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    assert case_of(db, ref).state == "awaiting_approval"
    assert [m.purpose for m in outbox(db)] == ["acknowledgement", "approval_request"]
    (request,) = outbox(db, "approval_request")
    # The approval request goes to the recorded signer, with the token in its subject.
    assert request.to_address == PARTNER[1]
    assert f"[{ref}]" in request.subject and "APV-" in request.subject

    outcome = answer(db, env, ref, PARTNER, "Approved")
    assert "approved" in outcome
    case = case_of(db, ref)
    assert case.state == "completed"
    assert holders(db, "A81001", "gpp") == [NOMINEE[1]]
    completed = outbox(db, "outcome_completed")
    assert [m.to_address for m in completed] == [MANAGER[1]]
    assert "Jane Smith" in completed[0].body_text
    assert [m.to_address for m in outbox(db, "welcome_admin")] == [NOMINEE[1]]
    # The history says who signed, who was asked, which token, what DMARC said, what was read.
    checks = {e["data"].get("check"): e for e in events(db, ref, "check")}
    assert checks["signer_recorded"]["data"]["passed"] is True
    assert checks["sender_authenticated"]["data"]["passed"] is True
    assert "mx.nhs.net" in checks["sender_authenticated"]["detail"]
    assert checks["sender_is_approver"]["data"]["asked"] == PARTNER[1]
    read = events(db, ref, "answer_read")
    assert read[0]["data"]["verdict"] == "approve"
    applied = events(db, ref, "applied")
    assert applied[0]["data"]["email"] == NOMINEE[1]


def test_rejection_with_a_reason(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "REJECT - she left the practice in February")
    assert case_of(db, ref).state == "rejected"
    (rejected,) = outbox(db, "outcome_rejected")
    assert rejected.to_address == MANAGER[1]
    assert "she left the practice in February" in rejected.body_text
    assert holders(db, "A81001", "gpp") == []


def test_unclear_answer_goes_to_a_person_who_asks_again_and_the_new_answer_decides(
    db: Database,
    env: WorkflowEnv,
) -> None:
    ref = open_request(db, env, gpp_form())
    first = token_for(db, ref, PARTNER[1])
    answer(db, env, ref, PARTNER, "Can you call me about this?", token=first)
    assert case_of(db, ref).state == "triage"
    # Once a person is involved, the old code no longer decides the case ...
    answer(db, env, ref, PARTNER, "Approved", token=first)
    assert case_of(db, ref).state == "triage"
    # ... until the caseworker, having called, asks again with a fresh code.
    with db.transaction() as session:
        actions.send_approval_request(
            session, env, ref, by="cw@pcse.test", approver_email=PARTNER[1]
        )
    second = token_for(db, ref, PARTNER[1])
    assert second != first
    answer(db, env, ref, PARTNER, "Approved", token=second)
    assert case_of(db, ref).state == "completed"


def test_fifth_admin_refused_at_apply_time(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    with db.transaction() as session:
        grant_admins(session, "A81001", "GPP Practice User Administrator", 4)
    answer(db, env, ref, PARTNER, "APPROVE")
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "four" in case.reason.lower() or "4" in case.reason
    assert NOMINEE[1] not in holders(db, "A81001", "gpp")
    (told,) = outbox(db, "outcome_triage")
    assert told.to_address == MANAGER[1]
    assert outbox(db, "welcome_admin") == []


def test_fifth_admin_refused_at_decision_time(db: Database, env: WorkflowEnv) -> None:
    with db.transaction() as session:
        grant_admins(session, "A81001", "GPP Practice User Administrator", 4)
    ref = open_request(db, env, gpp_form())
    assert case_of(db, ref).state == "rejected"
    assert [m.purpose for m in outbox(db)] == ["admin_limit_reached"]


def test_main_contact_replaced_and_the_old_one_told(db: Database, env: WorkflowEnv) -> None:
    with db.transaction() as session:
        from workflow import directory

        directory.set_main_contact(
            session,
            org_code="A81001",
            email="old.contact@nhs.net",
            name="Olive Old",
            actor="test",
            reason="setup",
        )
    request = email_request(
        "main_contact", nominees=[], main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"}
    )
    ref = open_request(db, env, request)
    asked = sorted(m.to_address for m in outbox(db, "approval_request"))
    assert asked == sorted([PARTNER[1], GUARDIAN[1]])
    answer(db, env, ref, GUARDIAN, "Yes, I approve.")
    assert case_of(db, ref).state == "completed"
    assert holders(db, "A81001", "main_contact") == ["sam.lee@nhs.net"]
    (replaced,) = outbox(db, "main_contact_replaced")
    assert replaced.to_address == "old.contact@nhs.net"
    assert "Sam Lee" in replaced.body_text
    assert [m.to_address for m in outbox(db, "welcome_main_contact")] == ["sam.lee@nhs.net"]
    # The other signer's token was cancelled: the first valid answer decided.
    refused = answer(db, env, ref, PARTNER, "Approved")
    assert "refused" in refused.lower()


def test_pcn_form_sent_by_an_ael_contact_from_inside_the_tenant_is_applied_at_once(
    db: Database,
) -> None:
    request = pcn_form()
    inside = {"authentication_results": [], "auth_as": ["Internal"]}
    ref = open_request(db, ms365_env(), request, sender=ICB_CONTACT, **inside)
    assert case_of(db, ref).state == "completed"
    assert holders(db, "U12345", "pcn") == [NOMINEE[1]]
    assert outbox(db, "approval_request") == []


def test_pcn_form_sent_by_an_ael_contact_vouched_for_by_dmarc_asks_the_ael_contacts(
    db: Database,
    env: WorkflowEnv,
) -> None:
    """Under `authserv-id` DMARC vouches for her From, not for whom she sent it to: she and
    the other AEL contact are asked with codes, and her own answer decides."""
    request = pcn_form()
    ref = open_request(db, env, request, sender=ICB_CONTACT)
    assert case_of(db, ref).state == "awaiting_approval"
    asked = sorted(m.to_address for m in outbox(db, "approval_request"))
    assert asked == sorted([ICB_CONTACT[1], ICB_CONTACT_2[1]])
    assert holders(db, "U12345", "pcn") == []
    answer(db, env, ref, ICB_CONTACT, "Approved")
    assert holders(db, "U12345", "pcn") == [NOMINEE[1]]


def test_pcn_form_from_the_pcn_asks_every_ael_contact(db: Database, env: WorkflowEnv) -> None:
    request = pcn_form()
    ref = open_request(db, env, request)
    asked = sorted(m.to_address for m in outbox(db, "approval_request"))
    assert asked == sorted([ICB_CONTACT[1], ICB_CONTACT_2[1]])
    answer(db, env, ref, ICB_CONTACT_2, "approved")
    assert holders(db, "U12345", "pcn") == [NOMINEE[1]]


def test_a_signer_recorded_at_a_pcn_is_never_asked_and_never_counts(
    db: Database, env: WorkflowEnv
) -> None:
    """R6: a PCN's approvers are its ICB's AEL contacts. A signer recorded at the PCN before
    that was refused (written here straight into the table) is not asked, cannot be asked
    by a caseworker, and is not among the PCN's signers."""
    with db.transaction() as session:
        pcn = directory.get_org(session, "U12345")
        assert pcn is not None
        session.add(
            Signer(organisation=pcn, name="Pat Pcn", email="pat.pcn@nhs.net", capacity="gp_partner")
        )
    request = pcn_form()
    ref = open_request(db, env, request)
    asked = sorted(m.to_address for m in outbox(db, "approval_request"))
    assert asked == sorted([ICB_CONTACT[1], ICB_CONTACT_2[1]])
    with db.transaction() as session:
        assert directory.signers_for(session, "U12345") == []
        with pytest.raises(actions.ActionRefused):
            actions.send_approval_request(
                session, env, ref, by="cw@pcse.test", approver_email="pat.pcn@nhs.net"
            )
    assert holders(db, "U12345", "pcn") == []


def test_pl_request_with_an_existing_admin_is_answered(db: Database, env: WorkflowEnv) -> None:
    with db.transaction() as session:
        grant_admins(session, "A81001", "PL Organisation Administrator", 1)
    ref = open_request(db, env, email_request("pl_admin"))
    assert case_of(db, ref).state == "answered"
    assert [m.purpose for m in outbox(db)] == ["redirect_existing_admins"]


def test_oph_request_with_no_signer_goes_to_triage(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, email_request("oph_admin", organisation_code="OC4567"))
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "No approver" in case.reason
    assert [m.purpose for m in outbox(db)] == ["acknowledgement"]


def test_unrecorded_signer_goes_to_triage_with_the_reason(db: Database, env: WorkflowEnv) -> None:
    signer = {
        "name": "Eve Mallory",
        "email": "eve@nhs.net",
        "capacity": "gp_partner",
        "date": None,
        "declaration": True,
    }
    ref = open_request(db, env, gpp_form(signer=signer))
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "Eve Mallory" in case.reason
    assert outbox(db, "approval_request") == []


@pytest.mark.parametrize(
    "kind,purpose",
    [
        ("performer_registration", "redirect_performer_registration"),
        ("market_entry", "redirect_market_entry"),
    ],
)
def test_redirects(db: Database, env: WorkflowEnv, kind: str, purpose: str) -> None:
    ref = open_request(db, env, email_request(kind, organisation_code=None, nominees=[]))
    assert case_of(db, ref).state == "answered"
    assert [m.purpose for m in outbox(db)] == [purpose]


def test_missing_information_is_asked_for(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form(signer=None))
    assert case_of(db, ref).state == "needs_info"
    (asked,) = outbox(db, "needs_info")
    assert "Part B" in asked.body_text
    assert asked.attachments == ["gpp-user-admin-certification.pdf"]
