"""A rejection's reason goes to the requester: it must carry no contact details and none of
the approver's signature, and keep what the approver meant (workflow.reason_redaction)."""

from __future__ import annotations

import re

import pytest

from core.db import Database
from tests.test_workflow_helpers import PARTNER, answer, events, gpp_form, open_request, outbox
from workflow.env import WorkflowEnv
from workflow.reason_redaction import Signer, redact
from workflow.replies import Verdict, classify, read_answer, read_one_click

JO = Signer("Dr Jo Bloggs", "jo.bloggs@nhs.net")
NOT_JO = ["bloggs", "jo.bloggs"]
# (id, the approver's own text, the approver as recorded or None, what the reason must
# keep, what it must not hold)
SHAPES: list[tuple[str, str, Signer | None, list[str], list[str]]] = [
    # --- contact details, wherever they stand
    (
        "address after a comma",
        "REJECT - she left in March. If in doubt email me, jo.bloggs@nhs.net",
        None,
        ["she left in March.", "[email address removed]"],
        NOT_JO,
    ),
    (
        "address between dashes",
        "REJECT - she left in March. Please contact me - jo.bloggs@nhs.net - with questions",
        None,
        ["she left in March.", "with questions"],
        NOT_JO,
    ),
    (
        "send any queries to",
        "REJECT - she left in March, send any queries to jo.bloggs@nhs.net",
        None,
        ["she left in March"],
        NOT_JO,
    ),
    (
        "reply to",
        "REJECT - not known here; reply to jo.bloggs@nhs.net if you disagree",
        None,
        ["not known here", "if you disagree"],
        NOT_JO,
    ),
    ("queries colon", "REJECT - she left in March. Queries: jo.bloggs@nhs.net", None, [], NOT_JO),
    (
        "address as the subject",
        "REJECT - jo.bloggs@nhs.net is the right person to ask, not me",
        None,
        ["is the right person to ask, not me"],
        NOT_JO,
    ),
    (
        "address spelt out",
        "REJECT - not known here, contact jo dot bloggs at nhs dot net",
        None,
        ["not known here"],
        NOT_JO,
    ),
    (
        "web address",
        "REJECT - see my page https://example.nhs.uk/~jbloggs/contact for details",
        None,
        ["see my page", "for details"],
        ["jbloggs", "example.nhs.uk"],
    ),
    (
        "international number",
        "REJECT - she has left. Call me on +353 1 555 0147 if needed",
        None,
        ["she has left.", "if needed"],
        ["353", "555", "0147"],
    ),
    (
        "number without its 0",
        "REJECT - she has left, ring me on 1632 960123",
        None,
        ["she has left"],
        ["1632", "960123"],
    ),
    (
        "extension and bleep",
        "REJECT - she has left, ring me on extension 4321 or bleep 2207",
        None,
        ["she has left"],
        ["4321", "2207"],
    ),
    (
        "an O for a zero",
        "REJECT - she has left, my mobile is 07700 9OO 123",
        None,
        ["she has left"],
        ["07700", "9OO", "123"],
    ),
    (
        "number split by a comma",
        "REJECT - she left. Call me on 01632, 960123",
        None,
        ["she left."],
        ["01632", "960123"],
    ),
    (
        "mobile with an extension",
        "REJECT - she left. Mob 07700-900-123 ext. 5",
        None,
        ["she left."],
        ["07700", "ext", " 5"],
    ),
    (
        "switchboard line",
        "REJECT\nShe left in March.\nRiverside Surgery main reception switchboard number "
        "01632 960123",
        None,
        ["She left in March."],
        ["01632", "Riverside"],
    ),
    # --- signatures
    (
        "signature without a blank line, ending in a postal address",
        "REJECT - she left in March\nJo Bloggs\nPractice Manager\nRiverside Surgery\n"
        "1 High Street, Leeds LS1 1AA",
        None,
        ["she left in March"],
        ["Bloggs", "Practice Manager", "Riverside", "LS1", "High Street"],
    ),
    (
        "signature on the verdict line",
        "Rejected - Jo Bloggs, Practice Manager, Riverside Surgery",
        None,
        [],
        ["Bloggs", "Practice Manager", "Riverside"],
    ),
    (
        "signature set apart by pipes",
        "REJECT\nShe left in March.\nJo Bloggs | Practice Manager | Riverside Surgery | "
        "jo.bloggs@nhs.net",
        None,
        ["She left in March."],
        ["Bloggs", "Practice Manager", "Riverside"],
    ),
    (
        "lower-case signature of the approver",
        "REJECT - she left\njo bloggs\npractice manager",
        JO,
        ["she left"],
        ["bloggs", "practice manager"],
    ),
    (
        "the approver's name in a sentence",
        "REJECT - she left. Message me on Teams (Jo Bloggs) if you need to",
        JO,
        ["she left."],
        ["Bloggs", "Teams"],
    ),
    (
        "the approver's name on the verdict line",
        "Rejected - BLOGGS, Jo (Practice Manager)",
        JO,
        [],
        ["BLOGGS", "Practice Manager"],
    ),
    # --- the meaning kept
    (
        "what follows a number",
        "REJECT - she has left, call 01632 960123 for details, but her replacement Dr Shah "
        "should be added instead.",
        None,
        ["she has left", "but her replacement Dr Shah should be added instead."],
        ["01632"],
    ),
    (
        "a number as the subject",
        "REJECT - the phone number 01632 960123 on the form is not ours.",
        None,
        ["the phone number [number removed] on the form is not ours."],
        ["01632"],
    ),
    (
        "a smartcard number",
        "REJECT - her smartcard 0123 4567 8901 was revoked in March.",
        None,
        ["her smartcard", "was revoked in March."],
        ["4567"],
    ),
    (
        "an NHS number",
        "REJECT - NHS number 012 345 6789 does not match our records.",
        None,
        ["does not match our records."],
        ["6789"],
    ),
    (
        "an address to report to",
        "REJECT - please email fraud@nhs.net, this looks like fraud",
        None,
        ["this looks like fraud"],
        ["fraud@"],
    ),
    (
        "a courtesy before the reason",
        "REJECT\nThank you Dr Patel\nDr Patel has never worked here and must not be given access.",
        None,
        ["Dr Patel has never worked here and must not be given access."],
        ["Thank you"],
    ),
    (
        "a capitalised reason after a blank line",
        "REJECT\n\nNot A Partner Here",
        None,
        ["Not A Partner Here"],
        [],
    ),
    ("a reason in capitals", "REJECT\n\nDO NOT ADD HER", None, ["DO NOT ADD HER"], []),
    (
        "a reason in title case",
        "REJECT\nJo Has Left\nThe Practice",
        None,
        ["Jo Has Left"],
        ["The Practice"],
    ),
    (
        "a case reference stays",
        "REJECT - a duplicate of PCSE-2026-000123, rejected there too.",
        None,
        ["a duplicate of PCSE-2026-000123, rejected there too."],
        [],
    ),
    (
        "years stay",
        "REJECT - she worked here in 2019, 2020 and 2021 only.",
        None,
        ["she worked here in 2019, 2020 and 2021 only."],
        [],
    ),
]

# Seven digits or more with separators, or an address: none may reach the requester (a case
# reference aside).
LONG_NUMBER = re.compile(r"\d(?:[\s()+-]{0,2}\d){6,}")
CASE_REF = re.compile(r"PCSE-\d{4}-\d{6}")


@pytest.mark.parametrize(
    ("text", "signer", "kept", "leaked"),
    [shape[1:] for shape in SHAPES],
    ids=[shape[0] for shape in SHAPES],
)
def test_a_reason_keeps_the_meaning_and_leaks_no_contact_or_signature(
    text: str, signer: Signer | None, kept: list[str], leaked: list[str]
) -> None:
    answer = classify(text, signer)
    assert answer.verdict is Verdict.REJECT, answer.explanation
    reason = answer.reason or ""
    for words in kept:
        assert words in reason, (reason, words)
    for words in leaked:
        assert words.lower() not in reason.lower(), (reason, words)
    assert "@" not in reason and not LONG_NUMBER.search(CASE_REF.sub("", reason)), reason
    assert answer.own_text == text.strip()  # the full reply stays on the case


def test_the_signer_is_read_in_one_click_and_html_answers_too() -> None:
    subject = "REJECT [PCSE-2026-000123] APV-0123456789abcdef0123"
    one_click = read_one_click(
        subject, "Reason for rejecting (optional): she left\njo bloggs", None, signer=JO
    )
    assert one_click is not None and one_click.reason == "she left"
    html = "<div>REJECT - she left</div><div>jo bloggs</div><div>practice manager</div>"
    from_html = read_answer("", html, text_from_html=True, signer=JO)
    assert from_html.reason == "she left"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("ring 01632 960123 x12 today", "ring [number removed] today"),
        ("tel (01632) 960 123", "tel [number removed]"),
        ("see www.example.nhs.uk now", "see [web address removed] now"),
        ("A81001 and B82002 are codes", "A81001 and B82002 are codes"),
        ("born 12/03/1980", "born 12/03/1980"),
        ("jo [at] nhs [dot] net", "[email address removed]"),
    ],
)
def test_redact(text: str, redacted: str) -> None:
    assert redact(text) == redact(redacted) == redacted


def test_the_requester_is_sent_the_reason_without_the_approver_s_signature(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    name, address = PARTNER
    reply = (
        f"REJECT - she left in March, call 01632 960123 for details\n{name.lower()}\n"
        f"practice manager\n{address}"
    )
    answer(db, env, ref, PARTNER, reply)
    (rejected,) = outbox(db, "outcome_rejected")
    body = rejected.body_text + (rejected.body_html or "")
    assert "she left in March, call [number removed] for details" in rejected.body_text
    for leaked in (name.split()[-1], address, "practice manager", "01632"):
        assert leaked.lower() not in body.lower(), leaked
    (read,) = events(db, ref, "answer_read")
    assert name.lower() in read["data"]["own_text"]  # the full reply stays on the case
