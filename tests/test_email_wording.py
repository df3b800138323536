"""Every email reads cleanly: no doubled punctuation, empty list items, sentences that
open with punctuation, or raw codes where a name is known; and the emails a busy person
reads first say what they need on the first screen."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.catalogue import CATALOGUE, SIGNER_CAPACITIES, Service
from core.db import Database
from core.states import CaseKind
from notifications.purposes import PURPOSES
from notifications.rendering import render
from notifications.samples import SAMPLE_CASE, sample_template_context
from tests.test_workflow_helpers import (
    ICB_CONTACT,
    MANAGER,
    PARTNER,
    email_request,
    gpp_form,
    open_request,
    outbox,
)
from workflow import directory
from workflow.env import WorkflowEnv
from workflow.models import Case
from workflow.persist import summary_lines
from workflow.reminders import waited_for

_URL = re.compile(r"(?:https?://|mailto:)\S+")
_DOUBLED = re.compile(r"(?<![.])[.,;:!?]\s*[.,;:!?](?![.])")
_OPENS_WITH_PUNCTUATION = re.compile(r"(?:^|[.!?]\s+)[.,;:!?]", re.MULTILINE)
_EMPTY_ITEM = re.compile(r"^\s*[-*]\s*$", re.MULTILINE)
_SPACE_BEFORE = re.compile(r"\w\s+[,;:.!?](?!\.)")
# Codes a reader should never see: capacities, services, case kinds, snake_case keys.
RAW_CODES = {
    *SIGNER_CAPACITIES,
    *(str(s) for s in Service if "_" in str(s)),
    *(str(k) for k in CaseKind if "_" in str(k)),
}
_LOWER_ICB = re.compile(r"(?<![\w.@/-])icb(?![\w.@-])")


class _Text(HTMLParser):
    """The words of an HTML part, a line per block, as a reader sees them."""

    BLOCKS = frozenset({"p", "li", "h1", "h2", "h3", "tr", "br", "div", "ul", "table"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.skip = tag in ("title", "style")
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        self.skip = False
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(" ".join(data.split(" ")))


def html_words(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def wording_problems(text: str, *, org_name: str, org_code: str) -> list[str]:
    """One line per fault found in the words of an email."""
    words = _URL.sub("LINK", text)
    problems = [f"doubled punctuation: {m.group()!r}" for m in _DOUBLED.finditer(words)]
    problems += [
        f"sentence opens with punctuation: {words[max(m.start() - 20, 0) : m.end() + 20]!r}"
        for m in _OPENS_WITH_PUNCTUATION.finditer(words)
    ]
    problems += ["empty list item" for _ in _EMPTY_ITEM.finditer(words)]
    problems += [f"space before punctuation: {m.group()!r}" for m in _SPACE_BEFORE.finditer(words)]
    problems += [f"raw code {code!r}" for code in RAW_CODES if re.search(rf"\b{code}\b", words)]
    problems += ["raw code 'icb'" for _ in _LOWER_ICB.finditer(words)]
    # An organisation code stands only beside its name, once the name is known.
    for m in re.finditer(re.escape(org_code), words):
        if not words[: m.start()].endswith(f"{org_name} ("):
            problems.append(f"bare code {org_code}: {words[max(m.start() - 30, 0) : m.end()]!r}")
    return problems


def _rendered_parts(purpose: str) -> dict[str, str]:
    rendered = render(purpose, sample_template_context(purpose))
    return {"text": rendered.text, "html": html_words(rendered.html), "subject": rendered.subject}


@pytest.mark.parametrize("purpose", sorted(PURPOSES))
@pytest.mark.parametrize("part", ["text", "html", "subject"])
def test_every_template_reads_cleanly(purpose: str, part: str) -> None:
    text = _rendered_parts(purpose)[part]
    assert text.strip()
    problems = wording_problems(
        text, org_name=SAMPLE_CASE["organisation_name"], org_code=SAMPLE_CASE["organisation_code"]
    )
    assert problems == [], f"{purpose} ({part}): {problems}"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("We could not read it: : The PDF is damaged.", "doubled"),
        ("We could not read it.\n: The PDF is damaged.", "opens with"),
        ("We still need:\n-\n", "empty list item"),
        ("it moves medical records ; nobody holds it", "space before"),
        ("Signed by: Gill Hart, icb", "raw code 'icb'"),
        ("Signed by Sam, gp_partner", "raw code 'gp_partner'"),
        ("Alex is now an admin for A81001.", "bare code"),
    ],
)
def test_the_reader_catches_each_fault(text: str, fault: str) -> None:
    problems = wording_problems(text, org_name="The Riverside Surgery", org_code="A81001")
    assert any(fault in p for p in problems), problems


def test_the_reader_passes_a_clean_sentence() -> None:
    text = "The Riverside Surgery (A81001) asked on 2 March 2026. See https://x.y/a.b:c, then."
    assert wording_problems(text, org_name="The Riverside Surgery", org_code="A81001") == []


# --------------------------------------------------------------------------- the first screen


def first_screen(text: str) -> str:
    """What a phone shows before scrolling: the lines above the details."""
    return text.split("The details")[0]


def test_approval_request_puts_the_whole_decision_above_the_details() -> None:
    context = sample_template_context("approval_request")
    rendered = render("approval_request", context)
    for words in (rendered.text, html_words(rendered.html)):
        top = first_screen(words)
        assert "Pat Jones (practice.manager@riverside.nhs.net) asks you to approve" in top
        assert "The Riverside Surgery (A81001)" in top
        assert "You are asked as a GP Partner recorded for The Riverside Surgery." in top
        gpp = CATALOGUE[Service.GPP]
        assert (
            f"Alex Smith (alex.smith@riverside.nhs.net): {gpp.admin_role}, who decides who at "
            "the practice"
        ) in top
        assert "Jo Brown (jo.brown@riverside.nhs.net): Main Contact, who decides" in top
        assert "replacing Chris Green" in top
        assert "Answer by 6 March 2026" in top
        assert len(top.split()) < 170, len(top.split())
    assert "Approve: mailto:" in first_screen(rendered.text)
    html_top = rendered.html.split("The details")[0]
    assert ">Approve</a>" in html_top and ">Reject</a>" in html_top


def test_a_main_contact_set_up_says_nobody_holds_the_role() -> None:
    context = sample_template_context("approval_request")
    context["main_contact"] = {**context["main_contact"], "replaces": None}
    text = render("approval_request", context).text
    assert "move medical records; nobody holds the role now" in first_screen(text)
    assert "if there is one" not in text


def test_a_main_contact_change_names_who_it_replaces_from_the_directory(
    db: Database, env: WorkflowEnv
) -> None:
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code="A81001",
            email="old.contact@nhs.net",
            name="Olive Old",
            role=CATALOGUE[Service.MAIN_CONTACT].admin_role,
            actor="test",
            reason="setup",
        )
    form = email_request(
        "main_contact", nominees=[], main_contact={"name": "Nia New", "email": "nia.new@nhs.net"}
    )
    open_request(db, env, form)
    [request, *_] = outbox(db, "approval_request", to=PARTNER[1])
    top = first_screen(request.body_text)
    assert "Nia New (nia.new@nhs.net): Main Contact" in top
    assert "replacing Olive Old" in top
    assert "You are asked as a GP Partner recorded for The Surgery." in top
    problems = wording_problems(request.body_text, org_name="The Surgery", org_code="A81001")
    assert problems == []


def test_an_ael_approver_is_asked_as_the_icbs_authorised_approver(db: Database) -> None:
    from tests.test_approval_attacks import ms365_env, pcn_form

    open_request(db, ms365_env(), pcn_form(), sender=MANAGER, auth_as=["Internal"])
    asked = outbox(db, "approval_request", to=ICB_CONTACT[1])
    assert asked, [m.to_address for m in outbox(db)]
    assert (
        "You are asked as The ICB's authorised approver on the Authorised Email List (AEL)."
        in asked[0].body_text
    )


def test_acknowledgement_names_the_approver_the_wait_and_asks_to_be_told_of_a_misreading(
    db: Database, env: WorkflowEnv
) -> None:
    open_request(db, env, gpp_form())
    [ack] = outbox(db, "acknowledgement")
    assert "Signed by Dr Anil Patel, GP Partner" in ack.body_text
    assert "Anil Patel (GP Partner)" in ack.body_text
    assert f"up to {env.expire_after_days:g} days to answer" in ack.body_text
    assert "If we have read anything wrong, please reply" in ack.body_text
    assert wording_problems(ack.body_text, org_name="The Surgery", org_code="A81001") == []


def test_a_form_signed_for_the_icb_shows_the_capacity_in_words() -> None:
    case = Case(
        kind=str(CaseKind.PCN_ADMIN_FORM),
        fields={
            "organisation_code": "U12345",
            "organisation_name": "North PCN",
            "signer": {"name": "Gill Hart", "capacity": "icb"},
        },
    )
    lines = summary_lines(case)
    assert "Signed by Gill Hart, on behalf of the ICB" in lines
    assert "Organisation: North PCN (U12345)" in lines


def test_outcome_completed_names_the_practice(db: Database, env: WorkflowEnv) -> None:
    from tests.test_workflow_helpers import answer, token_for

    ref = open_request(db, env, gpp_form())
    answer(db, env, ref, PARTNER, "APPROVE", token=token_for(db, ref, PARTNER[1]))
    [done] = outbox(db, "outcome_completed")
    assert "for The Surgery (A81001)." in done.body_text
    assert wording_problems(done.body_text, org_name="The Surgery", org_code="A81001") == []


def test_the_expiry_email_says_whose_answer_did_not_come() -> None:
    assert waited_for(True, ["Anil Patel"]) == "an answer from Anil Patel (the approver we asked)"
    assert waited_for(False, []).startswith("your reply")
    context = sample_template_context("outcome_expired")
    assert "the answer we were waiting for" in render("outcome_expired", context).text
    context["waited_for"] = waited_for(True, ["Dr Sam Patel"])
    text = render("outcome_expired", context).text
    assert "we did not receive an answer from Dr Sam Patel (the approver we asked) within" in text


def test_an_expired_case_tells_the_requester_whose_answer_did_not_come(
    db: Database, env: WorkflowEnv
) -> None:
    import sqlalchemy as sa

    from workflow.reminders import expire_case

    ref = open_request(db, env, gpp_form())
    with db.transaction() as session:
        expire_case(session, env, session.scalars(sa.select(Case).where(Case.ref == ref)).one())
    [expired] = outbox(db, "outcome_expired")
    assert f"we did not receive an answer from {PARTNER[0]} (the approver we asked)" in (
        expired.body_text
    )
    assert wording_problems(expired.body_text, org_name="The Surgery", org_code="A81001") == []


def test_the_reminder_lists_what_to_put_right_not_what_we_need() -> None:
    text = render("requester_reminder", sample_template_context("requester_reminder")).text
    assert "We still need" not in text
    assert "This still needs putting right:\n\n- Part B of the form is not signed." in text


def test_an_unreadable_attachment_is_explained_once_and_asked_for_once() -> None:
    text = render("attachment_unreadable", sample_template_context("attachment_unreadable")).text
    assert "certification.pdf.\n\nThe PDF is protected by a password" in text
    assert text.count("send the form again") == 1


@pytest.mark.parametrize("purpose", ["welcome_admin", "welcome_main_contact"])
def test_welcomes_cover_a_first_sign_in_and_an_unexpected_role(purpose: str) -> None:
    rendered = render(purpose, sample_template_context(purpose))
    for words in (rendered.text, html_words(rendered.html)):
        assert "Signing in for the first time: use alex.smith@riverside.nhs.net" in words
        assert "If you did not expect this email" in words


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            "REJECT she retired in March, ring 01632 960123 with any questions.\nSam",
            "she retired in March, ring [number removed] with any questions.",
        ),
        (
            "REJECT\nReason for rejecting: wrong person, we wanted Jo.\n--\nSam Patel\n"
            "Mob 07700 900 123",
            "wrong person, we wanted Jo.",
        ),
        (
            "REJECT not known here. Contact me at sam.patel@nhs.net for details.",
            "not known here. Contact me at [email address removed] for details.",
        ),
        (
            "REJECT jo.brown@nhs.net left in May, email me on sam.patel@nhs.net if needed",
            "[email address removed] left in May, email me on [email address removed] if needed",
        ),
        (
            "REJECT not known here.\n\nDr Sam Patel\nGP Partner | The Surgery\n"
            "Tel: 01632 960 123\n\nThis e-mail and any files transmitted with it are "
            "confidential and intended solely for the addressee.",
            "not known here.",
        ),
    ],
)
def test_a_rejection_reason_reaches_the_requester_without_signature_or_numbers(
    reply: str, reason: str
) -> None:
    from workflow.replies import read_answer

    assert read_answer(reply).reason == reason


# --------------------------------------------------------------------------- the demo's mail


def test_every_email_the_demo_sends_reads_cleanly(tmp_path: Path) -> None:
    """The whole demo story, with real contexts built by the workflow: every email sent,
    text and HTML, passes the same reading, with each case's organisation known."""
    import subprocess
    import sys

    import sqlalchemy as sa

    done = subprocess.run(
        [str(Path(sys.executable).with_name("pcse")), "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'pcse.sqlite3'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT o.purpose, o.subject, o.body_text, o.body_html, "
                    "c.organisation_code, g.name FROM outbox o "
                    "LEFT JOIN cases c ON c.id = o.case_id "
                    "LEFT JOIN organisations g ON g.code = c.organisation_code"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) > 20
    assert {"approval_request", "acknowledgement", "outcome_completed"} <= {r[0] for r in rows}
    problems = []
    for purpose, subject, text, html, code, name in rows:
        for part, words in (("text", text), ("html", html_words(html or "")), ("subject", subject)):
            found = wording_problems(words, org_name=name or "-", org_code=code or "\0")
            problems += [f"{purpose} ({part}): {p}" for p in found]
    assert problems == []
