"""Email-body requests: the corpus reads to its expected kind, fields and findings."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.htmltext import html_to_text
from core.states import CaseKind
from forms.email_request import read_email_request
from forms.label_lines import label_lines
from forms.mailtext import quote_start, reads_as_attribution, split_message

CORPUS = Path(__file__).resolve().parent / "corpus" / "requests"
SAMPLES = sorted(CORPUS.glob("*.eml"))


def read_eml(path: Path) -> tuple[str, str, str, bool]:
    """Subject, body text (made from the HTML when there is no plain part), sender."""
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None
    text = body.get_content()
    is_html = body.get_content_type() == "text/html"
    if is_html:
        text = html_to_text(text)
    return str(message["Subject"]), text, str(message["From"]), is_html


def _expected(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.stem + ".expected.json").read_text(encoding="utf-8"))


def test_corpus_is_varied() -> None:
    assert len(SAMPLES) >= 30
    kinds = {_expected(p)["kind"] for p in SAMPLES}
    assert {
        "pl_admin",
        "oph_admin",
        "main_contact",
        "performer_registration",
        "market_entry",
        "other",
    } <= kinds
    assert sum(read_eml(p)[3] for p in SAMPLES) >= 3  # HTML-only bodies
    replies = [p for p in SAMPLES if read_eml(p)[0].lower().startswith(("re:", "fwd:"))]
    assert len(replies) >= 4


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_request_reads_as_expected(path: Path) -> None:
    subject, text, sender, _ = read_eml(path)
    expected = _expected(path)
    parsed = read_email_request(subject, text, sender)
    assert parsed.kind == expected["kind"]
    json.dumps(parsed.fields)  # stored as JSON on the case
    assert parsed.source == "email_body"
    for key in ("organisation_code", "organisation_name", "nominees", "main_contact", "signer"):
        assert key in parsed.fields
    for key, value in expected["fields"].items():
        assert parsed.fields[key] == value, key
    got = sorted((f.code, f.field or "") for f in parsed.findings)
    want = sorted((f["code"], f["field"] or "") for f in expected["findings"])
    assert got == want
    for finding in parsed.findings:
        assert finding.message.endswith(".") and len(finding.message) > 20


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_nominee_is_never_the_quoted_or_signature_address_alone(path: Path) -> None:
    subject, text, sender, _ = read_eml(path)
    parts = split_message(text, forwarded=subject.lower().startswith("fwd:"))
    parsed = read_email_request(subject, text, sender)
    people = [*parsed.fields["nominees"], parsed.fields["main_contact"] or {}]
    for person in people:
        address = person.get("email")
        if address and address not in parts.own.lower():
            # Only a sender asking for the role themselves is named outside their own text.
            assert address == parsed.fields["sender"]["email"]


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    "quote",
    [
        "On Tue, 24 Nov 2026 at 11:02, Sarah Quinn <sarah.quinn@nhs.net> wrote:\n> old",
        "-----Original Message-----\nFrom: Sarah\nSent: today\nTo: me\nSubject: x\n\nold",
        "________________________________\nFrom: Sarah <s@nhs.net>\nSent: 20 November 2026\n"
        "To: me\nSubject: x\n\nold",
        "From: Sarah <s@nhs.net>\nDate: 20 November 2026\nSubject: x\nTo: me\n\nold",
    ],
)
def test_quoted_mail_is_set_apart(quote: str) -> None:
    parts = split_message(f"New text here.\n\nThanks\nJo\n\n{quote}")
    assert parts.own == "New text here."
    assert "old" in parts.quoted and "old" not in parts.own
    assert parts.signature.startswith("Thanks")


@pytest.mark.parametrize(
    ("own", "quote"),
    [
        # A line the writer began "On" just above an attribution is theirs.
        (
            "APPROVE\nOn hold until her DBS check clears please",
            "\nOn Mon, 2 Mar 2026 at 09:00, PCSE <pcse@nhs.net> wrote:\n> old",
        ),
        (
            "APPROVE\nOn reflection - REJECT",
            "On 2 Mar 2026, at 09:00, PCSE <\npcse@nhs.net> wrote:\n> old",
        ),
        # And one begun "From:" above a header block; the block runs line after line.
        (
            "APPROVE\nFrom: 1 April, when her contract starts",
            "\n________________________________\nFrom: PCSE <pcse@nhs.net>\n"
            "Sent: 02 March 2026 09:00\nTo: a@nhs.net\nSubject: x\n\nold",
        ),
        (
            "APPROVE\nFrom: 1 April",
            "From: PCSE <pcse@nhs.net>\nSent: 02 March 2026 09:00\nTo: a@nhs.net\n\nold",
        ),
        # "On" and "wrote:" with neither date nor address is no attribution.
        ("APPROVE\nOn hold, as Mo wrote:\nyes", None),
        # An attribution of the author alone ("PCSE Enquiries wrote:") takes in no line of
        # the writer's above it: only a wrapped Gmail one, with a time and an address.
        ("APPROVE\nOn 1 April she leaves - do not approve", "PCSE Enquiries wrote:\n> old"),
        (
            "APPROVE\nOn 1 April she leaves,\nso please do not set her up",
            "PCSE Enquiries wrote:\n> old",
        ),
        (
            "APPROVE",
            "\nOn Tue, 3 Mar 2026 at 10:00, PCSE Online user management <\n"
            "pcse@nhs.net> wrote:\n\n> old",
        ),
        # The writer quoting someone in their own words, above the quote of our email.
        (
            "APPROVE\nOn 3 March the practice manager wrote:\nJane has left, REJECT instead",
            "\nOn Tue, 3 Mar 2026 at 10:00, PCSE <pcse@nhs.net> wrote:\n\n> old",
        ),
    ],
)
def test_the_quote_begins_at_the_attribution_not_at_a_line_of_the_writer_s(
    own: str, quote: str | None
) -> None:
    text = own if quote is None else f"{own}\n{quote}"
    start = quote_start(text)
    if quote is None:
        assert start is None
    else:
        blank = len(quote) - len(quote.lstrip("\n"))
        assert start == len(own) + 1 + blank, text[start or 0 :]


def test_disclaimer_and_signature_are_not_own_text() -> None:
    parts = split_message(
        "Please set up Ann Lee.\n\nKind regards,\nBob\nTel: 0113 496 0000\n\n"
        "This message may contain confidential information. If you are not the intended "
        "recipient please inform the sender and delete it."
    )
    assert parts.own == "Please set up Ann Lee."
    assert "confidential" not in parts.own + parts.signature


def test_label_lines_know_their_topics() -> None:
    lines = label_lines(
        "Practice code: A81001\nPractice name - Elm Surgery\nName 1: Ruth Kelly\n"
        "E-mail address:\truth@x.co.uk\nRole: Practice Manager\nPostcode: LS1 4AP\n"
        "Our main contact has left: can you help"
    )
    assert [(line.topic, line.value) for line in lines] == [
        ("organisation_code", "A81001"),
        ("organisation_name", "Elm Surgery"),
        ("name", "Ruth Kelly"),
        ("email", "ruth@x.co.uk"),
        ("ignore", "Practice Manager"),
        ("ignore", "LS1 4AP"),
    ]


def test_sender_asking_for_themselves_gives_their_stated_address() -> None:
    parsed = read_email_request(
        "Main contact",
        "Hello, can you add me as the main contact for our practice B81002 please, "
        "my email is mary.j@nhs.net\n\nMary Jones",
        "Mary Jones <mary.jones@nhs.net>",
    )
    assert parsed.kind == CaseKind.MAIN_CONTACT
    assert parsed.fields["main_contact"] == {"name": "Mary Jones", "email": "mary.j@nhs.net"}


def test_reply_and_copy_addresses_are_not_nominees() -> None:
    parsed = read_email_request(
        "PL admin",
        "Please set up Jane Doe (jane.doe@nhs.net) as PL Organisation Administrator for "
        "A81001. Please reply to our shared inbox admin.team@nhs.net.\n\nThanks\nBob",
        "Bob Smith <bob.smith@nhs.net>",
    )
    assert [n["email"] for n in parsed.fields["nominees"]] == ["jane.doe@nhs.net"]


def test_invalid_address_is_a_finding() -> None:
    parsed = read_email_request(
        "PL Organisation Administrator",
        "Practice code: A81001\nName: Jane Smith\nEmail: jane.smith@nhs\n",
        "x@nhs.net",
    )
    assert parsed.fields["nominees"] == [{"name": "Jane Smith", "email": None, "services": ["pl"]}]
    assert [(f.code, f.field) for f in parsed.findings] == [("invalid_email", "nominees.0.email")]
    assert "jane.smith@nhs" in parsed.findings[0].message


@settings(max_examples=150, deadline=None)
@given(subject=st.text(max_size=80), text=st.text(max_size=600), sender=st.text(max_size=60))
def test_any_text_reads_without_error(subject: str, text: str, sender: str) -> None:
    parsed = read_email_request(subject, text, sender)
    assert parsed.kind in {k.value for k in CaseKind}
    assert isinstance(parsed.fields["nominees"], list)


@pytest.mark.parametrize(
    "text",
    [
        "A" * 50_000,
        "Aa-" * 10_000,
        "Aa " * 10_000,
        "a@" * 10_000,
        "On " + "x" * 20_000 + "\n\n",
        "Dr Aaaa Bbbb Cccc Dddd " * 3_000,
    ],
    ids=["capitals", "hyphens", "words", "ats", "on-wrote", "names"],
)
def test_long_hostile_bodies_read_quickly(text: str) -> None:
    import time

    started = time.perf_counter()
    read_email_request("x" * 2_000, text, "a@b.example")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("subject", "text", "kind", "person"),
    [
        (
            "Main contact change",
            "Dear team,\n\nOur practice manager, Sarah Brown, is leaving. "
            "Going forward please could "
            "our new main contact be Peter Lang. His nhs.net address is peter.lang@nhs.net.\n\n"
            "Practice code A81055\n\nBest regards\nDr Ahmed\nGP Partner",
            "main_contact",
            {"name": "Peter Lang", "email": "peter.lang@nhs.net"},
        ),
        (
            "PL admin",
            "Hello,\nPlease can Jane Smith be given PL Organisation Administrator access "
            "for Oakwood "
            "Surgery.\nHer email: jsmith22@nhs.net\nODS code: A81011\nThanks",
            "pl_admin",
            {"name": "Jane Smith", "email": "jsmith22@nhs.net"},
        ),
        (
            "Request",
            "Hi, we would like to nominate our receptionist, Joanne Baxter "
            "(joanne.baxter1@nhs.net), for the Ophthalmic Payments user admin role. Contractor "
            "number 40123.\nThanks",
            "oph_admin",
            {"name": "Joanne Baxter", "email": "joanne.baxter1@nhs.net"},
        ),
        (
            "User management",
            "Please give Tom O'Brien and Sarah McDonald user management (organisation). "
            "tom.obrien@spec.co.uk / sarah.mcdonald@spec.co.uk. Contractor no. 12345. Ta",
            "oph_admin",
            {"name": "Tom O'Brien", "email": "tom.obrien@spec.co.uk"},
        ),
    ],
)
def test_people_in_their_own_words(
    subject: str, text: str, kind: str, person: dict[str, str]
) -> None:
    parsed = read_email_request(subject, text, "Someone Else <someone.else@nhs.net>")
    assert parsed.kind == kind
    found = (
        parsed.fields["main_contact"]
        if kind == "main_contact"
        else (
            {
                "name": parsed.fields["nominees"][0]["name"],
                "email": parsed.fields["nominees"][0]["email"],
            }
        )
    )
    assert found == person
    assert not [f for f in parsed.findings if f.field != "organisation_code"]


# --------------------------------------------------------------------------- handovers

HANDOVERS = [
    "Please change our main contact from Tom Baker (tom.baker@nhs.net) to Lisa Moore "
    "(lisa.moore@nhs.net). Practice code A81002.",
    "Please replace Tom Baker (tom.baker@nhs.net) with Lisa Moore (lisa.moore@nhs.net) as main "
    "contact for A81002.",
    "Could you set Lisa Moore (lisa.moore@nhs.net) as main contact instead of Tom Baker "
    "(tom.baker@nhs.net)? A81002",
    "Tom Baker (tom.baker@nhs.net) is leaving, please make Lisa Moore (lisa.moore@nhs.net) the "
    "main contact for A81002.",
    "Main contact for A81002: please remove Tom Baker tom.baker@nhs.net and add Lisa Moore "
    "lisa.moore@nhs.net.",
    "Tom Baker (tom.baker@nhs.net) has retired. Our new main contact is Lisa Moore "
    "(lisa.moore@nhs.net). A81002",
    "Please update the main contact for A81002 to Lisa Moore (lisa.moore@nhs.net), taking over "
    "from Tom Baker (tom.baker@nhs.net).",
    "Please change the main contact for A81002. Current: Tom Baker tom.baker@nhs.net. New: Lisa "
    "Moore lisa.moore@nhs.net",
    "Main contact for A81002 is now Lisa Moore lisa.moore@nhs.net; the previous main contact, "
    "Tom Baker tom.baker@nhs.net, has moved on.",
    "Please swap main contact Tom Baker (tom.baker@nhs.net) for Lisa Moore (lisa.moore@nhs.net). "
    "A81002",
    "Lisa Moore (lisa.moore@nhs.net) will be taking over from Tom Baker (tom.baker@nhs.net) as "
    "main contact. A81002",
    "Please update the main contact for A81002: Tom Baker (tom.baker@nhs.net) should be replaced "
    "by Lisa Moore (lisa.moore@nhs.net).",
    "Our main contact was Tom Baker (tom.baker@nhs.net) but it is now Lisa Moore "
    "(lisa.moore@nhs.net). A81002",
    "Following the retirement of Tom Baker (tom.baker@nhs.net), please set Lisa Moore "
    "(lisa.moore@nhs.net) as our main contact. A81002",
    "Please make Lisa Moore (lisa.moore@nhs.net) main contact in place of Tom Baker "
    "(tom.baker@nhs.net). A81002",
    "Hi, Tom Baker tom.baker@nhs.net leaves us on Friday. New main contact Lisa Moore "
    "lisa.moore@nhs.net. A81002",
]


@pytest.mark.parametrize("text", HANDOVERS)
def test_a_handover_nominates_the_one_coming_in(text: str) -> None:
    parsed = read_email_request("Change of main contact", text, "Jo Fraser <jo.fraser@nhs.net>")
    assert parsed.kind == "main_contact"
    assert parsed.fields["main_contact"] == {"name": "Lisa Moore", "email": "lisa.moore@nhs.net"}
    assert parsed.fields["outgoing"] == [{"name": "Tom Baker", "email": "tom.baker@nhs.net"}]
    assert not parsed.findings


@pytest.mark.parametrize(
    "text",
    [
        "Please make Tom Baker (tom.baker@nhs.net) and Lisa Moore (lisa.moore@nhs.net) the main "
        "contact for A81002.",
        "Main contact for A81002: Tom Baker tom.baker@nhs.net or Lisa Moore lisa.moore@nhs.net",
        # Lisa is said to be both coming and going: nobody is guessed.
        "Please replace Lisa Moore (lisa.moore@nhs.net) with Lisa Moore (lisa.moore@nhs.net) as "
        "main contact for A81002.",
    ],
)
def test_an_unclear_handover_is_left_to_a_person(text: str) -> None:
    parsed = read_email_request("Main contact", text, "Jo Fraser <jo.fraser@nhs.net>")
    assert parsed.fields["main_contact"] is None
    assert [(f.code, f.field) for f in parsed.findings] == [("unclear_person", "main_contact")]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_nobody_named_as_leaving_is_given_a_role(path: Path) -> None:
    subject, text, sender, _ = read_eml(path)
    parsed = read_email_request(subject, text, sender)
    leaving = {p["email"] for p in parsed.fields.get("outgoing") or []}
    given = {n["email"] for n in parsed.fields["nominees"]}
    given |= {(parsed.fields["main_contact"] or {}).get("email")}
    assert not leaving & given


@pytest.mark.parametrize(
    "line",
    [
        "On Mon, 2 Mar 2026 at 09:00, PCSE Online user management <pcse@nhs.net> wrote:",
        "On 2 Mar 2026, at 09:00, PCSE <pcse@nhs.net> wrote:",
        "On 03/03/2026 10:00, PCSE Online user management wrote:",
        "On Mon, Mar 2, 2026 at 9:00\u202fAM PCSE <pcse@nhs.net> wrote:",
        "On Mon, 2 Mar 2026, 09:00 PCSE, <pcse@nhs.net> wrote:",
        "On Tue, 3 Mar 2026 at 10:00, PATEL, Anil (THE SURGERY) <a.patel@nhs.net> wrote:",
        "On Tue, 3 Mar 2026, PCSE <pcse@nhs.net> wrote:",
    ],
)
def test_attributions_as_mail_clients_write_them(line: str) -> None:
    assert reads_as_attribution(line)


@pytest.mark.parametrize(
    "line",
    [
        "On Friday at 10:30 tell bob@example.nhs.uk she must NOT have access PCSE wrote:",
        "On Monday 9.00 REJECT instead if jane has no DBS PCSE <pcse@nhs.net> wrote:",
        "On 1 April she leaves, NOT after that, as Bob wrote:",
        "On Friday, at 10:30, tell bob she must NOT have access, PCSE wrote:",
        "On hold, as Mo wrote:",
        "On Mon, PCSE wrote:",
    ],
)
def test_a_writer_s_own_line_opening_on_is_no_attribution(line: str) -> None:
    assert not reads_as_attribution(line)
