"""An approval with words written inside the quoted request goes to a person.

"APPROVE" at the top, and "NO - not Jane, she left the practice last month" beside Jane's
line in the quote, is not an approval anyone would act on. The quote's lines must each be
a run of the words of an email we sent; its header (From, Sent, To, Subject, "On … wrote:")
is passed over.
"""

from __future__ import annotations

import textwrap
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from core.db import Database
from notifications.models import OutboxMessage
from service.config import Config
from tests.test_workflow_helpers import OUR, TRUSTED
from tests.test_workflow_mail import (
    MANAGER,
    PARTNER,
    arrive,
    email,
    mail_config,
    mail_world,
    sent,
    the_case,
)
from workflow import directory
from workflow.env import WorkflowEnv
from workflow.quoted_words import as_text, reply_lines, words_not_ours

OBJECTION = "NO - not Jane, she left the practice last month. Do not set her up."
GMAIL_HEADER = f"On Mon, 2 Mar 2026 at 09:00, PCSE Online user management <{OUR}> wrote:"


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def asked(db: Database, config: Config, env: WorkflowEnv) -> OutboxMessage:
    arrive(db, config, env, email(MANAGER, "GPP form", "Form attached.", pdf="gpp-acroform.pdf"))
    (request,) = sent(db, "approval_request")
    return request


def reply_to(
    request: OutboxMessage, text: str, *, subject: str | None = None, html: str | None = None
) -> bytes:
    """The approver's reply to `request`."""
    return email(
        PARTNER,
        subject or f"RE: {request.subject}",
        text,
        html=html,
        in_reply_to=request.message_id,
    )


def state_after(db: Database, config: Config, env: WorkflowEnv, message: bytes) -> str:
    """The case's state once `message` has arrived."""
    arrive(db, config, env, message)
    return the_case(db, MANAGER[1]).state


def gmail_plain(request: OutboxMessage, *, objection: bool, width: int = 70) -> str:
    """Gmail's plain text: the quote rewrapped and marked "> "."""
    lines = [
        wrapped
        for line in request.body_text.splitlines()
        for wrapped in (
            textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
        )
    ]
    at = next(i for i, line in enumerate(lines) if "jane.smith@nhs.net" in line.lower())
    quoted = [f"> {line}" for line in lines]
    if objection:
        quoted.insert(at + 1, OBJECTION)
    return "APPROVE\n\nAnil\n\n" + GMAIL_HEADER + "\n" + "\n".join(quoted)


def outlook_plain(request: OutboxMessage, *, objection: bool) -> str:
    """Outlook's plain text: a rule, the original's header, the original unmarked."""
    lines = request.body_text.splitlines()
    if objection:
        at = next(i for i, line in enumerate(lines) if "jane.smith@nhs.net" in line.lower())
        lines[at] += "   <<< " + OBJECTION
    return (
        "Approved\n\nDr Anil Patel\nGP Partner\n\n________________________________\n"
        f"From: PCSE Online user management <{OUR}>\nSent: Monday, March 2, 2026 9:00 AM\n"
        f"To: {PARTNER[0]} <{PARTNER[1]}>\nSubject: {request.subject}\n\n" + "\n".join(lines)
    )


def outlook_html(request: OutboxMessage, *, objection: bool) -> bytes:
    """Outlook's HTML reply: the original's HTML below its marker, a comment in red."""
    body = request.body_html or ""
    if objection:
        body = body.replace(
            "jane.smith@nhs.net", f'jane.smith@nhs.net <span style="color:red">{OBJECTION}</span>'
        )
    return outlook_html_with(request, body)


def admins(db: Database) -> list[str]:
    with db.transaction() as session:
        return [p.email for p in directory.admins(session, "A81001", "gpp")]


@pytest.mark.parametrize("style", ["gmail", "outlook", "outlook_html"])
@pytest.mark.parametrize("objection", [False, True])
def test_an_approval_is_read_by_a_person_when_the_quote_holds_words_of_theirs(
    style: str, objection: bool, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    subject = f"RE: {request.subject}"
    if style == "outlook_html":
        reply = outlook_html(request, objection=objection)
    else:
        text = (gmail_plain if style == "gmail" else outlook_plain)(request, objection=objection)
        reply = reply_to(request, text, subject=subject)
    arrive(db, config, env, reply)
    case = the_case(db, MANAGER[1])
    if objection:
        assert case.state == "triage"
        assert "writes inside the quoted request" in (case.reason or "")
        assert admins(db) == []
    else:
        assert case.state == "completed", case.reason
        assert admins(db) == ["jane.smith@nhs.net"]


def test_a_word_added_to_a_quoted_line_is_found(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    ours = as_text(request.subject, request.body_text, request.body_html)
    clean = gmail_plain(request, objection=False, width=50)
    (lines,) = reply_lines(clean, None, text_from_html=False)
    assert words_not_ours(lines, ours, own="APPROVE\n\nAnil", subjects=[request.subject]) == []
    edited = clean.replace("jane.smith@nhs.net", "jane.smith@nhs.net NOT HER", 1)
    (lines,) = reply_lines(edited, None, text_from_html=False)
    found = words_not_ours(lines, ours, own="APPROVE\n\nAnil", subjects=[request.subject])
    assert len(found) == 1 and "NOT HER" in found[0]


def test_an_html_part_that_says_more_than_the_plain_text_goes_to_a_person(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Mail clients show the HTML: "APPROVE" in the plain text beside "APPROVE, but not
    Jane" in the HTML is not an approval."""
    request = asked(db, config, env)
    text = (
        "APPROVE\n\n"
        + GMAIL_HEADER
        + "\n"
        + "".join(f"> {line}\n" for line in request.body_text.splitlines())
    )
    html = "<div>APPROVE</div><div>but not Jane, she has left</div>"
    assert state_after(db, config, env, reply_to(request, text, html=html)) == "triage"
    assert admins(db) == []


def gmail_with(request: OutboxMessage, line: str, *, below: str = "jane.smith@nhs.net") -> str:
    lines = request.body_text.splitlines()
    at = next(i for i, text in enumerate(lines) if below in text.lower())
    quoted = [f"> {text}" for text in lines]
    quoted.insert(at + 1, f"> {line}")
    return "APPROVE\n\nAnil\n\n" + GMAIL_HEADER + "\n" + "\n".join(quoted)


@pytest.mark.parametrize(
    "line",
    [
        "REJECT",
        "NOT",
        "Do not",
        "REJECT she left the practice",  # words our own instructions spell, elsewhere
        "She left the practice in May",
        "Really?",
        "Jane Smith???",
        "N/A - left",
    ],
)
def test_words_of_ours_written_where_we_did_not_write_them_are_the_approvers(
    line: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_with(request, line)
    assert state_after(db, config, env, reply_to(request, text)) == "triage"
    assert admins(db) == []


def test_an_objection_below_the_whole_quote_is_the_approvers(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_plain(request, objection=False) + "\n\nActually no, not Jane.\n"
    assert state_after(db, config, env, reply_to(request, text)) == "triage"


def test_a_nominee_struck_through_in_an_html_quote_is_the_approvers(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    body = request.body_html or ""
    assert "jane.smith@nhs.net" in body  # the premise
    struck = body.replace("jane.smith@nhs.net", "<s>jane.smith@nhs.net</s>")
    arrive(db, config, env, outlook_html_with(request, struck))
    assert the_case(db, MANAGER[1]).state == "triage"


def outlook_html_with(request: OutboxMessage, body: str, *, before: str = "") -> bytes:
    html = (
        '<html><body><div>APPROVE</div><div id="appendonsend"></div><hr>'
        f'<div id="divRplyFwdMsg"><b>From:</b> PCSE Online user management &lt;{OUR}&gt;<br>'
        f"<b>Sent:</b> Monday, March 2, 2026 9:00 AM<br><b>To:</b> PATEL, Anil (RIVERSIDE "
        f"SURGERY - A81001) &lt;{PARTNER[1]}&gt;<br><b>Subject:</b> [EXTERNAL] "
        f"{request.subject}</div>{before}{body}</body></html>"
    )
    msg = EmailMessage()
    msg["Authentication-Results"] = f"{TRUSTED}; dmarc=pass header.from=nhs.net"
    msg["From"] = f"{PARTNER[0]} <{PARTNER[1]}>"
    msg["To"] = OUR
    msg["Subject"] = f"RE: {request.subject}"
    msg["Message-ID"] = make_msgid(domain="nhs.net")
    msg["In-Reply-To"] = request.message_id
    msg.set_content(html, subtype="html")
    return bytes(msg)


FIRST_CONTACT = (
    "<table><tr><td><div>You don't often get email from pcse.portalenquiries@nhs.net. "
    '<a href="https://aka.ms/LearnAboutSenderIdentification">Learn why this is important</a>'
    "</div></td></tr></table>"
)
CAUTION = "<p>CAUTION: This email originated from outside of the organisation.</p>"
DISCLAIMER = (
    "This email and any files transmitted with it are confidential and intended solely for "
    "the addressee."
)


@pytest.mark.parametrize("before", ["", FIRST_CONTACT, CAUTION])
def test_what_mail_systems_add_to_a_quote_is_passed_over(
    before: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Directory names and [EXTERNAL] in the quote's header, banners on what was delivered."""
    request = asked(db, config, env)
    arrive(db, config, env, outlook_html_with(request, request.body_html or "", before=before))
    assert the_case(db, MANAGER[1]).state == "completed", the_case(db, MANAGER[1]).reason


def test_a_disclaimer_the_approvers_server_adds_is_passed_over(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_plain(request, objection=False) + "\n\n" + DISCLAIMER + "\n"
    state = state_after(db, config, env, reply_to(request, text))
    assert state == "completed", the_case(db, MANAGER[1]).reason


@pytest.mark.parametrize(
    "line",
    [
        "To: be clear, NOT Jane - she left the practice last month",
        "Date: Jane left on 1 May, do not set her up",
        "WARNING: this is outside our policy - do not set Jane up, she has left",
        "Caution - Jane is an external locum now, NOT one of ours",
        "On reflection do not set up Jane, she has left - see what Mo wrote:",
        "\u274c",
    ],
)
def test_an_objection_shaped_like_a_header_or_a_banner_is_the_approvers(
    line: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Headers and banners are passed over only between the approver's words and ours."""
    request = asked(db, config, env)
    text = gmail_with(request, line)
    assert state_after(db, config, env, reply_to(request, text)) == "triage"


@pytest.mark.parametrize("edit", ["address", "deleted", "css"])
def test_a_nominee_changed_or_taken_out_of_the_quote_is_the_approvers(
    edit: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    body = request.body_html or ""
    if edit == "address":
        text = gmail_plain(request, objection=False).replace(
            "jane.smith@nhs.net", "jane.smith7@nhs.net"
        )
        reply = reply_to(request, text)
    elif edit == "deleted":
        kept = [line for line in gmail_plain(request, objection=False).splitlines()]
        text = "\n".join(line for line in kept if "jane.smith@nhs.net" not in line.lower())
        reply = reply_to(request, text)
    else:
        struck = body.replace(
            "jane.smith@nhs.net",
            '<span style="text-decoration:line-through">jane.smith@nhs.net</span>',
        )
        reply = outlook_html_with(request, struck)
    arrive(db, config, env, reply)
    assert the_case(db, MANAGER[1]).state == "triage"


def test_an_objection_in_the_subject_is_the_approvers(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_plain(request, objection=False)
    subject = f"RE: {request.subject} - NOT Jane, she has left"
    assert state_after(db, config, env, reply_to(request, text, subject=subject)) == "triage"


@pytest.mark.parametrize(
    ("tagged", "state"),
    [
        ("RE: [NOT until 1 April] {subject}", "triage"),
        ("[Jane has left] RE: {subject}", "triage"),
        ("RE: {subject} [no]", "triage"),
        # Only a mail gateway's own tags are set aside.
        ("[SECURE] RE: {subject}", "completed"),
        ("[External Sender - Proceed with Caution] RE: {subject}", "completed"),
        ("RE: {subject} [OFFICIAL-SENSITIVE: PERSONAL]", "completed"),
        ("RE: [WARNING: External email] {subject}", "completed"),
        ("RE: {subject} [Use Personal Email]", "triage"),
        # A gateway's doubt about the reply is a person's to weigh.
        ("RE: {subject} [Suspected SPAM]", "triage"),
        ("RE[2]: {subject}", "completed"),
    ],
)
def test_words_in_brackets_in_the_subject_are_the_approvers_but_a_gateway_s_tags(
    tagged: str, state: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_plain(request, objection=False)
    subject = tagged.format(subject=request.subject)
    assert state_after(db, config, env, reply_to(request, text, subject=subject)) == state


def test_a_short_closing_that_opens_like_a_disclaimer_is_the_approvers(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    text = gmail_plain(request, objection=False) + (
        "\n\nThis message is for the intended recipient: not Jane, she left.\n"
    )
    assert state_after(db, config, env, reply_to(request, text)) == "triage"


WRAPPED_ATTRIBUTION = "On Mon, 2 Mar 2026 at 09:00, PCSE Online user management\n<{our}> wrote:"


@pytest.mark.parametrize(
    "banner",
    [
        "[External Email]",
        "CAUTION: This email originated from outside of the organisation.\n"
        "Do not click links or open attachments unless you recognise the sender.",
        "This email originated from outside your organisation.",
        "[You don\u2019t often get email from pcse.portalenquiries@nhs.net. Learn why this is "
        "important at\nhttps://aka.ms/LearnAboutSenderIdentification ]",
    ],
)
def test_plain_text_banners_and_a_wrapped_attribution_are_passed_over(
    banner: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    quoted = "".join(
        f"> {line}\n" for line in [*banner.splitlines(), "", *request.body_text.splitlines()]
    )
    text = "APPROVE\n\nAnil\n\n" + WRAPPED_ATTRIBUTION.format(our=OUR) + "\n" + quoted
    state = state_after(db, config, env, reply_to(request, text))
    assert state == "completed", the_case(db, MANAGER[1]).reason


NHSMAIL_FOOTER = (
    "*" * 68 + "\n\nThis message may contain confidential information. If you are not the "
    "intended recipient please inform the\nsender that you have received the message in error "
    "before deleting it.\nPlease do not disclose, copy or distribute information in this "
    "e-mail or take any action in relation to its contents.\n\nNHSmail is the secure email "
    "and directory service available for all NHS staff in England.\n\nFor more information "
    "and to find out how you can switch, https://portal.nhs.net/help/joiningnhsmail\n\n" + "*" * 68
)


@pytest.mark.parametrize(
    "shape", ["footers", "cut", "forwarded", "bold_header", "tagged_subject", "signature"]
)
def test_ordinary_replies_still_approve(
    shape: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    subject = f"RE: {request.subject}"
    text = gmail_plain(request, objection=False)
    if shape == "footers":
        text = outlook_plain(request, objection=False) + "\n\n" + NHSMAIL_FOOTER * 2
    elif shape == "cut":
        text = "\n".join(text.splitlines()[:20]) + "\n> [Message clipped]  View entire message"
    elif shape == "forwarded":
        text = outlook_plain(request, objection=False).replace(
            "________________________________\n",
            "________________________________\nFrom: Practice Manager <pm@riverside.nhs.net>\n"
            "Sent: 03 March 2026 10:00\nTo: Anil Patel <anil.patel@nhs.net>\n"
            f"Subject: FW: {request.subject}\n\n",
        )
    elif shape == "bold_header":
        text = text.replace(
            GMAIL_HEADER,
            f"{GMAIL_HEADER}\n>\n> *From:* PCSE Online user management <{OUR}>\n"
            f"> *Sent:* 02 March 2026 09:00\n> *Subject:* {request.subject}\n>",
        )
    elif shape == "tagged_subject":
        subject = f"[EXT] RE: {request.subject} [EXTERNAL]"
    else:
        text = text.replace(
            "APPROVE\n\nAnil\n\n",
            "APPROVE\n\nAnil Patel\nGP Partner\n[cid:image001.png@01D9A1B2.C3D4E5F0]\n\n",
        )
    state = state_after(db, config, env, reply_to(request, text, subject=subject))
    assert state == "completed", the_case(db, MANAGER[1]).reason


@pytest.mark.parametrize("where", ["cc", "to"])
def test_an_objection_written_as_a_header_value_is_the_approvers(
    where: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    objection = "NOT Jane Smith - she left the practice last month, do not set her up"
    text = outlook_plain(request, objection=False).replace(
        f"To: {PARTNER[0]} <{PARTNER[1]}>\n",
        f"To: {PARTNER[0]} <{PARTNER[1]}>\nCc: {objection}\n"
        if where == "cc"
        else f"To: {objection}\n",
    )
    assert state_after(db, config, env, reply_to(request, text)) == "triage"


def test_an_approval_with_a_document_attached_goes_to_a_person(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    reply = EmailMessage()
    reply["Authentication-Results"] = f"{TRUSTED}; dmarc=pass header.from=nhs.net"
    reply["From"] = f"{PARTNER[0]} <{PARTNER[1]}>"
    reply["To"] = OUR
    reply["Subject"] = f"RE: {request.subject}"
    reply["Message-ID"] = make_msgid(domain="nhs.net")
    reply["In-Reply-To"] = request.message_id
    reply.set_content(gmail_plain(request, objection=False))
    reply.add_attachment(
        b"Not Jane: she left.", maintype="text", subtype="plain", filename="note.txt"
    )
    arrive(db, config, env, bytes(reply))
    case = the_case(db, MANAGER[1])
    assert case.state == "triage" and "note.txt" in (case.reason or "")


@pytest.mark.parametrize(
    "head",
    [
        # The approver's own line opening "On", with a time (and an address), just above an
        # attribution of the author alone: it is theirs, not the attribution's.
        "APPROVE\nOn Friday at 10:30 tell bob@riverside.nhs.uk she must NOT have access\n"
        "PCSE Online user management wrote:\n",
        "APPROVE\nOn leave from 10:30 tomorrow - do not add her until I am back\n"
        "PCSE Online user management <{our}> wrote:\n",
        "APPROVE\nOn Monday 9.00 REJECT instead if jane has no DBS\n"
        "PCSE Online user management <{our}> wrote:\n\n",
        "APPROVE\nOn 1 April she leaves, NOT after that, as Bob wrote:\n",
        "APPROVE\r\nOn Friday at 10:30 tell bob@riverside.nhs.uk NOT to add her\r\nPCSE wrote:\r\n",
        # A date and a few words of theirs, above an attribution naming us alone.
        "APPROVE\nOn 1 April, Jane retires\nPCSE Online user management wrote:\n",
        "APPROVE\nOn 1 April, Jane can't start\nPCSE Online user management <{our}> wrote:\n",
        "APPROVE\nOn 31 March, her contract ends\nPCSE Online user management wrote:\n",
        "APPROVE\nOn 2 March, decline Jane\nPCSE Online user management wrote:\n",
        "APPROVE\nOn 1 April,\nJane goes elsewhere\nPCSE Online user management wrote:\n",
        "APPROVE\nOn 1 April, cancel this, she moves to Leeds surgery\nPCSE wrote:\n",
    ],
)
def test_an_approver_s_line_above_the_quote_is_never_taken_for_its_attribution(
    head: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    head = head.format(our=OUR)
    newline = "\r\n" if "\r\n" in head else "\n"
    quote = newline.join(f"> {line}" for line in request.body_text.splitlines())
    assert state_after(db, config, env, reply_to(request, head + quote)) != "completed"
    assert admins(db) == []


@pytest.mark.parametrize(
    "attribution",
    ["PCSE Online user management wrote:", "PCSE Online user management <{our}> wrote:"],
)
def test_an_attribution_naming_us_alone_is_the_quote_s_header(
    attribution: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    """Thunderbird can be set to write who wrote, and no "On …": its reply approves."""
    request = asked(db, config, env)
    quote = "\n".join(f"> {line}" for line in request.body_text.splitlines())
    text = f"APPROVE\n\n{attribution.format(our=OUR)}\n{quote}"
    assert state_after(db, config, env, reply_to(request, text)) == "completed"


US_NAME = "PCSE Online user management"


@pytest.mark.parametrize(
    "attribution",
    [
        f"On Mon, Mar 2, 2026 at 9:00\u202fAM {US_NAME} <{{our}}> wrote:",  # Gmail, US
        f"On Mon, Mar 2, 2026 at 9:00\u202fAM {US_NAME} <\n{{our}}> wrote:",  # wrapped
        f"On Mon, 02 Mar 2026 09:00:00 +0000\n{US_NAME} <{{our}}> wrote:",  # Claws Mail
        f"On 2 Mar 2026 at 14:30 IST, {US_NAME} <{{our}}> wrote:",
        f"On Monday, 2 March 2026 09:00:00 GMT {US_NAME} wrote:",  # KMail
        f"On Mar 2, 2026, at 9:00\u202fAM, {US_NAME} <{{our}}> wrote:",  # Apple, US
        f"On Monday, 2 March 2026, 09:00:00 GMT, {US_NAME} <{{our}}> wrote:",  # Yahoo
        f"On 2026-03-02 09:00, {US_NAME} wrote:",
        f"On Mon, 2 Mar 2026 at 09:00, {US_NAME} (NHS\nENGLAND - X26) <{{our}}>\nwrote:",
    ],
)
def test_attributions_as_mail_clients_write_them_let_an_approval_through(
    attribution: str, db: Database, config: Config, env: WorkflowEnv
) -> None:
    request = asked(db, config, env)
    quote = "\n".join(f"> {line}" for line in request.body_text.splitlines())
    text = f"APPROVE\n\n{attribution.format(our=OUR)}\n\n{quote}"
    assert state_after(db, config, env, reply_to(request, text)) == "completed"
