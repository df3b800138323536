"""An approval code still open is a key: pages and commands show it only as a label.

After an answer that could not be read the approver's code stays open; the emails on the
case (in and out), the new reply, `pcse case show` and `pcse outbox list` show it cut.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy import select

from caseworker.casepage import emails
from caseworker.mailview import _MASKED_HTML_CHARS, _MASKED_TEXT_CHARS, view_of
from caseworker.newreply import new_reply_view
from core.db import Database
from core.patterns import mask_tokens, mask_tokens_in_markup
from intake.mailparse import ParsedMail, parse_mail
from notifications.models import OutboxMessage
from service.cmd_cases import case_messages
from service.cmd_outbox import _row
from tests.test_workflow_helpers import PARTNER, answer, gpp_form, open_request, token_for
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case


def test_an_open_code_is_shown_cut_wherever_its_emails_are_listed(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    answer(db, env, ref, PARTNER, "Approve? I don't know her")
    with db.transaction() as session:
        assert [a.status for a in session.scalars(select(ApprovalRequest))] == ["open"]
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        listed = [
            *map(str, emails(session, case)),
            *map(str, case_messages(session, case)),
            *(str(_row(m, ref)) for m in session.scalars(select(OutboxMessage))),
            str(new_reply_view(session, case)),
        ]
    cut = f"APV-{token[:6]}…"
    assert sum(cut in line for line in listed) >= 4  # in and out, on the page and the command
    assert not any(token in line for line in listed)


def test_a_code_inside_a_link_is_cut_too() -> None:
    """The approval request's buttons are mailto links: the code follows "%20" there."""
    code = "APV-c8af7e5b7a0fb2cf855e"
    link = f"mailto:pcse.portalenquiries@nhs.net?subject=APPROVE%20%5BPCSE-2026-000001%5D%20{code}"
    quoted = f"subject=3D{code}"  # quoted-printable, as a raw message holds it
    masked = mask_tokens(f'<a href="{link}">Approve</a> or reply with {code}. %0A{code} {quoted}')
    assert code not in masked
    assert masked.count("APV-c8af7e…") == 4


def test_a_code_spelt_with_character_references_is_cut_as_it_shows() -> None:
    code = "APV-c8af7e5b7a0fb2cf855e"
    spelt = [
        "&#65;" + code[1:],
        "&#x41;" + code[1:],
        "APV&#45;" + code[4:],
        "APV-&#99;" + code[5:],
        "&#x000000041;" + code[1:],
    ]
    masked = mask_tokens_in_markup("<p>" + " ".join(spelt) + " &#60;b&#62; &amp;</p>")
    assert masked.count("APV-c8af7e…") == 5 and "c8af7e5b7a0f" not in masked
    assert "&#60;b&#62; &amp;" in masked  # references to markup characters stay as they are


def test_the_message_page_cuts_a_code_spelt_in_its_html() -> None:
    msg = EmailMessage()
    msg["From"] = "Anil Patel <anil.patel@nhs.net>"
    msg["Subject"] = "RE: approval"
    msg.set_content("See below.")
    msg.add_alternative("<p>&#65;PV-c8af7e5b7a0fb2cf855e</p>", subtype="html")
    view = view_of(parse_mail(bytes(msg)))
    assert view.html is not None and "c8af7e5b7a0f" not in view.html
    assert "APV-c8af7e…" in view.html


def test_a_code_cut_in_two_where_a_page_stops_masking_is_not_shown() -> None:
    # Masking shortens what it masks, so the part of a long email that is masked can end
    # short of what the page shows, with a code cut in two at its end: that part is taken
    # off, not shown unmasked.
    secret = "APV-0123456789abcdef4242"
    fake = "APV-ffffffffffffffffffff\n"  # masked to twelve characters
    pad = fake * ((_MASKED_TEXT_CHARS - 23) // len(fake))
    text = pad + "x" * (_MASKED_TEXT_CHARS - 23 - len(pad)) + secret + "\nthanks\n"
    # One reference, written with enough leading zeros, is a single character once shown.
    reference = "&#" + "0" * (_MASKED_HTML_CHARS - 40) + "65;"
    html = reference + "x" * (_MASKED_HTML_CHARS - 23 - len(reference)) + secret
    view = view_of(ParsedMail(text=text, html=html))
    for shown in (view.text, view.html or ""):
        assert "0123456789" not in shown
        assert shown.endswith(("x", "…\n"))
