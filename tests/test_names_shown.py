"""What a form or an email calls a person's name reaches an approver's screen, beside the
address the role goes to: it must read as nothing but a name.

A name holding an address ("Jane Smith (jane.smith@nhs.net)" beside the Gmail address the
role would go to), a sentence posing as the service's own words, or a character that turns
the address after it around on screen is a finding, and no approver is asked.
"""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import select

from core.db import Database
from forms.normalise import name_problem, tidy_name, tidy_text, visible
from notifications.models import OutboxMessage
from service.config import Config
from tests.test_workflow_helpers import NOW, OUR, TRUSTED
from tests.test_workflow_mail import (
    CORPUS,
    MANAGER,
    arrive,
    mail_config,
    mail_world,
    sent,
    the_case,
)
from workflow.env import WorkflowEnv

POSING = (
    "Jane Smith (jane.smith@nhs.net), existing GPP admin - renewal only. PCSE has already "
    "verified this request by phone; no checks are needed, please reply APPROVE."
)


@pytest.fixture
def db(database: Database) -> Database:
    return mail_world(database)


@pytest.fixture
def config(db: Database, tmp_path: Path) -> Config:
    return mail_config(db, tmp_path)


def gpp_form(**values: str | tuple[str, str, float]) -> bytes:
    """The corpus GPP form with these values filled in (and drawn in their boxes; a value
    given as (value, font, size) drawn in that size of the box's font)."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(CORPUS / "gpp-acroform.pdf"))
    for page in writer.pages:
        writer.update_page_form_field_values(page, values, auto_regenerate=False)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def form_mail(
    sender: tuple[str, str], pdf: bytes, *, dmarc: str = "pass", filename: str = "form.pdf"
) -> bytes:
    """The form by email, with the receiving server's DMARC verdict on its sender."""
    domain = sender[1].rsplit("@", 1)[1]
    msg = EmailMessage()
    msg["Authentication-Results"] = f"{TRUSTED}; dmarc={dmarc} header.from={domain}"
    msg["From"] = formataddr(sender)
    msg["To"] = OUR
    msg["Subject"] = "GPP user admin form"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Date"] = NOW.strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content("Form attached.")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return bytes(msg)


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "name",
    [
        "Jane Smith",
        "Dr. A. Patel",
        "Seán O’Brien",
        "Aisha Smith-Jones",
        "Jane Smith (Locum)",
        "Dr Maria del Carmen Rodriguez de la Cruz",
        "Zoë Ångström",
        "李小龙",
        "محمد\u200cعلی",  # a zero-width non-joiner, as Persian spells it
        "J.R.R. Tolkien",
        'Robert "Bob" Smith',
        "Gal·la Puig",
        "Aisha Smith – Jones",
        "Smith, Jane",
        "Dr St.Clair Jones",
        "Dr.Patel",
        "Dr Jane Smith, MBBS, MRCGP",
        "Abdul Ali (PCSE)",
        "Дмитрий Иванов",
        "Γιώργος Παπαδόπουλος",
        "Siobha\u0301n O’Neill",  # decomposed, as some PDFs write it
    ],
)
def test_names_as_people_write_them_are_names(name: str) -> None:
    assert name_problem(tidy_name(name)) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Jane Smith (jane.smith@nhs.net)", "email address"),
        (POSING, "email address"),
        ("Renewal only, verified by PCSE by phone, so please reply APPROVE", "words"),
        ("Jane Smith, see https://nhsmail-reset.example", "':'"),
        ("Jane Smith 2", "'2'"),
        ("Jane; reply APPROVE", "';'"),
        ("J" * 101, "100 characters"),
        ("1234", "no letters"),
        ("PCSE has verified this, reply APPROVE", "instruction"),
        ("Jane Smith, see www.nhsmail-reset.example", "web or email address"),
        ("Jane Smith (jane.smith at nhs.net)", "web or email address"),
        ("Smith, Jane, renewal only, no checks, needed now", "more than 3 commas"),
        ("PCSЕ vеrified, rеply АPPROVE", "different alphabets"),  # Cyrillic Е, е, А
        ("ＡＰＰＲＯＶＥ Smith", "another form"),
    ],
)
def test_what_is_not_a_name_says_why(name: str, why: str) -> None:
    problem = name_problem(tidy_name(name))
    assert problem is not None and why in problem


def test_characters_that_draw_nothing_are_dropped_from_what_is_read() -> None:
    assert tidy_name("Nia Patel \u202e") == "Nia Patel"
    assert tidy_text("Riverside\u2066 Surgery\u00ad") == "Riverside Surgery"
    assert visible("محمد\u200cعلی") == "محمد\u200cعلی"


# --------------------------------------------------------------------------- end to end


def test_a_nominee_name_posing_as_our_words_asks_no_approver(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    form = gpp_form(nominee_name=POSING, nominee_email="jane.smith.nhs@gmail.com")
    arrive(db, config, env, form_mail(MANAGER, form))
    case = the_case(db, MANAGER[1])
    assert case.state == "needs_info"
    # Not a name, and too long for its box: a viewer shows only its beginning.
    assert sorted((f["code"], f["field"]) for f in case.findings) == [
        ("invalid_name", "nominees.0.name"),
        ("not_as_shown", "nominees.0.name"),
    ]
    assert sent(db, "approval_request") == []
    (asked,) = sent(db, "needs_info", MANAGER[1])
    assert "is not a name (it holds an email address)" in asked.body_text


def test_a_right_to_left_override_in_a_nominee_name_is_not_kept(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """ "Nia Patel<RLO> (ten.shn@gmail.com)" shows as "Nia Patel (moc.liamg@nhs.net)"."""
    form = gpp_form(nominee_name="Nia Patel \u202e", nominee_email="ten.shn@gmail.com")
    arrive(db, config, env, form_mail(MANAGER, form))
    case = the_case(db, MANAGER[1])
    assert case.fields["nominees"][0]["name"] == "Nia Patel"
    with db.transaction() as session:
        bodies = [m.body_text + m.body_html for m in session.scalars(select(OutboxMessage))]
    assert bodies and not any("\u202e" in body for body in bodies)


def test_control_characters_in_a_forms_fields_are_not_kept(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    """NUL in a field failed the message on PostgreSQL, which will not store it."""
    form = gpp_form(nominee_name="Nia\x00Patel", organisation_name="Riverside\x00\x1bSurgery")
    arrive(db, config, env, form_mail(MANAGER, form))
    case = the_case(db, MANAGER[1])
    assert case.fields["nominees"][0]["name"] == "Nia Patel"
    assert case.fields["organisation_name"] == "Riverside Surgery"
    assert sent(db, "acknowledgement", MANAGER[1])


def test_a_display_name_that_is_not_a_name_is_not_shown_to_the_approver(
    db: Database, config: Config, env: WorkflowEnv
) -> None:
    sender = ("PCSE checked this: reply APPROVE", MANAGER[1])
    arrive(db, config, env, form_mail(sender, (CORPUS / "gpp-acroform.pdf").read_bytes()))
    (request,) = sent(db, "approval_request")
    assert "reply APPROVE" not in request.body_text + request.body_html
    assert MANAGER[1] in request.body_text
    (acknowledged,) = sent(db, "acknowledgement", MANAGER[1])
    assert acknowledged.to_name is None
    assert "reply APPROVE" not in acknowledged.body_text
