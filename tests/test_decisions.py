"""Routing decisions for every kind of request: pure, with hand-made requests and facts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.catalogue import AEL_GP_PAYMENTS_GENERAL, Service
from core.states import TRANSITIONS, CaseKind, CaseState
from forms.model import Finding, ParsedRequest
from workflow.decisions import (
    Action,
    Approver,
    Contact,
    Facts,
    PlannedChange,
    decide,
    match_signer,
    planned_changes,
    structural_findings,
)

PARTNER = Approver("Anil Patel", "a.patel@nhs.net", "signer", "gp_partner")
GUARDIAN = Approver("Beth Jones", "beth.jones@nhs.net", "signer", "caldicott_guardian")
AEL_1 = Approver("Chris Green", "chris.green@nhs.net", "ael", AEL_GP_PAYMENTS_GENERAL)
AEL_2 = Approver("Dana White", "dana.white@nhs.net", "ael", AEL_GP_PAYMENTS_GENERAL)
NOMINEE = {"name": "Jane Smith", "email": "jane.smith@nhs.net", "services": ["gpp"]}


def practice(**changes: Any) -> Facts:
    base = Facts(
        organisation_code="A81001",
        org_exists=True,
        org_name="The Surgery",
        org_type="gp_practice",
        icb_code="QHM",
        admin_counts={},
        signers=(PARTNER, GUARDIAN),
        ael_contacts=(AEL_1, AEL_2),
    )
    return replace(base, **changes)


def organisation_for(kind: CaseKind, **changes: Any) -> Facts:
    """A GP practice, or an optical contractor for an ophthalmic request."""
    if kind is CaseKind.OPH_ADMIN:
        changes = {"org_type": "optical", **changes}
    return practice(**changes)


def pcn(**changes: Any) -> Facts:
    return practice(
        organisation_code="U12345", org_type="pcn", org_name="North PCN", signers=(), **changes
    )


def form(kind: CaseKind, **fields: Any) -> ParsedRequest:
    base: dict[str, Any] = {
        "organisation_code": "A81001",
        "organisation_name": "The Surgery",
        "nominees": [dict(NOMINEE)],
        "main_contact": None,
        "signer": {
            "name": "Dr Anil Patel",
            "email": "a.patel@nhs.net",
            "capacity": "gp_partner",
            "date": "2026-03-01",
            "declaration": True,
        },
    }
    base.update(fields)
    return ParsedRequest(kind=str(kind), fields=base, source="acroform")


def email_request(kind: CaseKind, **fields: Any) -> ParsedRequest:
    base: dict[str, Any] = {
        "organisation_code": "A81001",
        "nominees": [dict(NOMINEE)],
        "main_contact": None,
        "signer": None,
    }
    base.update(fields)
    return ParsedRequest(kind=str(kind), fields=base)


SIGNED_FORMS = [CaseKind.GPP_ADMIN_FORM, CaseKind.USER_ADMIN_FORM]


# --------------------------------------------------------------------------- signed forms


@pytest.mark.parametrize("kind", SIGNED_FORMS)
def test_recorded_signer_is_asked_at_the_recorded_address(kind: CaseKind) -> None:
    decision = decide(form(kind), practice())
    assert decision.action is Action.ASK_APPROVERS
    assert decision.approvers == (PARTNER,)
    assert decision.target_state is CaseState.AWAITING_APPROVAL
    assert decision.changes == (PlannedChange(Service.GPP, "jane.smith@nhs.net", "Jane Smith"),)
    assert any(c.name == "signer_recorded" and c.passed for c in decision.checks)


@pytest.mark.parametrize("kind", SIGNED_FORMS)
def test_form_address_is_never_used_for_the_approval(kind: CaseKind) -> None:
    # The form names the partner but gives an address the attacker controls.
    signer = {
        "name": "Dr Anil Patel",
        "email": "anil.patel@evil.example",
        "capacity": "gp_partner",
        "date": None,
        "declaration": True,
    }
    decision = decide(form(kind, signer=signer), practice())
    assert decision.action is Action.ASK_APPROVERS
    assert [a.email for a in decision.approvers] == ["a.patel@nhs.net"]
    assert any(c.name == "signer_address" and not c.passed for c in decision.checks)


@pytest.mark.parametrize("kind", SIGNED_FORMS)
def test_ael_contact_of_the_icb_may_sign(kind: CaseKind) -> None:
    signer = {
        "name": "Chris Green",
        "email": "CHRIS.GREEN@nhs.net",
        "capacity": "icb",
        "date": None,
        "declaration": True,
    }
    decision = decide(form(kind, signer=signer), practice())
    assert decision.action is Action.ASK_APPROVERS
    assert decision.approvers == (AEL_1,)


@pytest.mark.parametrize("kind", SIGNED_FORMS)
def test_unrecorded_signer_goes_to_triage_with_that_reason(kind: CaseKind) -> None:
    signer = {
        "name": "Eve Mallory",
        "email": "eve@nhs.net",
        "capacity": "gp_partner",
        "date": None,
        "declaration": True,
    }
    decision = decide(form(kind, signer=signer), practice())
    assert decision.action is Action.TRIAGE
    assert "Eve Mallory" in decision.reason and "not recorded" in decision.reason
    assert decision.approvers == ()


def test_signer_of_another_practice_is_not_an_approver_here() -> None:
    # R6: the facts hold only this practice's signers and this ICB's AEL contacts.
    decision = decide(form(CaseKind.GPP_ADMIN_FORM), practice(signers=(GUARDIAN,)))
    assert decision.action is Action.TRIAGE


def test_user_admin_form_with_several_services_and_a_main_contact() -> None:
    nominees = [
        {"name": "Jane Smith", "email": "jane.smith@nhs.net", "services": ["gpp", "pl"]},
        {"name": "Raj Kumar", "email": "raj@nhs.net", "services": ["pl"]},
    ]
    request = form(
        CaseKind.USER_ADMIN_FORM,
        nominees=nominees,
        main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"},
    )
    decision = decide(request, practice())
    assert decision.action is Action.ASK_APPROVERS
    assert [(c.service, c.email) for c in decision.changes] == [
        (Service.GPP, "jane.smith@nhs.net"),
        (Service.PL, "jane.smith@nhs.net"),
        (Service.PL, "raj@nhs.net"),
        (Service.MAIN_CONTACT, "sam.lee@nhs.net"),
    ]


def test_a_service_the_organisation_does_not_use_goes_to_triage() -> None:
    nominees = [{"name": "Raj Kumar", "email": "raj@nhs.net", "services": ["pl", "oph"]}]
    decision = decide(form(CaseKind.USER_ADMIN_FORM, nominees=nominees), practice())
    assert decision.action is Action.TRIAGE
    assert decision.reason.startswith("A81001 (The Surgery) does not use Ophthalmic Payments")
    check = next(c for c in decision.checks if c.name == "service_fits_organisation")
    assert not check.passed


def test_user_admin_form_without_a_service_needs_info() -> None:
    request = form(
        CaseKind.USER_ADMIN_FORM,
        nominees=[{"name": "Jane Smith", "email": "jane@nhs.net", "services": []}],
    )
    decision = decide(request, practice())
    assert decision.action is Action.NEEDS_INFO
    assert any("which service" in f for f in decision.finding_messages)


@pytest.mark.parametrize("kind", SIGNED_FORMS)
def test_unsigned_form_needs_info(kind: CaseKind) -> None:
    decision = decide(form(kind, signer=None), practice())
    assert decision.action is Action.NEEDS_INFO
    assert decision.reply == "needs_info"
    assert decision.reply_context["form_name"].endswith(".pdf")


# --------------------------------------------------------------------------- findings


def test_reader_findings_are_listed_for_the_requester() -> None:
    request = form(CaseKind.GPP_ADMIN_FORM)
    request.findings.append(
        Finding("declaration_unticked", "The declaration is not ticked.", "signer.declaration")
    )
    request.findings.append(
        Finding("invalid_date", "The date 31/02/2026 is not a date.", "signer.date")
    )
    decision = decide(request, practice())
    assert decision.action is Action.NEEDS_INFO
    assert decision.finding_messages == [
        "The declaration is not ticked.",
        "The date 31/02/2026 is not a date.",
    ]
    assert decision.reply_context["findings"] == decision.finding_messages


def test_missing_nominee_email_is_found_even_if_the_reader_missed_it() -> None:
    request = email_request(CaseKind.PL_ADMIN, nominees=[{"name": "Jane Smith", "email": None}])
    decision = decide(request, practice())
    assert decision.action is Action.NEEDS_INFO
    assert decision.finding_messages == ["The email address of the nominee is missing."]


def test_a_reader_finding_is_not_repeated_by_the_structural_check() -> None:
    request = email_request(CaseKind.PL_ADMIN, organisation_code=None)
    request.findings.append(
        Finding("missing_field", "Please give your practice code.", "organisation_code")
    )
    assert decide(request, practice()).finding_messages == ["Please give your practice code."]


def test_structural_findings_of_a_complete_request_are_empty() -> None:
    assert structural_findings("gpp_admin_form", form(CaseKind.GPP_ADMIN_FORM).fields) == []


# --------------------------------------------------------------------------- organisation


@pytest.mark.parametrize("kind", [*SIGNED_FORMS, CaseKind.PL_ADMIN, CaseKind.MAIN_CONTACT])
def test_unknown_organisation_goes_to_triage(kind: CaseKind) -> None:
    decision = decide(
        form(kind, main_contact={"name": "Sam Lee", "email": "sam@nhs.net"}),
        Facts(organisation_code="A81001"),
    )
    assert decision.action is Action.TRIAGE
    assert "not in the directory" in decision.reason


def test_closed_organisation_goes_to_triage() -> None:
    decision = decide(form(CaseKind.GPP_ADMIN_FORM), practice(org_closed=True))
    assert decision.action is Action.TRIAGE
    assert "closed" in decision.reason


# --------------------------------------------------------------------------- R1 at decision time


@pytest.mark.parametrize(
    "kind,service",
    [(CaseKind.GPP_ADMIN_FORM, Service.GPP), (CaseKind.USER_ADMIN_FORM, Service.GPP)],
)
def test_fifth_admin_is_refused(kind: CaseKind, service: Service) -> None:
    decision = decide(form(kind), practice(admin_counts={str(service): 4}))
    assert decision.action is Action.REFUSE
    assert decision.reply == "admin_limit_reached"
    assert decision.reply_context == {"service_title": "GP Payments and Pensions", "limit": 4}
    assert decision.target_state is CaseState.REJECTED


def test_two_nominees_that_would_make_five_are_refused() -> None:
    nominees = [{"name": "A B", "email": "a@nhs.net"}, {"name": "C D", "email": "c@nhs.net"}]
    decision = decide(
        form(CaseKind.GPP_ADMIN_FORM, nominees=nominees), practice(admin_counts={"gpp": 3})
    )
    assert decision.action is Action.REFUSE


def test_fourth_admin_is_fine() -> None:
    decision = decide(form(CaseKind.GPP_ADMIN_FORM), practice(admin_counts={"gpp": 3}))
    assert decision.action is Action.ASK_APPROVERS


def test_pcn_admins_have_no_limit() -> None:
    request = form(CaseKind.PCN_ADMIN_FORM, organisation_code="U12345", signer=None)
    decision = decide(request, pcn(admin_counts={"pcn": 12}))
    assert decision.action is Action.ASK_APPROVERS


def test_a_role_already_held_is_not_asked_again() -> None:
    facts = practice(
        nominee_holdings=frozenset({("jane.smith@nhs.net", "gpp")}), admin_counts={"gpp": 4}
    )
    decision = decide(form(CaseKind.GPP_ADMIN_FORM), facts)
    assert decision.action is Action.TRIAGE
    assert "already held" in decision.reason


# --------------------------------------------------------------------------- PCN


def pcn_request() -> ParsedRequest:
    return form(
        CaseKind.PCN_ADMIN_FORM,
        organisation_code="U12345",
        signer=None,
        nominees=[{"name": "Jane Smith", "email": "jane.smith@nhs.net", "services": ["pcn"]}],
    )


def test_pcn_form_from_a_verified_ael_contact_is_the_approval() -> None:
    decision = decide(pcn_request(), pcn(sender="dana.white@nhs.net", sender_verified=True))
    assert decision.action is Action.APPROVE
    assert decision.approvers == (AEL_2,)
    assert decision.changes == (PlannedChange(Service.PCN, "jane.smith@nhs.net", "Jane Smith"),)


def test_pcn_form_from_an_unverified_ael_address_asks_every_ael_contact() -> None:
    decision = decide(pcn_request(), pcn(sender="dana.white@nhs.net", sender_verified=False))
    assert decision.action is Action.ASK_APPROVERS
    assert decision.approvers == (AEL_1, AEL_2)
    assert any(c.name == "sent_by_ael_contact" and not c.passed for c in decision.checks)


def test_pcn_form_from_the_practice_asks_every_ael_contact() -> None:
    decision = decide(pcn_request(), pcn(sender="manager@nhs.net", sender_verified=True))
    assert decision.action is Action.ASK_APPROVERS
    assert decision.approvers == (AEL_1, AEL_2)


def test_pcn_without_ael_contacts_goes_to_triage() -> None:
    decision = decide(pcn_request(), pcn(ael_contacts=()))
    assert decision.action is Action.TRIAGE
    assert "AEL" in decision.reason


def test_pcn_form_for_a_practice_code_goes_to_triage() -> None:
    request = form(CaseKind.PCN_ADMIN_FORM, signer=None)
    assert decide(request, practice()).action is Action.TRIAGE


# --------------------------------------------------------------------------- by email


@pytest.mark.parametrize("kind,service", [(CaseKind.PL_ADMIN, "pl"), (CaseKind.OPH_ADMIN, "oph")])
def test_existing_admin_means_ask_them(kind: CaseKind, service: str) -> None:
    decision = decide(email_request(kind), organisation_for(kind, admin_counts={service: 1}))
    assert decision.action is Action.REDIRECT
    assert decision.reply == "redirect_existing_admins"
    assert decision.target_state is CaseState.ANSWERED
    assert decision.reply_context["service_title"] in ("Performers Lists", "Ophthalmic Payments")


@pytest.mark.parametrize("kind", [CaseKind.PL_ADMIN, CaseKind.OPH_ADMIN, CaseKind.MAIN_CONTACT])
def test_no_admin_asks_the_recorded_signers(kind: CaseKind) -> None:
    request = email_request(kind, main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"})
    decision = decide(request, organisation_for(kind))
    assert decision.action is Action.ASK_APPROVERS
    assert decision.approvers == (PARTNER, GUARDIAN)


@pytest.mark.parametrize("kind", [CaseKind.PL_ADMIN, CaseKind.OPH_ADMIN, CaseKind.MAIN_CONTACT])
def test_no_signer_recorded_goes_to_triage(kind: CaseKind) -> None:
    request = email_request(kind, main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"})
    decision = decide(request, organisation_for(kind, signers=()))
    assert decision.action is Action.TRIAGE
    assert "No approver" in decision.reason


def test_main_contact_change_is_approved_by_signers_not_the_old_contact() -> None:
    # R3: the current main contact cannot hand the role on.
    facts = practice(
        admin_counts={"main_contact": 1}, main_contact=Contact("Old Contact", "old@nhs.net")
    )
    request = email_request(
        CaseKind.MAIN_CONTACT,
        nominees=[],
        main_contact={"name": "Sam Lee", "email": "sam.lee@nhs.net"},
    )
    decision = decide(request, facts)
    assert decision.action is Action.ASK_APPROVERS
    assert decision.changes == (PlannedChange(Service.MAIN_CONTACT, "sam.lee@nhs.net", "Sam Lee"),)


# --------------------------------------------------------------------------- redirects


def test_performer_registration_is_redirected() -> None:
    decision = decide(ParsedRequest(kind="performer_registration"), Facts(None))
    assert decision.action is Action.REDIRECT
    assert decision.reply == "redirect_performer_registration"


def test_market_entry_is_redirected_with_the_address() -> None:
    decision = decide(ParsedRequest(kind="market_entry"), Facts(None))
    assert decision.reply == "redirect_market_entry"
    assert decision.reply_context == {"market_entry_address": "pcse.marketentry@nhs.net"}


@pytest.mark.parametrize("kind", [None, "other"])
def test_anything_else_goes_to_triage(kind: str | None) -> None:
    assert decide(ParsedRequest(kind=kind), Facts(None)).action is Action.TRIAGE


# --------------------------------------------------------------------------- helpers


def test_signer_matched_by_name_when_the_form_has_no_address() -> None:
    assert match_signer({"name": "DR. ANIL PATEL", "email": None}, practice()) == [PARTNER]


def test_planned_changes_skip_invalid_addresses_and_duplicates() -> None:
    fields = {
        "nominees": [
            {"name": "a", "email": "not-an-address"},
            {"name": "Jane", "email": "JANE@nhs.net"},
            {"name": "Jane again", "email": "jane@nhs.net"},
        ]
    }
    assert planned_changes("pl_admin", fields) == [
        PlannedChange(Service.PL, "jane@nhs.net", "Jane")
    ]


# --------------------------------------------------------------------------- properties

emails = st.sampled_from(
    [
        "a.patel@nhs.net",
        "beth.jones@nhs.net",
        "chris.green@nhs.net",
        "dana.white@nhs.net",
        "eve@evil.example",
        None,
    ]
)
kinds = st.sampled_from([*list(CaseKind), None])


@given(
    kind=kinds,
    signer_email=emails,
    sender=emails,
    verified=st.booleans(),
    counts=st.dictionaries(
        st.sampled_from(["gpp", "pl", "oph", "pcn", "main_contact"]), st.integers(0, 5)
    ),
    exists=st.booleans(),
    with_signers=st.booleans(),
)
def test_every_decision_is_reachable_and_approvers_are_recorded_ones(
    kind: str | None,
    signer_email: str | None,
    sender: str | None,
    verified: bool,
    counts: dict[str, int],
    exists: bool,
    with_signers: bool,
) -> None:
    facts = practice(
        org_exists=exists,
        admin_counts=counts,
        sender=sender,
        sender_verified=verified,
        signers=(PARTNER, GUARDIAN) if with_signers else (),
    )
    if kind == CaseKind.PCN_ADMIN_FORM:
        facts = replace(facts, org_type="pcn")
    request = form(
        kind or CaseKind.OTHER,
        signer={
            "name": "Someone",
            "email": signer_email,
            "capacity": "gp_partner",
            "date": None,
            "declaration": True,
        },
    )
    request.kind = kind
    decision = decide(request, facts)
    # The move is one the state table allows from `received`.
    assert decision.target_state in TRANSITIONS[CaseState.RECEIVED]
    # Approvers always come from the directory's snapshot, never from the form.
    recorded = {*facts.signers, *facts.ael_contacts}
    assert set(decision.approvers) <= recorded
    if decision.action is Action.APPROVE:
        assert (
            kind == CaseKind.PCN_ADMIN_FORM
            and verified
            and sender in {a.email for a in facts.ael_contacts}
        )
    if decision.action in (Action.ASK_APPROVERS, Action.APPROVE):
        assert decision.approvers and decision.changes
        assert exists
    assert decision.reason
