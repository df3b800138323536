"""No forged or replayed reply approves anything, and every refusal is in the history."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.addresses import parse_from
from core.clock import FixedClock
from core.db import Database
from core.inbound import MessageKind
from core.senderauth import Profile, SenderPolicy, authenticate
from tests.test_workflow_helpers import (
    GUARDIAN,
    MANAGER,
    NOMINEE,
    PARTNER,
    Mail,
    answer,
    case_of,
    deliver,
    email_request,
    events,
    failed_checks,
    gpp_form,
    holders,
    mail_from,
    make_env,
    open_request,
    outbox,
    passed_dmarc,
    token_for,
)
from workflow.approvals import TOKEN_RE, find_token, new_token, shown
from workflow.env import WorkflowEnv


def refusals(db: Database, ref: str) -> list[str]:
    return [e["detail"] for e in events(db, ref, "approval_refused")]


def assert_nothing_approved(db: Database, ref: str) -> None:
    assert case_of(db, ref).state not in ("approved", "completed")
    assert holders(db, "A81001", "gpp") == []
    assert outbox(db, "welcome_admin") == []


def test_reply_from_another_address(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    outcome = answer(db, env, ref, ("Mallory", "mallory@nhs.net"), "APPROVE", token=token)
    assert "refused" in outcome.lower()
    assert_nothing_approved(db, ref)
    assert case_of(db, ref).state == "awaiting_approval"
    assert "sender_is_approver" in failed_checks(db, ref)
    assert refusals(db, ref)
    # The approver may still answer; a person reads what the other address wrote.
    assert case_of(db, ref).new_reply_at is not None


def test_an_approver_removed_since_being_asked_approves_nothing(
    db: Database, env: WorkflowEnv
) -> None:
    from sqlalchemy import update

    from workflow.models import Signer

    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    with db.transaction() as session:  # as an import with --replace would
        session.execute(update(Signer).where(Signer.email == PARTNER[1]).values(active=False))
    outcome = answer(db, env, ref, PARTNER, "APPROVE", token=token)
    assert "refused" in outcome.lower()
    assert_nothing_approved(db, ref)
    case = case_of(db, ref)
    assert case.state == "triage"
    assert "removed from the recorded approvers" in case.reason
    assert any("is no longer a recorded signer of A81001" in r for r in refusals(db, ref))


def test_right_address_without_dmarc_pass(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    failing = [
        "mx.nhs.net; spf=softfail smtp.mailfrom=nhs.net; dmarc=fail (p=reject) header.from=nhs.net"
    ]
    answer(db, env, ref, PARTNER, "APPROVE", authentication_results=failing)
    assert_nothing_approved(db, ref)
    assert "sender_authenticated" in failed_checks(db, ref)
    # It claims to be the approver, so a person confirms it with them.
    assert case_of(db, ref).state == "triage"
    check = [e for e in events(db, ref, "check") if e["data"]["check"] == "sender_authenticated"][
        -1
    ]
    assert "dmarc=fail" in check["detail"]
    assert "dmarc=fail" in check["data"]["sender_authentication"]


def test_right_address_with_no_authentication_results(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "APPROVE", authentication_results=[])
    assert_nothing_approved(db, ref)
    assert "sender_authenticated" in failed_checks(db, ref)


def test_forged_authentication_results_from_an_untrusted_authserv_id(
    db: Database,
    env: WorkflowEnv,
) -> None:
    ref = open_request(db, env, gpp_form())
    forged = [
        passed_dmarc(PARTNER[1], authserv="mx.attacker.example"),
        "mx.nhs.net; dmarc=fail header.from=nhs.net",
    ]
    answer(db, env, ref, PARTNER, "APPROVE", authentication_results=forged)
    assert_nothing_approved(db, ref)
    check = [e for e in events(db, ref, "check") if e["data"]["check"] == "sender_authenticated"][
        -1
    ]
    assert check["data"]["passed"] is False
    assert "below one that is not trusted" in check["detail"]


def test_forged_header_alone_is_not_enough(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    forged = [passed_dmarc(PARTNER[1], authserv="mx.attacker.example")]
    answer(db, env, ref, PARTNER, "APPROVE", authentication_results=forged)
    assert_nothing_approved(db, ref)


def test_token_reused(db: Database, env: WorkflowEnv) -> None:
    first = open_request(db, env, gpp_form())
    token = token_for(db, first, PARTNER[1])
    answer(db, env, first, PARTNER, "REJECT not known here", token=token)
    assert case_of(db, first).state == "rejected"
    replay = answer(db, env, first, PARTNER, "APPROVE", token=token)
    assert "refused" in replay.lower()
    assert case_of(db, first).state == "rejected"
    assert "token_open" in failed_checks(db, first)
    assert_nothing_approved(db, first)


def test_token_of_another_case(db: Database, env: WorkflowEnv) -> None:
    first = open_request(db, env, gpp_form())
    second = open_request(
        db, env, gpp_form(nominees=[{"name": "Other Person", "email": "other@nhs.net"}])
    )
    token_of_second = token_for(db, second, PARTNER[1])
    # The reply is about the first case but carries the second case's token.
    answer(
        db,
        env,
        first,
        PARTNER,
        "APPROVE",
        token=token_of_second,
        subject=f"RE: [{first}] Approval needed APV-{token_of_second}",
    )
    for ref in (first, second):
        assert case_of(db, ref).state != "completed"
        assert refusals(db, ref), ref
    assert "token_case" in failed_checks(db, second)
    assert holders(db, "A81001", "gpp") == []


def test_unknown_token(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    outcome = answer(db, env, ref, PARTNER, "APPROVE", token="0" * 20)
    assert "refused" in outcome.lower()
    assert "token_known" in failed_checks(db, ref)
    assert_nothing_approved(db, ref)


def test_two_from_addresses(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    mail = Mail(
        from_addresses=[PARTNER, ("Mallory", "mallory@nhs.net")],
        subject=f"RE: [{ref}] Approval needed APV-{token}",
        text="APPROVE\n",
        authentication_results=[passed_dmarc(PARTNER[1])],
    )
    deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)
    assert_nothing_approved(db, ref)
    assert {"sender_parsed", "sender_is_approver"} <= failed_checks(db, ref)


def test_approve_word_only_in_the_quoted_text(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    mail = mail_from(
        PARTNER,
        subject=f"RE: [{ref}] Approval needed APV-{token}",
        text="\n\nOn Mon, 2 Mar 2026, PCSE <pcse.portalenquiries@nhs.net> wrote:\n"
        "> APPROVE\n> Yes I approve\n",
    )
    deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)
    assert_nothing_approved(db, ref)
    assert case_of(db, ref).state == "triage"
    (read,) = events(db, ref, "answer_read")
    assert read["data"]["verdict"] == "unclear"
    assert read["data"]["own_text"] == ""


def test_expired_token(db: Database) -> None:
    clock = FixedClock(make_env().clock.now())
    env = make_env(clock)
    ref = open_request(db, env, gpp_form())
    clock.advance(days=11)
    outcome = answer(db, env, ref, PARTNER, "APPROVE")
    assert "refused" in outcome.lower()
    assert "token_unexpired" in failed_checks(db, ref)
    assert_nothing_approved(db, ref)


def test_the_other_approvers_answer_after_the_first_decided(db: Database, env: WorkflowEnv) -> None:
    ref = open_request(db, env, email_request("pl_admin"))
    answer(db, env, ref, GUARDIAN, "REJECT she is a locum")
    assert case_of(db, ref).state == "rejected"
    answer(db, env, ref, PARTNER, "APPROVE")
    assert case_of(db, ref).state == "rejected"
    assert holders(db, "A81001", "pl") == []


def test_profile_none_takes_from_at_its_word(db: Database) -> None:
    env = make_env(trusted=())
    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "APPROVE", authentication_results=[])
    assert case_of(db, ref).state == "completed"
    assert holders(db, "A81001", "gpp") == [NOMINEE[1]]


def test_approval_request_never_goes_to_the_address_on_the_form(
    db: Database,
    env: WorkflowEnv,
) -> None:
    signer = {
        "name": "Anil Patel",
        "email": "anil@attacker.example",
        "capacity": "gp_partner",
        "date": None,
        "declaration": True,
    }
    open_request(db, env, gpp_form(signer=signer))
    assert [m.to_address for m in outbox(db, "approval_request")] == [PARTNER[1]]
    assert outbox(db, to="anil@attacker.example") == []
    assert outbox(db, to=MANAGER[1])[0].purpose == "acknowledgement"


# --------------------------------------------------------------------------- pure pieces


def test_tokens_are_fresh_and_match_the_contract() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in list(tokens)[:20]:
        assert re.fullmatch(r"[0-9a-f]{20}", token)
        assert TOKEN_RE.search(f"Subject [x] {shown(token)} end").group(1) == token
        assert find_token(f"re: {shown(token).upper()}") == token


def dmarc_passes(headers: list[str], trusted: tuple[str, ...], domain: str) -> tuple[bool, str]:
    """The authserv-id profile's verdict on a sender of `domain` with these headers."""
    verdict = authenticate(
        SenderPolicy(Profile.AUTHSERV_ID, trusted), parse_from([f"x@{domain}"]), headers, []
    )
    return verdict.authenticated, verdict.detail


@pytest.mark.parametrize(
    "headers,domain,expected",
    [
        (["mx.nhs.net; dmarc=pass header.from=nhs.net"], "nhs.net", True),
        (["MX.NHS.NET 1; dmarc=pass header.from=NHS.net"], "nhs.net", True),
        (["mx.nhs.net; dmarc=pass header.from=other.org"], "nhs.net", False),
        (["mx.nhs.net; dmarc=none header.from=nhs.net"], "nhs.net", False),
        (["mx.nhs.net; spf=pass smtp.mailfrom=nhs.net"], "nhs.net", False),
        # The topmost trusted header wins over a lower one.
        (
            [
                "mx.nhs.net; dmarc=fail header.from=nhs.net",
                "mx.nhs.net; dmarc=pass header.from=nhs.net",
            ],
            "nhs.net",
            False,
        ),
        # A trusted id below a header that is not trusted was written before the message
        # reached the trusted server, so by anyone.
        (
            [
                "evil.example; dmarc=pass header.from=nhs.net",
                "mx.nhs.net; dmarc=pass header.from=nhs.net",
            ],
            "nhs.net",
            False,
        ),
        # A header claiming a trusted id that cannot be read fails, never falls through.
        (["mx.nhs.net; ;;; ==", "mx.nhs.net; dmarc=pass header.from=nhs.net"], "nhs.net", False),
        (
            ["Authentication-Results: mx.nhs.net;\r\n dmarc=pass\r\n header.from=nhs.net"],
            "nhs.net",
            True,
        ),
        ([], "nhs.net", False),
        (["; dmarc=pass header.from=nhs.net", "", "   "], "nhs.net", False),
    ],
)
def test_dmarc_verdicts(headers: list[str], domain: str, expected: bool) -> None:
    passed, said = dmarc_passes(headers, ("mx.nhs.net",), domain)
    assert passed is expected, said
    assert said


@given(
    st.lists(
        st.text(max_size=80) | st.text(max_size=60).map(lambda t: "mx.nhs.net; " + t), max_size=4
    ),
    st.text(max_size=20),
)
def test_any_authentication_results_text_gives_a_verdict(headers: list[str], domain: str) -> None:
    passed, said = dmarc_passes(headers, ("mx.nhs.net",), domain)
    assert isinstance(passed, bool) and said
