"""Corrections, internal notes, replies in a caseworker's words and merging duplicates:
through the workflow and through `pcse case correct|note|reply|merge`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from caseworker.accounts import add_caseworker
from core.db import Database
from core.inbound import MessageKind
from intake.models import InboundMessage
from tests.test_actions import _config, pcse
from tests.test_workflow_helpers import (
    GUARDIAN,
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
    token_for,
)
from workflow import corrections, merge_cases, notes
from workflow.approvals import open_requests
from workflow.cases import get_case
from workflow.correct_values import CorrectionRefused, checked_value
from workflow.env import WorkflowEnv
from workflow.models import Case
from workflow.notes import HelpdeskRefused

LISA = ("Lisa Moore", "lisa.moore@nhs.net")


def main_contact_with_bad_address(db: Database, env: WorkflowEnv) -> str:
    """A Main Contact request whose address was read wrong: the requester is asked."""
    request = email_request(
        "main_contact", nominees=[], main_contact={"name": LISA[0], "email": "lisa.moore@nhs"}
    )
    ref = open_request(db, env, request, subject="Main contact A81001")
    assert case_of(db, ref).state == "needs_info"
    return ref


def correct(
    db: Database, env: WorkflowEnv, ref: str, field: str, value: str
) -> corrections.Corrected:
    with db.transaction() as session:
        return corrections.correct(
            session, env, ref, field=field, value=value, by="casey", reason="Checked by phone"
        )


# --------------------------------------------------------------------------- corrections


def test_a_correction_sends_the_case_to_approval_with_the_corrected_value(
    db: Database, env: WorkflowEnv
) -> None:
    ref = main_contact_with_bad_address(db, env)
    done = correct(db, env, ref, "main_contact.email", " Lisa.Moore@NHS.net ")
    assert (done.old, done.new) == ("lisa.moore@nhs", "lisa.moore@nhs.net")
    case = case_of(db, ref)
    assert case.state == "awaiting_approval"
    assert case.fields["main_contact"] == {"name": LISA[0], "email": LISA[1]}
    assert case.fields["readings"]["main_contact.email"]["source"] == "caseworker"
    assert case.fields["readings"]["main_contact.email"]["was"] == "lisa.moore@nhs"
    history = events(db, ref, "correction")
    assert history[0]["actor"] == "casey"
    assert history[0]["data"] == {
        "field": "main_contact.email",
        "old": "lisa.moore@nhs",
        "new": LISA[1],
        "by": "casey",
        "reason": "Checked by phone",
    }
    asked = outbox(db, "approval_request")
    assert {m.to_address for m in asked} == {PARTNER[1], GUARDIAN[1]}
    for message in asked:
        assert LISA[1] in message.body_text and "lisa.moore@nhs)" not in message.body_text
    # The approver's answer applies the corrected value.
    answer(db, env, ref, PARTNER, "APPROVE")
    assert case_of(db, ref).state == "completed"


def test_a_correction_voids_an_open_approval_request(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form(), subject="GPP admin form")
    assert case_of(db, ref).state == "awaiting_approval"
    old_token = token_for(db, ref, PARTNER[1])
    done = correct(db, env, ref, "nominees.0.email", "jane.smith2@nhs.net")
    assert len(done.voided) == 1
    voids = outbox(db, "approval_void")
    assert [m.to_address for m in voids] == [PARTNER[1]]
    assert "corrected the request (Nominee 1's email address)" in voids[0].body_text
    case = case_of(db, ref)
    assert case.state == "awaiting_approval"  # asked again, about the corrected request
    new_token = token_for(db, ref, PARTNER[1])
    assert new_token != old_token
    assert "jane.smith2@nhs.net" in outbox(db, "approval_request", PARTNER[1])[-1].body_text
    # The old code no longer counts: the case waits for a person, nothing is applied.
    answer(db, env, ref, PARTNER, "APPROVE", token=old_token)
    assert case_of(db, ref).state != "completed"


def test_a_correction_never_grants_on_the_senders_own_authority(
    db: Database, env: WorkflowEnv
) -> None:
    # The signer sends their own form: read right, it would be granted at once.
    form = gpp_form(nominees=[{"name": NOMINEE[0], "email": "jane@nhs", "services": ["gpp"]}])
    ref = open_request(db, env, form, sender=PARTNER, subject="GPP form")
    assert case_of(db, ref).state == "needs_info"
    correct(db, env, ref, "nominees.0.email", NOMINEE[1])
    case = case_of(db, ref)
    assert case.state in ("awaiting_approval", "triage")
    assert case.state != "completed"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("main_contact.email", "lisa at nhs dot net", "not a valid email address"),
        ("organisation_code", "12345", "not a valid organisation code"),
        ("main_contact.name", "lisa@nhs.net", "is not a main contact's name"),
        ("signer.capacity", "receptionist", "not a capacity"),
        ("nominees.7.email", "x@nhs.net", "has 0 nominee(s)"),
        ("requester", "x@nhs.net", "not a value that can be corrected"),
        ("main_contact.email", "   ", "Give the corrected"),
    ],
)
def test_a_correction_with_an_invalid_value_is_refused_and_changes_nothing(
    db: Database, env: WorkflowEnv, field: str, value: str, says: str
) -> None:
    ref = main_contact_with_bad_address(db, env)
    before = case_of(db, ref)
    with pytest.raises(CorrectionRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        correct(db, env, ref, field, value)
    after = case_of(db, ref)
    assert after.fields == before.fields and after.state == "needs_info"
    assert not events(db, ref, "correction")


@pytest.mark.parametrize(
    ("kind", "field", "value", "stored"),
    [
        ("main_contact", "main_contact.email", " <Lisa.Moore@NHS.net> ", "lisa.moore@nhs.net"),
        ("main_contact", "main_contact.name", "lisa  o'brien", "Lisa O'Brien"),
        ("pl_admin", "organisation_code", "a81-001", "A81001"),
        ("oph_admin", "organisation_code", "oc 4567", "OC4567"),
        ("pcn_admin_form", "icb_code", "qhm", "QHM"),
        ("gpp_admin_form", "signer.capacity", "Caldicott guardian", "caldicott_guardian"),
        ("gpp_admin_form", "signer.date", "1 March 2026", "2026-03-01"),
        ("gpp_admin_form", "signer.declaration", "Yes", True),
        (
            "user_admin_form",
            "nominees.0.services",
            "PL and GP Payments and Pensions",
            ["pl", "gpp"],
        ),
    ],
)
def test_a_corrected_value_is_normalised_as_a_read_one(
    kind: str, field: str, value: str, stored: object
) -> None:
    assert checked_value(kind, field, value) == stored


def test_a_closed_case_cannot_be_corrected(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "APPROVE")
    assert case_of(db, ref).state == "completed"
    with pytest.raises(CorrectionRefused, match="completed"):
        correct(db, env, ref, "nominees.0.name", "Janet Smith")


def test_correcting_the_organisation_code_moves_the_case_to_that_organisation(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(
        db, env, email_request("pl_admin", organisation_code="Z99999"), subject="PL admin"
    )
    assert case_of(db, ref).state == "triage"  # not in the directory
    correct(db, env, ref, "organisation_code", "a81 001")
    case = case_of(db, ref)
    assert case.organisation_code == "A81001"
    assert case.state == "awaiting_approval"


# --------------------------------------------------------------------------- notes and replies


def test_notes_stay_in_the_history_and_are_never_emailed(db: Database, env: WorkflowEnv) -> None:
    ref = main_contact_with_bad_address(db, env)
    secret = "Spoke to the ICB: do not trust this practice manager"
    with db.transaction() as session:
        notes.add_note(session, env, ref, by="casey", text=secret)
        notes.reply(
            session, env, ref, by="casey", message="We are looking into it.", signature=None
        )
    correct(db, env, ref, "main_contact.email", LISA[1])
    history = events(db, ref, "internal_note")
    assert [(h["detail"], h["actor"]) for h in history] == [(secret, "casey")]
    sent = outbox(db)
    assert len(sent) >= 3
    for message in sent:
        assert secret not in message.body_text and secret not in (message.body_html or "")
        assert "ICB: do not trust" not in message.subject


def test_a_reply_is_threaded_with_the_case_and_its_words_are_escaped(
    db: Database, env: WorkflowEnv
) -> None:
    ref = main_contact_with_bad_address(db, env)
    with db.transaction() as session:
        case = get_case(session, ref)
        source = session.get(InboundMessage, case.source_message_id)
        assert source is not None
        parent = source.message_id
        row = notes.reply(
            session,
            env,
            ref,
            by="casey@pcse.nhs.uk",
            message="Thanks <b>Mo</b> & team.\n\nWe have your form.",
            signature="Casey Ward",
        )
        row_id = row.id
    message = next(m for m in outbox(db) if m.id == row_id)
    assert message.purpose == "caseworker_reply" and message.to_address == MANAGER[1]
    assert message.auto_submitted == "no"
    assert f"[{ref}]" in message.subject
    assert message.in_reply_to == parent
    assert parent in (message.references or "")
    assert "Thanks <b>Mo</b> & team." in message.body_text
    assert "&lt;b&gt;Mo&lt;/b&gt; &amp; team." in (message.body_html or "")
    assert "<b>Mo</b>" not in (message.body_html or "")
    assert "Casey Ward" in message.body_text
    replies = events(db, ref, "caseworker_reply")
    assert replies[0]["detail"].startswith("Thanks <b>Mo</b>")
    assert case_of(db, ref).state == "needs_info"  # a reply does not move the case


def test_empty_notes_and_replies_are_refused(db: Database, env: WorkflowEnv) -> None:
    ref = main_contact_with_bad_address(db, env)
    with db.transaction() as session:
        with pytest.raises(HelpdeskRefused, match="Write the note"):
            notes.add_note(session, env, ref, by="casey", text="  ")
        with pytest.raises(HelpdeskRefused, match="Say who"):
            notes.reply(session, env, ref, by="", message="Hello", signature=None)


# --------------------------------------------------------------------------- merging


def two_requests(db: Database, env: WorkflowEnv) -> tuple[str, str]:
    original = main_contact_with_bad_address(db, env)
    duplicate = open_request(db, env, gpp_form(), subject="GPP form again")
    assert case_of(db, duplicate).state == "awaiting_approval"
    return original, duplicate


def test_cases_that_are_not_one_request_are_not_merged(db: Database, env: WorkflowEnv) -> None:
    """A mistyped reference: another organisation, or another requester with no
    organisation in common. Nothing moves and nobody is told."""
    original = main_contact_with_bad_address(db, env)  # A81001, from the practice manager
    elsewhere = open_request(db, env, gpp_form(organisation_code="B82002"), subject="Hill")
    stranger = open_request(
        db, env, gpp_form(organisation_code=None), sender=("Rae Ndom", "rae.ndom@nhs.net")
    )
    same_practice = open_request(db, env, gpp_form(), sender=GUARDIAN, subject="GPP again")
    before = len(outbox(db))
    for duplicate, refusal in (
        (elsewhere, "about B82002 and case .* about A81001"),
        (stranger, "share neither the requester nor the organisation.*pcse case correct"),
    ):
        with db.transaction() as session, pytest.raises(HelpdeskRefused, match=refusal):
            merge_cases.merge(session, env, duplicate, into=original, by="casey", reason="Dup")
        assert case_of(db, duplicate).merged_into_id is None
    assert len(outbox(db)) == before
    # Sent again by a colleague at the same practice: one request.
    with db.transaction() as session:
        merge_cases.merge(session, env, same_practice, into=original, by="casey", reason="Dup")
    assert case_of(db, same_practice).state == "withdrawn"


def test_merging_moves_messages_and_history_and_tells_the_requester(
    db: Database, env: WorkflowEnv
) -> None:
    original, duplicate = two_requests(db, env)
    reply = mail_from(MANAGER, subject=f"RE: [{duplicate}] GPP form again", text="Any news?")
    deliver(db, env, reply, MessageKind.CASE_REPLY, case_ref=duplicate)
    dup_history = [e["detail"] for e in events(db, duplicate)]
    with db.transaction() as session:
        merge_cases.merge(session, env, duplicate, into=original, by="casey", reason="Same request")
    with db.transaction() as session:
        kept, gone = get_case(session, original), get_case(session, duplicate)
        assert gone.state == "withdrawn" and gone.merged_into_id == kept.id
        assert not open_requests(session, gone)
        messages = session.scalars(
            select(InboundMessage).where(InboundMessage.case_id == kept.id)
        ).all()
        assert len(messages) == 3  # the original's request, the duplicate's and its reply
        assert not session.scalars(
            select(InboundMessage).where(InboundMessage.case_id == gone.id)
        ).all()
    merged = [e for e in events(db, original, "merged") if e["data"].get("event")]
    copied = [e["detail"] for e in merged]
    assert copied[: len(dup_history)] == [f"[{duplicate}] {d}" for d in dup_history]
    assert any("withdrawn" in d and "merged into case" in d for d in copied)
    voids = outbox(db, "approval_void")
    assert [m.to_address for m in voids] == [PARTNER[1]]
    told = outbox(db, "case_merged")
    assert len(told) == 1 and told[0].to_address == MANAGER[1]
    assert told[0].subject.startswith(f"[{original}]")
    assert duplicate in told[0].body_text and original in told[0].body_text
    assert told[0].case_id == case_of(db, original).id


def test_mail_quoting_a_merged_reference_reaches_the_original(
    db: Database, env: WorkflowEnv
) -> None:
    from workflow.intake_link import DatabaseKnowledge

    original, duplicate = two_requests(db, env)
    with db.transaction() as session:
        merge_cases.merge(session, env, duplicate, into=original, by="casey", reason="Same")
    with db.transaction() as session:
        assert DatabaseKnowledge(session).case_by_ref(duplicate) == get_case(session, original).id


@pytest.mark.parametrize("which", ["itself", "closed duplicate", "closed original"])
def test_merges_that_cannot_be_made_are_refused(db: Database, env: WorkflowEnv, which: str) -> None:
    original, duplicate = two_requests(db, env)
    closed = open_request(db, env, gpp_form(), subject="Done")
    answer(db, env, closed, PARTNER, "APPROVE")
    ref, into, says = {
        "itself": (duplicate, duplicate, "into itself"),
        "closed duplicate": (closed, original, "closed"),
        "closed original": (duplicate, closed, "closed"),
    }[which]
    with db.transaction() as session, pytest.raises(HelpdeskRefused, match=says):
        merge_cases.merge(session, env, ref, into=into, by="casey", reason="Same")
    assert case_of(db, duplicate).state == "awaiting_approval"
    assert not outbox(db, "case_merged")


# --------------------------------------------------------------------------- the command line


def test_cli_correct_note_reply_and_merge(db: Database, env: WorkflowEnv, tmp_path: Path) -> None:
    config = _config(tmp_path, db)
    original, duplicate = two_requests(db, env)
    code, _, err = pcse(
        config, "case", "correct", original, "main_contact.email", "nope", "--by", "casey",
        "--reason", "phone",
    )  # fmt: skip
    assert code == 1 and "not a valid email address" in err
    code, out, _ = pcse(
        config, "case", "correct", original, "main_contact.email", LISA[1], "--by", "casey",
        "--reason", "Confirmed by phone", "--json",
    )  # fmt: skip
    assert code == 0, out
    document = json.loads(out)
    assert document["state"] == "awaiting_approval"
    assert document["correction"] == {
        "field": "main_contact.email",
        "old": "lisa.moore@nhs",
        "new": LISA[1],
    }
    code, out, err = pcse(
        config, "case", "note", original, "--by", "casey", "--text", "Rang", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["note"]["text"] == "Rang"
    code, out, _ = pcse(
        config, "case", "reply", original, "--by", "casey", "--message", "On it", "--json"
    )
    assert code == 0 and json.loads(out)["reply"]["to"] == MANAGER[1]
    assert json.loads(out)["reply"]["signed_by"] is None
    code, _, err = pcse(
        config, "case", "merge", original, "--into", original, "--by", "casey", "--reason", "x"
    )
    assert code == 1 and "into itself" in err
    code, out, _ = pcse(
        config, "case", "merge", duplicate, "--into", original, "--by", "casey", "--reason",
        "Same request", "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["ref"] == original and json.loads(out)["merged_from"] == duplicate
    code, out, _ = pcse(config, "case", "show", duplicate, "--json")
    assert json.loads(out)["state"] == "withdrawn"


def test_a_reply_from_the_command_line_is_signed_by_an_account_never_by_free_text(
    db: Database, env: WorkflowEnv, tmp_path: Path
) -> None:
    """`--by` is free text: a reply is signed with the name of the caseworker account it
    names (by address or name), and with the team's name alone where it names none."""
    config = _config(tmp_path, db)
    ref = main_contact_with_bad_address(db, env)
    with db.transaction() as session:
        add_caseworker(
            session, email="casey.ward@pcse.nhs.uk", name="Casey Ward",
            password="correct horse battery staple",
        )  # fmt: skip
    signed = {}
    for by in ("Casey.Ward@PCSE.nhs.uk", "The Chief Executive of NHS England"):
        code, out, err = pcse(config, "case", "reply", ref, "--by", by, "--message", "On it")
        assert code == 0, err
        signed[by] = out
    assert "signed by Casey Ward." in signed["Casey.Ward@PCSE.nhs.uk"]
    assert (
        "signed by the team: --by names no caseworker account"
        in signed["The Chief Executive of NHS England"]
    )
    bodies = [m.body_text for m in outbox(db, "caseworker_reply")]
    assert len(bodies) == 2
    assert "Casey Ward, PCSE Online user management" in bodies[0]
    assert "Chief Executive" not in bodies[1]
    assert "\nPCSE Online user management" in bodies[1]


# --------------------------------------------------------------------------- handovers, end to end


def test_a_main_contact_handover_asks_the_approver_about_the_one_coming_in(
    db: Database, env: WorkflowEnv
) -> None:
    text = (
        "Hello,\n\nPlease change our main contact from Tom Baker (tom.baker@nhs.net) to "
        "Lisa Moore (lisa.moore@nhs.net). Our practice code is A81001.\n\nThanks\nMo"
    )
    mail = mail_from(MANAGER, subject="Change of main contact", text=text)
    deliver(db, env, mail, MessageKind.NEW_REQUEST)
    with db.transaction() as session:
        case_id = session.scalars(select(InboundMessage.case_id)).one()
        ref = session.scalars(select(Case.ref).where(Case.id == case_id)).one()
    case = case_of(db, ref)
    assert case.state == "awaiting_approval"
    assert case.fields["main_contact"] == {"name": LISA[0], "email": LISA[1]}
    assert case.fields["outgoing"] == [{"name": "Tom Baker", "email": "tom.baker@nhs.net"}]
    asked = outbox(db, "approval_request", PARTNER[1])
    assert LISA[1] in asked[0].body_text and "tom.baker@nhs.net" not in asked[0].body_text
