"""Approvers' answers as they really arrive (tests/corpus/answers/answers.toml), and the
properties of the reply grammar: nothing negated, conditional or questioning approves."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.reason_redaction import Signer
from workflow.replies import Answer, Verdict, classify, read_answer, read_one_click

CORPUS = Path(__file__).parent / "corpus" / "answers" / "answers.toml"
ENTRIES: list[dict[str, Any]] = tomllib.loads(CORPUS.read_text(encoding="utf-8"))["answer"]
BY_VERDICT = {
    v: [e for e in ENTRIES if e["verdict"] == v] for v in ("approve", "reject", "unclear")
}


def read(entry: dict[str, Any]) -> Answer:
    from_html = entry.get("text_from_html", False)
    # The approver asked, as the approval request names them (their name signs a closing).
    signer = Signer(entry["signer"], "") if "signer" in entry else None
    if "subject" in entry:
        answer = read_one_click(
            entry["subject"], entry["text"], entry.get("html"), from_html, signer=signer
        )
        assert answer is not None, "a one-click subject must be read as one"
        return answer
    return read_answer(entry["text"], entry.get("html"), text_from_html=from_html, signer=signer)


def test_the_corpus_is_large_and_mostly_not_approvals() -> None:
    assert len(ENTRIES) >= 70
    assert len({e["id"] for e in ENTRIES}) == len(ENTRIES)
    refusals = len(BY_VERDICT["reject"]) + len(BY_VERDICT["unclear"])
    assert refusals >= len(BY_VERDICT["approve"]) > 0
    for entry in BY_VERDICT["reject"]:
        assert {"reason", "reason_contains", "no_reason"} & set(entry), entry["id"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_corpus_answer(entry: dict[str, Any]) -> None:
    answer = read(entry)
    assert answer.verdict == entry["verdict"], (answer.explanation, answer.own_text)
    assert answer.explanation
    if answer.verdict is not Verdict.REJECT:
        assert answer.reason is None
        return
    if "reason" in entry:
        assert answer.reason == entry["reason"]
    if entry.get("no_reason"):
        assert answer.reason is None
    for part in entry.get("reason_contains", []):
        assert part in (answer.reason or ""), answer.reason
    for part in entry.get("reason_excludes", []):
        assert part not in (answer.reason or ""), answer.reason


PLAIN_CLEAR = [
    e
    for e in BY_VERDICT["approve"] + BY_VERDICT["reject"]
    if "subject" not in e and "html" not in e
]


@pytest.mark.parametrize("entry", PLAIN_CLEAR, ids=[e["id"] for e in PLAIN_CLEAR])
def test_without_its_verdict_line_the_answer_is_unclear(entry: dict[str, Any]) -> None:
    """Every clear answer owes its verdict to its first line, never to the quoted request
    (which says APPROVE and REJECT) or to the signature."""
    first_line = next(line for line in entry["text"].splitlines() if line.strip())
    emptied = entry["text"].replace(first_line, "", 1)
    assert read_answer(emptied).verdict is Verdict.UNCLEAR


# --------------------------------------------------------------------------- properties

APPROVAL_LINES = [
    "APPROVE",
    "Approved",
    "I approve",
    "Yes, I approve",
    "Approve.",
    "APPROVED - thanks",
    "approved many thanks",
    "Yes approved",
]
NEGATIONS = [
    "not",
    "n't",
    "don't",
    "wouldn't",
    "can't",
    "never",
    "unable",
    "cannot",
    "hold off",
    "wait",
    "not yet",
    "don't set her up",
    "do not proceed",
    "rather not",
    "but",
    "however",
    "unless",
    "until",
    "once",
    "if",
    "provided",
    "subject to",
    "?",
    "no",
    "won't",
    "isn't",
    "reject",
    "declined",
]
# Ordinary words (no negation among them) and punctuation to build texts from.
FILLER = [
    "she",
    "is",
    "our",
    "new",
    "practice",
    "manager",
    "and",
    "needs",
    "access",
    "for",
    "claims",
    "Dr",
    "Patel",
    "GP",
    "Partner",
    "Riverside",
    "Surgery",
    "thanks",
    "kind",
    "regards",
    "started",
    "Monday",
    "Jane",
    "Smith",
    "0113",
    "496",
    "0000",
    ".",
    ",",
    "\n",
    "\n\n",
    "-",
    "!",
    "approve",
    "approved",
    "yes",
    "I",
]
filler = st.lists(st.sampled_from(FILLER), max_size=25).map(" ".join)


@given(st.sampled_from(APPROVAL_LINES), filler, st.sampled_from(NEGATIONS), filler, st.booleans())
def test_a_negation_or_question_anywhere_never_approves(
    opening: str, before: str, negation: str, after: str, same_line: bool
) -> None:
    joint = " " if same_line else "\n"
    own = f"{opening}{joint}{before} {negation} {after}"
    assert classify(own).verdict is not Verdict.APPROVE, own
    reply = own + "\n\nOn Tue, 3 Mar 2026, PCSE <pcse@nhs.net> wrote:\n> APPROVE\n"
    assert read_answer(reply).verdict is not Verdict.APPROVE, own


@given(st.sampled_from(APPROVAL_LINES), st.text(max_size=60), st.text(max_size=60))
def test_a_question_mark_anywhere_never_approves(opening: str, before: str, after: str) -> None:
    own = f"{opening}\n{before}?{after}"
    assert classify(own).verdict is not Verdict.APPROVE


REFUSALS = [e for e in BY_VERDICT["reject"] if "subject" not in e and not e.get("html")]
refusal_texts = st.one_of(
    st.sampled_from([e["text"] for e in REFUSALS]),
    st.builds(
        lambda lead, rest: f"{lead} {rest}",
        st.sampled_from(
            [
                "REJECT",
                "Rejected",
                "No,",
                "No.",
                "Declined",
                "I reject",
                "I do not approve",
                "Do not approve",
                "Not approved",
            ]
        ),
        filler,
    ),
)


@given(
    st.sampled_from(["Yes", "yes", "YES", "Yes,", "Yes.", "Yes I approve", "Approved"]),
    st.sampled_from([" ", ", ", "\n", "\n\n", ". "]),
    refusal_texts,
)
def test_a_refusal_prefixed_with_yes_never_approves(prefix: str, joint: str, refusal: str) -> None:
    assert read_answer(prefix + joint + refusal).verdict is not Verdict.APPROVE


HOSTILE = r"""
import sys, time
from workflow.replies import classify, read_answer, read_one_click, own_text
size = 200_000
shapes = ["no " * (size // 3), "?" * size, " " * size, "\n" * size,
          "APPROVE\n" + "no ?" * (size // 4), "On " + "ab " * (size // 3),
          "Approved" + " " * size + "but not yet", "REJECT " + "thanks, " * (size // 8),
          "REJECT x\n" + "Dr A\n" * (size // 5), "No, " + "0 " * (size // 2),
          "REJECT " + "a dot " * (size // 6), "REJECT " + "a@" * (size // 2),
          "REJECT " + "1, 9O-(" * (size // 7), "REJECT x\n" + "Jo | " * (size // 5)]
verdicts = []
for text in shapes:
    verdicts.append(read_answer(text, text).verdict.value)
    classify(text[:4000])
    own_text(text)
    read_one_click("REJECT [PCSE-2026-000123] APV-0123456789abcdef0123", text, None)
print(" ".join(sorted(set(verdicts))))
"""


def test_hostile_input_is_read_quickly_and_never_approves() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert done.stdout.split() == ["unclear"], done.stdout
