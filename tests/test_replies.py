"""Reading an approver's answer from replies in the styles of the clients people use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.reason_redaction import Signer
from workflow.replies import (
    Verdict,
    doubt_in_own_words,
    note_says_more,
    own_text,
    read_answer,
    read_one_click,
    subject_verdict,
)

REQUEST = (
    "Dear Dr Patel,\n\nPlease approve Jane Smith as GPP Practice User Administrator for "
    "A81001.\nReply APPROVE to approve, or REJECT followed by your reason.\n"
    "Reference APV-0123456789abcdef0123\n"
)


# The approver asked, as the approval request names them: their name may sign a closing.
APPROVER = Signer("Dr Anil Patel", "a.patel@nhs.net")


def quoted(prefix: str = "> ") -> str:
    return "\n".join(prefix + line for line in REQUEST.splitlines())


OUTLOOK = (
    "{answer}\n\nKind regards,\nDr A Patel\nGP Partner\n\n"
    "________________________________\n"
    "From: PCSE Online user management <pcse.portalenquiries@nhs.net>\n"
    "Sent: 03 March 2026 10:00\nTo: PATEL, Anil (THE SURGERY) <a.patel@nhs.net>\n"
    "Subject: [PCSE-2026-000001] Approval needed APV-0123456789abcdef0123\n\n" + REQUEST
)
OUTLOOK_OLD = "{answer}\n\n-----Original Message-----\nFrom: PCSE\nSent: Tuesday\n\n" + REQUEST
GMAIL = (
    "{answer}\n\nOn Tue, 3 Mar 2026 at 10:00, PCSE Online user management <\n"
    "pcse.portalenquiries@nhs.net> wrote:\n\n" + quoted()
)
APPLE = (
    "{answer}\n\nSent from my iPhone\n\n"
    "> On 3 Mar 2026, at 10:00, PCSE Online user management "
    "<pcse.portalenquiries@nhs.net> wrote:\n>\n" + quoted()
)
ANDROID_OUTLOOK = (
    "{answer}\n\nGet Outlook for Android\n"
    "________________________________\nFrom: PCSE Online user management "
    "<pcse.portalenquiries@nhs.net>\nSent: Tuesday, March 3, 2026 10:00:00 AM\n"
    "To: a.patel@nhs.net <a.patel@nhs.net>\nSubject: Approval needed\n\n" + REQUEST
)
TOP_QUOTE_ONLY = "{answer}\n" + quoted()
STYLES = {
    "outlook": OUTLOOK,
    "outlook_old": OUTLOOK_OLD,
    "gmail": GMAIL,
    "apple": APPLE,
    "android_outlook": ANDROID_OUTLOOK,
    "plain_quote": TOP_QUOTE_ONLY,
}

APPROVALS = [
    "APPROVE",
    "Approved",
    "approved.",
    "YES I approve",
    "Yes, I approve this request.",
    "I approve",
    "Approved - thanks",
]
REJECTIONS = {
    "REJECT she left the practice in March": "she left the practice in March",
    "Rejected. The nominee is a locum.": "The nominee is a locum.",
    "REJECT - not employed here": "not employed here",
    "Reject: wrong practice": "wrong practice",
    "No, she is not a partner here": "she is not a partner here",
    "I do not approve this; he has left": "he has left",
    "Declined because the practice is merging": "the practice is merging",
}
# A bare "Yes" answers nothing that can be checked: it is read as unclear.
UNCLEAR = [
    "Who is this person?",
    "Please call me on 0113 000 0000",
    "Approve? Reject? Not sure",
    "I will approve once she has been vetted but for now reject",
    "Thanks",
    "Yes",
]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("answer", APPROVALS)
def test_approvals_in_every_client_style(style: str, answer: str) -> None:
    result = read_answer(STYLES[style].format(answer=answer), signer=APPROVER)
    assert result.verdict is Verdict.APPROVE, (style, answer, result)
    assert "REJECT" not in result.own_text


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("answer", sorted(REJECTIONS))
def test_rejections_carry_their_reason(style: str, answer: str) -> None:
    result = read_answer(STYLES[style].format(answer=answer))
    assert result.verdict is Verdict.REJECT, (style, answer, result)
    assert result.reason == REJECTIONS[answer]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize(
    "answer",
    [
        "APPROVE\nOn second thoughts, no - REJECT, Jane has left the practice",
        "APPROVE\nOn hold until her DBS check clears please",
        "APPROVE\nOn condition that Bob Jones is removed as admin.",
        "APPROVE\nFrom: 1 April, when her contract starts",
    ],
)
@pytest.mark.parametrize("gap", ["\n", ""])
def test_a_line_begun_like_a_quote_s_header_above_the_quote_is_read(
    style: str, answer: str, gap: str
) -> None:
    """Whether or not a blank line parts it from the quote, the line is the approver's."""
    reply = STYLES[style].format(answer=answer).replace(answer + "\n\n", answer + "\n" + gap, 1)
    result = read_answer(reply, signer=APPROVER)
    assert result.verdict is not Verdict.APPROVE, (style, reply, result)


@pytest.mark.parametrize(
    "reply",
    [
        "APPROVE\nOn 1 April she leaves - do not approve\nPCSE Enquiries wrote:\n" + quoted(),
        "APPROVE\nOn 3 March the practice manager wrote:\nJane has left, REJECT instead\n\n"
        "On Tue, 3 Mar 2026 at 10:00, PCSE <pcse@nhs.net> wrote:\n\n" + quoted(),
    ],
)
def test_the_approver_s_own_lines_above_an_attribution_are_read(reply: str) -> None:
    assert read_answer(reply, signer=APPROVER).verdict is Verdict.UNCLEAR


@pytest.mark.parametrize(
    "first",
    [
        "Approved, thanks Jane Smith Excluded",
        "Approved, thanks Remove Bob",
        "Approved, many thanks Jane Retires Friday",
        "Approved, thanks Jane Quit",
        "Approved, thanks Dr Reid Disagrees",
        "APPROVE - Thanks Partners Oppose",
    ],
)
def test_words_after_thanks_on_the_approving_line_are_the_approver_s_name_or_unclear(
    first: str,
) -> None:
    result = read_answer(GMAIL.format(answer=first), signer=NAMING)
    assert result.verdict is Verdict.UNCLEAR, result


@pytest.mark.parametrize(
    "first",
    [
        "Approved, thanks Anil",
        "Approved, thanks Dr Patel",
        "Approved - many thanks, Anil",
        "Approved, thanks all",
        "APPROVE - thank you PCSE team",
    ],
)
def test_thanks_and_the_approver_s_own_name_on_the_approving_line_approve(first: str) -> None:
    result = read_answer(GMAIL.format(answer=first), signer=NAMING)
    assert result.verdict is Verdict.APPROVE, result


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("answer", UNCLEAR)
def test_unclear_answers(style: str, answer: str) -> None:
    assert read_answer(STYLES[style].format(answer=answer)).verdict is Verdict.UNCLEAR


@pytest.mark.parametrize("style", sorted(STYLES))
def test_the_approve_word_only_in_the_quote_approves_nothing(style: str) -> None:
    body = (
        STYLES[style]
        .format(answer="")
        .replace("Reply APPROVE to approve, or REJECT followed by your reason.", "APPROVE")
    )
    result = read_answer(body)
    assert result.verdict is Verdict.UNCLEAR
    assert "APPROVE" not in result.own_text.upper()


def test_a_reply_that_is_nothing_but_a_quote() -> None:
    result = read_answer("On Tue, 3 Mar 2026, PCSE <pcse@nhs.net> wrote:\n> APPROVE\n> yes\n")
    assert result.verdict is Verdict.UNCLEAR
    assert result.own_text == ""


def test_negated_approval_is_unclear() -> None:
    result = read_answer("Not approved, she has left.\n")
    assert result.verdict is Verdict.UNCLEAR
    assert result.reason is None


@pytest.mark.parametrize("apostrophe", ["'", "\u2019", "\u00b4", "`", "\u2032", "\uff07", "\u02bb"])
def test_a_negation_written_with_any_apostrophe_is_unclear(apostrophe: str) -> None:
    # Split at an apostrophe it did not know, "don´t" hid its negation: read as APPROVE.
    assert read_answer(f"APPROVE\nSorry, I meant I don{apostrophe}t approve her\n").verdict is (
        Verdict.UNCLEAR
    )
    one_click = read_one_click(
        "APPROVE [PCSE-2026-000001] APV-" + "a" * 20, f"Sorry - I don{apostrophe}t know her", None
    )
    assert one_click.verdict is Verdict.UNCLEAR


def test_rejection_without_a_reason() -> None:
    result = read_answer("REJECT\n\n" + quoted())
    assert result.verdict is Verdict.REJECT
    assert result.reason is None


# --------------------------------------------------------------------------- HTML bodies

GMAIL_HTML = (
    '<div dir="ltr">{answer}</div><br><div class="gmail_quote"><div dir="ltr" '
    'class="gmail_attr">On Tue, 3 Mar 2026 at 10:00, PCSE &lt;pcse@nhs.net&gt; wrote:<br></div>'
    '<blockquote class="gmail_quote" style="margin:0px">Reply APPROVE to approve, or REJECT '
    "followed by your reason.</blockquote></div>"
)
OUTLOOK_HTML = (
    "<html><head><style>p {{margin:0}}</style></head><body>"
    '<div style="font-family:Calibri">{answer}</div><div><p>Kind regards<br>Dr Patel</p></div>'
    '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
    "<b>From:</b> PCSE<br><b>Sent:</b> 03 March 2026</div><div>Reply APPROVE to approve</div>"
    "</body></html>"
)
APPLE_HTML = (
    "<html><body><div>{answer}<br><br><div>Sent from my iPad</div></div>"
    '<div><br><blockquote type="cite"><div>On 3 Mar 2026, at 10:00, PCSE wrote:</div>'
    "<div>APPROVE</div></blockquote></div></body></html>"
)
OUTLOOK_WEB_HTML = (
    '<div class="elementToProof">{answer}</div><div id="appendonsend"></div>'
    '<div dir="ltr"><b>From:</b> PCSE</div><div>REJECT or APPROVE</div>'
)


@pytest.mark.parametrize("template", [GMAIL_HTML, OUTLOOK_HTML, APPLE_HTML, OUTLOOK_WEB_HTML])
def test_html_only_replies(template: str) -> None:
    approve = read_answer("", template.format(answer="Approved"), signer=APPROVER)
    assert approve.verdict is Verdict.APPROVE
    reject = read_answer("", template.format(answer="REJECT &mdash; she has left<p>the practice"))
    assert reject.verdict is Verdict.REJECT
    assert reject.reason == "she has left the practice"
    nothing = read_answer("", template.format(answer=""))
    assert nothing.verdict is Verdict.UNCLEAR


def test_plain_and_html_parts_that_disagree_are_unclear() -> None:
    result = read_answer("Approved\n", "<div>REJECT no</div>")
    assert result.verdict is Verdict.UNCLEAR


def test_an_html_part_that_says_more_than_the_approving_plain_text_is_unclear() -> None:
    """What the approver's reader showed them is what they sent: the plain text beside it
    approving does not outvote it."""
    html = "<div>APPROVE</div><div>On hold until her DBS check clears please</div>"
    result = read_answer("APPROVE\n", html, signer=APPROVER)
    assert result.verdict is Verdict.UNCLEAR, result
    assert "says" in result.explanation or "more" in result.explanation, result


def test_html_used_when_the_plain_part_is_empty() -> None:
    assert read_answer("", "<div>APPROVE</div>").verdict is Verdict.APPROVE


def test_own_text_keeps_only_the_new_lines() -> None:
    assert own_text(OUTLOOK.format(answer="Approved, thank you")) == "Approved, thank you"


@given(st.text(max_size=400), st.none() | st.text(max_size=400))
def test_any_body_gives_a_verdict(text: str, html: str | None) -> None:
    result = read_answer(text, html)
    assert result.verdict in set(Verdict)
    if result.verdict is Verdict.APPROVE:
        assert result.own_text


def test_text_made_from_the_html_is_not_read() -> None:
    # Intake flattened this HTML-only reply, quote and all: the flattening opens with the
    # quoted APPROVE, which only the HTML reading knows to be quoted.
    html = (
        '<div dir="ltr"><br></div><div class="gmail_quote"><blockquote>APPROVE</blockquote></div>'
    )
    assert read_answer("APPROVE\n", html).verdict is Verdict.APPROVE
    result = read_answer("APPROVE\n", html, text_from_html=True)
    assert result.verdict is Verdict.UNCLEAR
    assert result.own_text == ""
    assert (
        read_answer("Approved\n", "<div>Approved</div>", text_from_html=True).verdict
        is Verdict.APPROVE
    )
    assert read_answer("Approved\n", None, text_from_html=True).verdict is Verdict.UNCLEAR


def test_an_unreadable_plain_part_is_not_outvoted_by_the_html() -> None:
    result = read_answer("Approve? Not sure yet\n", "<div>Approved</div>")
    assert result.verdict is Verdict.UNCLEAR
    assert result.own_text == "Approve? Not sure yet"


def test_a_long_own_text_is_unclear_even_when_it_opens_with_approve() -> None:
    padding = "Approved" + " " * 10_000 + "but only once she has started"
    assert read_answer(padding).verdict is Verdict.UNCLEAR
    assert read_answer("Approved\n" + "She is our new manager.\n" * 300).verdict is Verdict.UNCLEAR


# --------------------------------------------------------------------------- one click

TOKEN = "APV-0123456789abcdef0123"


@pytest.mark.parametrize(
    ("subject", "verdict"),
    [
        (f"APPROVE [PCSE-2026-000123] {TOKEN}", Verdict.APPROVE),
        (f"  reject [PCSE-2026-000123] {TOKEN}  ", Verdict.REJECT),
        (f"Approve\t[PCSE-2026-000123]   {TOKEN.upper()}", Verdict.APPROVE),
    ],
)
def test_one_click_subjects(subject: str, verdict: Verdict) -> None:
    assert subject_verdict(subject) is verdict


@pytest.mark.parametrize(
    "subject",
    [
        f"RE: APPROVE [PCSE-2026-000123] {TOKEN}",
        f"Re: REJECT [PCSE-2026-000123] {TOKEN}",
        f"FW: APPROVE [PCSE-2026-000123] {TOKEN}",
        f"APPROVE [PCSE-2026-000123] {TOKEN} once she starts",
        f"APPROVE [PCSE-2026-000123] {TOKEN}" + " " * 300 + "not yet",
        f"APPROVED [PCSE-2026-000123] {TOKEN}",
        f"NOT APPROVE [PCSE-2026-000123] {TOKEN}",
        f"APPROVE PCSE-2026-000123 {TOKEN}",
        "APPROVE [PCSE-2026-000123]",
        "APPROVE [PCSE-2026-000123] APV-0123",
        f"[PCSE-2026-000123] Approval needed {TOKEN}",
        f"APPROVE REJECT [PCSE-2026-000123] {TOKEN}",
        "",
    ],
)
def test_other_subjects_are_not_one_click_answers(subject: str) -> None:
    assert subject_verdict(subject) is None
    assert read_one_click(subject, "", None) is None


APPROVE_SUBJECT = f"APPROVE [PCSE-2026-000123] {TOKEN}"
REJECT_SUBJECT = f"REJECT [PCSE-2026-000123] {TOKEN}"
SIGNATURE = (
    "Kind regards\n\nDr Anil Patel\nGP Partner\nTel: 0113 496 0000\n\n"
    "This message may contain confidential information. If you are not the intended "
    "recipient please inform the sender and do not disclose it.\n"
)


@pytest.mark.parametrize(
    "body", ["", "\n\n", SIGNATURE, "Sent from my iPhone", "APPROVE\n\n" + SIGNATURE]
)
def test_one_click_approval(body: str) -> None:
    answer = read_one_click(APPROVE_SUBJECT, body, None, signer=APPROVER)
    assert answer is not None and answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize(
    "body",
    [
        "Only once she has done her IG training",
        "Is this Jane from reception?",
        "REJECT she has left",
        "Sorry, wrong button. Do not approve.",
    ],
)
def test_one_click_approval_contradicted_by_its_body(body: str) -> None:
    answer = read_one_click(APPROVE_SUBJECT, body + "\n\n" + SIGNATURE, None)
    assert answer is not None and answer.verdict is Verdict.UNCLEAR, answer


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", None),
        ("Reason for rejecting (optional):\n\n", None),
        ("Reason for rejecting: ", None),
        ("Reason for rejecting (optional): she is a locum", "she is a locum"),
        (
            "Reason for rejecting (optional):\n\nShe left in January.\n\n" + SIGNATURE,
            "She left in January.",
        ),
        (
            "REJECT - I can't approve her, she left in January",
            "I can't approve her, she left in January",
        ),
        (SIGNATURE, None),
    ],
)
def test_one_click_rejection_and_its_reason(body: str, reason: str | None) -> None:
    answer = read_one_click(REJECT_SUBJECT, body, None)
    assert answer is not None and answer.verdict is Verdict.REJECT, answer
    assert answer.reason == reason


@pytest.mark.parametrize("body", ["Approve", "Sorry, I meant to approve", "Yes, go ahead"])
def test_one_click_rejection_contradicted_by_its_body(body: str) -> None:
    answer = read_one_click(REJECT_SUBJECT, f"Reason for rejecting (optional):\n{body}", None)
    assert answer is not None and answer.verdict is Verdict.UNCLEAR, answer


def test_one_click_reads_the_html_when_the_text_was_made_from_it() -> None:
    html = "<div>Reason for rejecting (optional): she left</div><div>Dr Patel</div>"
    answer = read_one_click(REJECT_SUBJECT, "made from the html", html, text_from_html=True)
    assert answer is not None and answer.reason == "she left"
    approve = read_one_click(APPROVE_SUBJECT, "", "<div>but not yet</div>")
    assert approve is not None and approve.verdict is Verdict.UNCLEAR


@pytest.mark.parametrize(
    ("note", "doubt"),
    [
        ("Hello,\n\nPlease find attached the PCN form for Jane Smith.\n\nThanks,\nChris\n", None),
        (
            "Hi,\n\nI approve the attached request from Coastal PCN, which has no PCN user admin "
            "at present, and submit it on the ICB's behalf.\n",
            None,
        ),
        ("I do NOT approve this. Please do not set her up.\n", "not … approve"),
        ("Please don\u2019t set her up yet.\n", "don't … set"),
        ("Only once her contract is signed, please.\n", "once"),
        ("Can you check this one with me first?\n", "?"),
        ("Please hold this one.\n", "hold"),
        ("I have concerns about this form.\n", "concerns"),
        (
            "Forwarding as asked.\n\n-----Original Message-----\n"
            "Is this genuine? Do not approve.\n",
            None,
        ),
    ],
)
def test_a_covering_note_is_read_for_doubt_in_its_own_words_only(
    note: str, doubt: str | None
) -> None:
    assert doubt_in_own_words(note) == doubt


# Said after an approval in words no list of doubts holds: each leaves it to a person.
SAID_AFTER_APPROVING = [
    "Please correct her email to jane.smith2@nhs.net",
    "Please change the role to PL.",
    "Just Jane please.",
    "Bob has gone to another practice",
    "Looks suspicious to me",
    "Could be fraud",
    "I think",
    "I guess so",
    "Please leave it for now, speaking to her Monday",
    "Hang fire on this one",
    "From 1 December please",
    "Is this the right practice",
    "She is on maternity leave",
    "TBC",
    "Partners still to agree",
    "Scratch that",
    "Revoke",
    "Nein",
    "\U0001f44e",
    "See my comments below",
    "Meant to click the other button",
]


@pytest.mark.parametrize("said", SAID_AFTER_APPROVING)
def test_an_approval_followed_by_anything_but_a_sign_off_is_unclear(said: str) -> None:
    answer = read_answer(f"Approved\n{said}\n\nThanks\nAnil\n\n{quoted()}")
    assert answer.verdict is Verdict.UNCLEAR, answer
    assert "says" in answer.explanation, answer


@pytest.mark.parametrize("said", [*SAID_AFTER_APPROVING, "Reason for rejecting: she has gone"])
def test_a_one_click_approval_with_anything_but_a_sign_off_is_unclear(said: str) -> None:
    answer = read_one_click(APPROVE_SUBJECT, f"{said}\n\nKind regards\nAnil Patel", None)
    assert answer is not None and answer.verdict is Verdict.UNCLEAR, answer


@pytest.mark.parametrize(
    "signed",
    [
        "Thanks\nAnil",
        "Many thanks,\n\nDr Anil Patel\nGP Partner | The Surgery\nT: 01632 960 123",
        "AP",
        "Anil",
        "\nDr Anil Patel\nGP Partner\nWorking days: Monday to Thursday",
        "Kind regards\nAnil\nSent from my iPhone",
        "\nHappy to confirm this. Thanks.\n\nAnil",
        "Anil\nSenior Partner\nThe Riverside Surgery, Leeds",
        "Dr Anil Patel\nClinical Director, Aire Valley PCN",
        "Dr Anil Patel MBBS MRCGP\nGP Partner",
        # A practice's signature as it is written: its address over several lines.
        "Anil\nPractice Manager\n12 High Street\nLeeds\nLS1 4AB",
        "Anil\nDay Lewis Pharmacy",
        "Anil\nSame Day Access Lead",
        "Anil\nSocial Prescribing Link Worker",
        "Anil\nHead of IT",
        "Anil\nRheolwr Practis | Practice Manager",
        "Anil\nCanolfan Iechyd T\u0177 Newydd | T\u0177 Newydd Health Centre",
        "Anil\nCaf\u00e9 Royal Medical Centre",
        "Anil Patel\nPractice Manager \u2013 Riverside Surgery",
        "Dr Anil Patel BSc (Hons) MBChB MRCGP\nGP Partner",
        "Diolch\nAnil",
        "Cofion cynnes\nAnil",
        "A Patel MB ChB DRCOG",
        "Anil Patel\nPractice Manager\nNHS West Yorkshire ICB",
    ],
)
def test_an_approval_with_a_sign_off_and_a_signature_is_read(signed: str) -> None:
    signer = Signer("Dr Anil Patel", "a.patel@nhs.net")
    answer = read_answer(f"Approved\n{signed}\n\n{quoted()}", signer=signer)
    assert answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize(
    "said",
    [
        "APPROVE \uff2e\uff2f\uff34 \uff2a\uff21\uff2e\uff25",  # fullwidth "NOT JANE"
        "Approved \u2013 \u043d\u0435\u043d\u0430\u0434\u043e",  # "don't" in Russian
        "Approved\nThanks\nAnil\n\uff2e\uff2f\uff34 Jane",
        "Approved\n\u0644\u0627\n\nThanks\nAnil",  # "no" in Arabic
    ],
)
def test_an_approval_with_words_in_letters_not_read_is_unclear(said: str) -> None:
    answer = read_answer(f"{said}\n\n{quoted()}", signer=APPROVER)
    assert answer.verdict is Verdict.UNCLEAR, answer


def test_the_letters_of_the_approver_s_own_name_are_theirs() -> None:
    for name, signed in (
        ("Si\u00e2n Jones", "Si\u00e2n"),
        ("No\u00e9mie Martin", "No\u00e9mie Martin"),
        ("Anna Smith-Jones", "Anna Smith-Jones"),
        ("Dr Zo\u00eb Fran\u00e7ois", "Zo\u00eb"),
        ("Pawe\u0142 Nowak", "Pawe\u0142 Nowak"),
        ("Dr Anja Wei\u00df", "Dr Wei\u00df"),
    ):
        signer = Signer(name, "approver@nhs.net")
        answer = read_answer(f"Approved\nThanks\n{signed}\n\n{quoted()}", signer=signer)
        assert answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize(
    "body",
    [
        "Kind regards\nAnil \u043d\u0435 \u0414\u0436\u0435\u0439\u043d",
        "Kind regards\nAnil\nGP Partner \u0644\u0627",
        "Thanks\nAnil\nN\u00d3T JANE",
    ],
)
def test_a_one_click_approval_with_words_in_letters_not_read_is_unclear(body: str) -> None:
    answer = read_one_click(APPROVE_SUBJECT, body, None, signer=APPROVER)
    assert answer is not None and answer.verdict is Verdict.UNCLEAR, answer


# Said after an approval and its closing, or passed off as one: each leaves it to a person.
PASSED_OFF_AS_A_CLOSING = [
    "Regards\nAnil\nPS remove Bob",
    "Regards\nAnil\nPS: swap Jane for Bob Jones",
    "Regards\nAnil\nRemove Bob Smith from the list too",
    "Regards\nAnil\nAdd Bob as well",
    "Regards\nAnil\nJane to start Monday, Bob removed",
    "Regards\nAnil\nDelete Bob Smith",
    "Regards\nAnil\nRevoke Bob",
    "Regards\nAnil\nFraud",
    "Regards\nAnil\nFake Request",
    "Regards\nAnil\nOn Leave Until March",
    "Regards\nAnil\nBob Smith also",
    "Remove Bob Smith",
    "Just Jane",
    "Hang Fire",
    "Confirmed. Remove Bob",
    "Bob Jones - Gone",
    "Bob Jones: Moved Practice",
    "\nJane Smith \u2713\nBob Jones \u2717",
    "- Jane Smith\n- Bob Jones (Remove)",
    "Anil\nJane = Admin, Bob = Removed",
    "Thanks Remove Bob",
    "Happy to confirm this. Thanks Remove Bob Smith",
    "Sent from my iPhone. Remove Bob from the list",
    "Direct Jane to reapply next month",
    "Phone me first",
    "Email: remove bob@example.org first",
    "Ring 07700 900123 first",
    "Anil\nRemove Bob from LS1 4AB",
    "Anil\nRemove Bob | Add Jane",
    "Thanks\nJo",  # not the approver's name
    # Capitalised, but no job title or organisation: what the approver adds.
    "Anil\nFrom 1 April",
    "Anil\nFor Three Months",
    "Anil\nBob Too",
    "Anil\nJane Retires Friday",
    "Anil\nEffective From 1 April",
    "Dr Anil Patel\nGP Partner\nFrom 1 April",
    "Dr Anil Patel MBBS Not Jane",
    "Anil\nJane Is A Locum",
    "Anil\nUse Bob As Practice Manager",
    "Anil\nBob Is The Practice Manager Now",
    "Anil\nNominee Unknown To Practice",
    "Anil\nFormer Practice Manager",
    "Anil\nGP Partner Wef 01/04/2027",
    "Anil\nPartner As Of 01/04/27",
    # Accented, the words of a comment are still not the approver's.
    "Anil\nGP Partner - N\u00d3T JANE",
    "Anil\nJANE L\u00c9FT PRACTICE",
    # Dotted, a postscript is still one.
    "Thanks\nAnil\nP.S. Keep Bob Hart",
    "Thanks\nAnil\nN.B. Trial Period",
]


@pytest.mark.parametrize("closing", PASSED_OFF_AS_A_CLOSING)
def test_what_is_passed_off_as_a_closing_is_unclear(closing: str) -> None:
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=APPROVER)
    assert answer.verdict is Verdict.UNCLEAR, answer
    one_click = read_one_click(APPROVE_SUBJECT, closing, None, signer=APPROVER)
    assert one_click is not None and one_click.verdict is Verdict.UNCLEAR, one_click


@pytest.mark.parametrize(
    "closing",
    [
        "Best regards,\nAnil",
        "Warm regards,\nAnil",
        "Yours sincerely,\nDr Anil Patel",
        "Thanks again,\nAnil",
        "KR\nAP",
        "Thanks, Anil",
        "Dr Anil Patel (he/him)\nGP Partner\nPronouns: he/him",
        "Anil\nWorking pattern: Mon\u2013Wed",
        "Kind regards\n\nAnil Patel\nGP Partner | The Surgery\n"
        "Tel: 0113 496 0000 | Mob: 07700 900123\n1 High Street, Leeds LS1 4AB",
        "PATEL, Anil (THE SURGERY)",
        "--\nDr A Patel\nGP Partner",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
    ],
)
def test_a_plain_closing_is_read(closing: str) -> None:
    answer = read_answer(f"Approved\n\n{closing}\n\n{quoted()}", signer=APPROVER)
    assert answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize("mark", ["\u00ad", "\u2060", "\u200e", "\u200f", "\u202e", "\u2066"])
def test_format_characters_inside_a_word_do_not_split_it(mark: str) -> None:
    answer = read_answer(f"Approved\nI don{mark}t know her\n\n{quoted()}")
    assert answer.verdict is Verdict.UNCLEAR, answer


@pytest.mark.parametrize(
    "note",
    [
        "",
        "Hi,\n\nPlease find attached the PCN form.\n\nKind regards\nGill Hart\n"
        "Primary Care Commissioning Manager\nNHS Humber and North Yorkshire ICB",
        "Please see attached.\n\nThanks\nGill",
        "Dear PCSE team,\n\nAttached.\n\nGill",
    ],
)
def test_a_plain_covering_note_says_nothing_more(note: str) -> None:
    assert note_says_more(note, Signer("Gill Hart", "gill.hart@nhs.net")) is None


@pytest.mark.parametrize(
    "note",
    [
        "Sent in error",
        "Forwarding as requested. I don't know these people.",
        "Please set up Jane only after she starts on 1 May",
        "I haven't checked it",
        "Sending on behalf of the PCN for PCSE to verify",
        "Please only add Tariq; Emma is not ready",
        "Please find attached, but only for Tariq.",
        "Hi,\n\nPlease find attached the form.\nJust Tariq for now please.\n\nGill",
        "I approve the attached request from Coastal PCN, which has no PCN user admin.",
        "Hi,\nPlease find attached.\nThanks\nGill\nPS please do not process until Monday",
        "Please find attached.\n\nKind regards\nGill\n\nP.S. Bob Smith has left the PCN.",
        "Hello PCSE please remove Bob Smith too",
        "Hi team please only set up Jane Smith",
        "Dear PCSE - Jane Smith replaces Bob Jones.",
        "Please find attached the form, sent in error.",
        "Please find attached the draft PCN form for comment.",
        "Here is the form for your records.",
        "Please find attached the form.\nRemove Bob Smith\nThanks",
        "On hold until Jane's DBS clears - please do not set her up yet.\n"
        "On Mon, 2 Mar 2026 at 09:00, Tariq Khan <t.khan@nhs.net> wrote:\n> PCN form attached",
    ],
)
def test_a_covering_note_that_says_more_is_caught(note: str) -> None:
    assert note_says_more(note, Signer("Gill Hart", "gill.hart@nhs.net")) is not None


@pytest.mark.parametrize("subject", ["PCN form - DRAFT", "PCN form, do not action yet"])
def test_a_subject_that_doubts_the_form_is_caught(subject: str) -> None:
    assert doubt_in_own_words(subject) is not None


NAMING = Signer("Dr Anil Patel", "a.patel@nhs.net", others=frozenset({"jane", "smith"}))


@pytest.mark.parametrize(
    ("closing", "without_the_names"),
    [
        ("Thanks\nAnil\nJane Quit", Verdict.UNCLEAR),  # names no post: unclear anyway
        ("Thanks\nAnil\nGP Partner\nSmith Quit", Verdict.UNCLEAR),
        ("Thanks\nAnil\nJane Smith Locum", Verdict.APPROVE),  # reads as a title
        ("Thanks\nAnil\nJane Locum", Verdict.APPROVE),
        ("Thanks\nAnil\nJane's Line Manager", Verdict.APPROVE),
    ],
)
def test_an_approval_that_names_a_nominee_besides_is_unclear(
    closing: str, without_the_names: Verdict
) -> None:
    """With the nominees' names, a comment about one: a word of a nominee's name is a
    place's only in a part that ends in a word of an organisation or an address, never a
    post's."""
    premise = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=APPROVER).verdict
    assert premise is without_the_names
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=NAMING)
    assert answer.verdict is Verdict.UNCLEAR, answer
    one_click = read_one_click(APPROVE_SUBJECT, f"{closing}", None, signer=NAMING)
    assert one_click is not None and one_click.verdict is Verdict.UNCLEAR, one_click


@pytest.mark.parametrize(
    "closing",
    [
        "Best wishes\nAnil",
        "Thanks\nAnil\nThe Smith Surgery\nSmith Road, Leeds LS6 2AB",
        "Thanks\nAnil\nClinical Director, Jane Street PCN",
        "Thanks\nAnil\nGP Partner\nMonday, Tuesday & Thursday",
        "Thanks\nAnil\nGP Partner (Monday - Wednesday)",
        "Thanks\nAnil\nWorking days: Mon-Thu 8am - 2pm",
        "Thanks\nAnil\nGP Partner\nThe Surgery, Stoke-on-Trent",
        "Thanks\nAnil\nWeston-super-Mare PCN\n1 High Street, Weston-super-Mare BS23 1AA",
        "Thanks\nAnil\nNewcastle upon Tyne",
        "Thanks\nAnil\nLong Term Conditions Lead",
        "Thanks\nAnil\nClinical Lead for Long-Term Conditions",
        "Thanks\nAnil\nKingston upon Hull\nStratford-upon-Avon",
        "Thanks\nAnil\nTel: 0113 496 0000 (Mon-Thu)",
        "Diolch / Thanks\nAnil",
        "Thanks / Anil",
    ],
)
def test_a_signature_naming_places_and_days_is_read(closing: str) -> None:
    signer = Signer("Dr Anil Patel", "a.patel@nhs.net", others=frozenset({"best", "smith", "jane"}))
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=signer)
    assert answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize(
    "closing",
    [
        "Regards\nAnil\nHours: she is a locum for three months",
        "Regards\nAnil\nPronouns: he/him. gpp role for the new starter as well",
        "Thanks\nAnil\nSuspicious Request",
        "Thanks\nAnil\nLocum Contract Ends 31 March",
        "Regards\nAnil\nWorking days: all week",  # no day or time: not a rota
        "Thanks\nAnil\nStoke-on-Trent Only",
        "Thanks\nAnil\nDependent upon References",
        "Thanks\nAnil\nLong Term Conditions Apply",
        "Thanks\nAnil\nLong term conditions",
        "Long Term Conditions Lead\nThanks\nAnil",  # before the signature: said, not signed
        "Thanks\nAnil\nTel: 0113 496 0000 (Mon-Thu only)",
        "Thanks\nAnil\nTel: 0113 496 0000 (from Monday)",
        "Diolch / Not Jane\nAnil",
        "Thanks / Hold\nAnil",
        "Thanks / Anil / Wait",
        # Hyphens and "upon" hide nothing: only listed places' names are joined.
        "Thanks\nAnil\nDependent-on-References",
        "Thanks\nAnil\nStarts-on-Monday",
        "Thanks\nAnil\nLocum-on-Probation",
        "Thanks\nAnil\nAwaiting-the-DBS",
        "Thanks\nAnil (Starts-on-Monday)",
        "Thanks\nAnil\nAccess upon Completion of Training",
        "Thanks\nAnil\nShe Starts upon Her Return LS1 1AA",
        # The team's name is read as one only as a whole line.
        "Thanks\nAnil\nGP Partner\nAccess Limited To Long Term Conditions",
        "Thanks\nAnil\nLong Term Conditions Lead To Approve",
        "Thanks\nAnil\nLong Term Conditions\nApply",
    ],
)
def test_a_comment_under_a_label_or_in_capitals_is_unclear(closing: str) -> None:
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=APPROVER)
    assert answer.verdict is Verdict.UNCLEAR, answer


# The request names Bob Jones.
NAMING_BOB = Signer("Dr Anil Patel", "a.patel@nhs.net", others=frozenset({"bob", "jones"}))
# A word of a nominee's name beside a post speaks of them, whatever words join it
# ("Practice" is a post's word in "Practice Manager"): read with NAMING_BOB.
SPEAKING_OF_BOB = (
    *(
        f"Thanks\nAnil\nGP Partner\n{joined} Bob Practice Manager"
        for joined in (
            "With",
            "Along With",
            "Together With",
            "Besides",
            "Alongside",
            "Minus",
            "Bar",
            "Less",
            "Other Than",
            "Save",
            "Barring",
            "Keep",
            "Retain",
            "Outgoing",
            "Remains",
            "Stays",
            "Vice",
            "For",
            "Covering For",
            "Cc",
            "Attn",
        )
    ),
    "Thanks\nAnil\nGP Partner\nBob Stays Practice Manager",
    "Thanks\nAnil\nGP Partner\nBob Practice Manager",
    "Thanks\nAnil\nGP Partner\nBob Practice Manager, Leeds LS1 4AB",
    "Thanks\nAnil\nGP Partner\nThe Surgery, Bob Practice Manager",
)


@pytest.mark.parametrize(
    "closing",
    [
        # Capitalised words that name no post, organisation or address are a statement.
        "Thanks\nAnil\nGP Partner\nJane Smith Excluded",
        "Thanks\nAnil\nGP Partner\nStruck Off",
        "Thanks\nAnil\nGP Partner\nNull And Void",
        "Thanks\nAnil\nGP Partner\nOn Behalf Of Dr Smith",
        "Thanks\nAnil\nGP Partner\nTyped By Reception",
        # A word of an instruction in any of its forms.
        "Thanks\nAnil\nGP Partner\nBob Removed",
        "Thanks\nAnil\nThe Surgery Practice Manager Cancelled",
        "Thanks\nAnil\nGP Partner Excluding Jane",
        "Thanks\nAnil\nGP Partner\nRequest Stopped",
        # Words that void or recall the message, or say someone else wrote it.
        "Thanks\nAnil\nGP Partner\nRescinded",
        "Thanks\nAnil\nGP Partner\nVoid",
        "Thanks\nAnil\nGP Partner\nHacked",
        "Thanks\nAnil\nGP Partner\nRecalled",
        "Thanks\nAnil\nGP Partner\nPending DBS Check",
        "Thanks\nAnil\nSecretary To Dr Patel",
        "Thanks\nAnil\nPP Practice Manager",
        # A word of a post earlier in the line does not make a statement a title: the line
        # ends in what it names.
        "Thanks\nAnil\nGP Partner\nPartner Dislikes Jane",
        "Thanks\nAnil\nGP Partner\nPartner, Dislikes, Jane",
        "Thanks\nAnil\nGP Partner\nSecond Partner Approval Required",
        "Thanks\nAnil\nGP Partner\nPractice Role For A Trial Period",
        "Thanks\nAnil\nGP Partner\nLocum Cover Through March",
        "Thanks\nAnil\nGP Partner\nPartner Support Withheld",
        "Thanks\nAnil\nGP Partner\nJane Under Practice Investigation",
        "Thanks\nAnil\nGP Partner\nSuspend Bob Practice Access",
        "Thanks\nAnil\nGP Partner\nInclude Bob Jones Practice Nurse",
        "Thanks\nAnil\nGP Partner\nPractice Manager For Dr Patel",
        "Thanks\nAnil\nGP Partner\nWritten By Practice Manager",
        "Thanks\nAnil\nGP Partner\nRheolwr Practis Ar Ran Dr Patel",
        "Thanks\nAnil\nGP Partner\nValid 3 Mths",
        "Thanks\nAnil\nGP Partner\nWithdrawing",
        "Thanks\nAnil\nGP Partner\nReluctantly",
        "Thanks\nAnil (Reluctantly)",
        # A postcode carries no statement.
        "Thanks\nAnil\nGP Partner\nJane Smith Is A Locum LS1 4AP",
        "Thanks\nAnil\nGP Partner\nPartner Distrusts Jane LS1 4AP",
        "Thanks\nAnil\nGP Partner\nRevert Jane Smith LS1 4AP",
        "Thanks\nAnil\nGP Partner\nMake Bob Jones Admin LS1 4AP",
        # Words of undoing and doubt, as nouns and adjectives too, and in Welsh.
        "Thanks\nAnil\nGP Partner\nDisapproved",
        "Thanks\nAnil\nGP Partner\nRevocation",
        "Thanks\nAnil\nGP Partner, Unconvinced",
        "Thanks\nAnil (Misclicked)",
        "Thanks\nAnil\nSceptical GP Partner",
        "Thanks\nAnil\nNeeds Second Partner",
        "Thanks\nAnil\nMeddyg Teulu Ddim Yn Cytuno",
        "Thanks\nAnil\nRheolwr Practis Yn Gwrthod",
        # A word standing alone must be one a list knows: a post, a place, a chain's name.
        "Thanks\nAnil\nGP Partner\nRegretfully",
        "Thanks\nAnil\nGP Partner\nTypo",
        "Thanks\nAnil\nGP Partner\nBogus",
        "Thanks\nAnil\nGP Partner\nPrematurely",
        "Thanks\nAnil (Tentatively)",
        # An address in a contact line carries no instruction.
        "Thanks\nAnil\nGP Partner\nWeb: https://www.example.nhs.uk/please-also-remove-bob",
        "Thanks\nAnil\nGP Partner\nE: please.also.add.bob@nhs.net",
        # "Drs" names a practice only before its partners' names.
        "Thanks\nAnil\nDrs Disapprove",
        "Thanks\nAnil\nDrs Prefer Bob Jones",
        "Thanks\nAnil\nGP Partner\nBob Jones Drs",
        "Thanks\nAnil\nGP Partner\nDrs",
        # The names after "Drs" must read as surnames, not a vote, a mood or an adverb.
        "Thanks\nAnil\nDrs Against, Unanimously",
        "Thanks\nAnil\nDrs Unanimous, Against",
        "Thanks\nAnil\nDrs Patel and Unhappy",
        "Thanks\nAnil\nDrs Patel & Shah Against",
        "Thanks\nAnil\nDrs Majority, Against",
        "Thanks\nAnil\nDrs Patel, Shah and Neither",
        "Thanks\nAnil\nDrs Both & Agreed",
        "Thanks\nAnil\nDrs Patel & Reluctantly",
        "Thanks\nAnil\nDrs Patel & Definitely",
        "Thanks\nAnil\nDrs Patel & Formally",
        "Thanks\nAnil\nDrs Patel & Not",
        "Thanks\nAnil\nDrs Patel & Tomorrow",
        # A line joined to what came before adds to the answer.
        "Thanks\nAnil\nGP Partner\nAnd Bob Practice Manager",
        "Thanks\nAnil\nGP Partner\n& Bob Practice Manager",
        "Thanks\nAnil\nGP Partner\nPlus Bob Jones Receptionist",
        "Thanks\nAnil\nGP Partner\nAlso Bob Jones, Practice Manager",
        "Thanks\nAnil\nGP Partner\nOr Bob Jones Practice Manager",
        "Thanks\nAnil\nGP Partner\nBut Bob Jones Practice Manager",
        "Thanks\nAnil\nGP Partner\nAnd Bob, 1 High Street, Leeds LS1 4AB",
        *SPEAKING_OF_BOB,
    ],
)
def test_a_signature_line_that_names_no_post_or_voids_the_answer_is_unclear(
    closing: str,
) -> None:
    signer = NAMING_BOB if closing in SPEAKING_OF_BOB else APPROVER
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=signer)
    assert answer.verdict is Verdict.UNCLEAR, answer


@pytest.mark.parametrize(
    "closing",
    [
        "Thanks\nAnil\nGP Partner\nBob Lane Surgery",
        "Thanks\nAnil\nPractice Manager, Bob Lane Surgery",
        "Thanks\nAnil\nGP Partner\nBob Lane Surgery, Leeds LS1 4AB",
        "Thanks\nAnil\nGP Partner\n12 Bob Road, Leeds LS1 4AB",
        "Thanks\nAnil\nGP Partner\n12 Bob Road LS1 4AB",
        "Thanks\nAnil\nGP Partner\nBob Road Surgery (Monday - Wednesday)",
        "Thanks\nAnil\nClinical Director, Jones Street PCN",
        "Thanks\nAnil\nGP Partner\nThe Jones Practice",
    ],
)
def test_a_place_that_holds_a_word_of_a_nominee_s_name_is_a_place(closing: str) -> None:
    """A nominee's word in a part that ends in an organisation's or an address's word."""
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=NAMING_BOB)
    assert answer.verdict is Verdict.APPROVE, answer


@pytest.mark.parametrize(
    "closing",
    [
        "Thanks\nAnil\nGP Partner\nThe Riverside Surgery\n12 High Street\nLeeds\nLS1 4AB",
        "Thanks\nAnil\nOptometrist\nSpecsavers",
        "Thanks\nAnil\nCompany Director\nClearview Opticians Ltd",
        "Thanks\nAnil\nKirklees Council",
        "Thanks\nAnil\nSocial Prescribing Link Worker",
        "Thanks\nAnil\nRheolwr Practis | Practice Manager",
        "Regards\nAnil\nDr Anil Patel | GP Partner | Moorside Practice",
        "Thanks\nAnil\nInterim Practice Manager",
        "Thanks\nAnil\nMedical Typist",
        "Thanks\nAnil\nRecall Coordinator",
        "Thanks\nAnil\nNotes Summariser",
        "Thanks\nAnil\nDrs Patel & Shah",
        "Thanks\nAnil\nGP Partner\nHebden Bridge",
        "Thanks\nAnil\nUwch Bartner\nMeddygfa'r Stryd Fawr",
        "Thanks\nAnil\nLlywodraeth Cymru / Welsh Government",
        "Thanks\nAnil\nNHS England \u2013 North East and Yorkshire",
        "Thanks\nAnil\nPractice Manager\nRiverside Road, Milton Keynes MK9 3AB",
        "Thanks\nAnil\nPractice Manager\nCowgate, Great Horton, Bradford BD7 4DR",
        "Thanks\nAnil\nPatient Services Team Leader",
        "Thanks\nAnil\nCaldicott Guardian & SIRO",
        "Thanks\nAnil\nLocal Medical Committee",
        "Thanks\nAnil\nDrs Patel, Shah and Jones",
        "Thanks\nAnil\nDrs Patel & Partners",
        "Thanks\nAnil\nDrs. Patel and Partners",
        "Thanks\nAnil\nDrs Patel, Shah & Partners",
        "Thanks\nAnil\nDrs Daly, McNally and Connolly",  # "-ly" surnames, no adverbs
        "Thanks\nAnil\nDrs Reilly & Kelly",
        "Thanks\nAnil\nDrs Smith-Jones & Shah",
        "Thanks\nAnil\nWeb: www.riversidesurgery.nhs.uk | E: reception.a81001@nhs.net",
        "Thanks\nAnil\nPharmacist\nBoots",
        "Thanks\nAnil\nOptometrist\nBoots Opticians, Briggate",
        "Thanks\nAnil\nPractice Manager\nParkside Surgery, Nottingham",
        "Thanks\nAnil\nSIRO",
        "Thanks\nAnil\nGP Partner\nLeeds",
    ],
)
def test_a_signature_of_posts_places_and_firms_is_read(closing: str) -> None:
    answer = read_answer(f"Approved\n{closing}\n\n{quoted()}", signer=APPROVER)
    assert answer.verdict is Verdict.APPROVE, answer


def test_a_word_of_the_approver_s_own_name_is_theirs_though_a_nominee_shares_it() -> None:
    signer = Signer("Jane Patel", "j.patel@nhs.net", others=frozenset({"jane", "smith"}))
    answer = read_answer(f"Approved\nThanks\nJane\n\n{quoted()}", signer=signer)
    assert answer.verdict is Verdict.APPROVE, answer
    answer = read_answer(f"Approved\nThanks\nAnil\n\n{quoted()}", signer=NAMING)
    assert answer.verdict is Verdict.APPROVE, answer
