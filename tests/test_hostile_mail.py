"""Hostile mail through the whole pipeline: poll → ledger → process → handler.

The malformed corpus (tests/corpus/malformed: real-world breakage from CPython's email
tests and from common mail clients), a few hundred messages mutated by Hypothesis, the
forms tests' hostile PDFs and a 30 MB attachment go through a separate worker process, as
`pcse poll --once` would run them. The worker must finish normally, every message must end
with a final status and a reason, none may fail with a crash of our own code, and the
worker's memory must stay bounded. bench/hostile.py runs the same with thousands.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.hostile import fill_maildir, prove
from bench.mutations import MALFORMED, generate, pdf_message, seeds, with_message_id
from intake.ledger import header_facts
from intake.mailparse import parse_mail
from workflow.intake_link import WorkflowLink

ROOT = Path(__file__).resolve().parents[1]
# The hostile PDFs that end quickly (the others are in bench/hostile.py).
QUICK_PDFS = [
    "empty",
    "not-a-pdf",
    "word-document",
    "truncated",
    "encrypted",
    "garbage-after-header",
    "recursive",
]


def test_the_malformed_corpus_is_there() -> None:
    names = {p.name for p in MALFORMED.glob("*.eml")}
    assert len(names) >= 40
    assert {"empty.eml", "nested-rfc822-40-deep.eml", "outlook-winmail-dat.eml"} <= names


@pytest.mark.parametrize("path", sorted(MALFORMED.glob("*.eml")), ids=lambda p: p.stem)
def test_each_malformed_message_parses_without_raising(path: Path) -> None:
    raw = path.read_bytes()
    mail = parse_mail(raw)
    facts = header_facts(raw)
    assert isinstance(mail.text, str) and isinstance(mail.attachments, list)
    assert facts.subject is None or len(facts.subject) <= 300


def test_mutations_are_reproducible_and_varied() -> None:
    first, again = generate(40, 5), generate(40, 5)
    assert first == again
    assert len(set(first)) > 30
    assert all(m.startswith(b"Message-ID: <hostile-") for m in first)


def test_a_new_message_id_replaces_the_old_one() -> None:
    raw = with_message_id(seeds()[0], 7)
    assert raw.count(b"Message-ID:") == 1
    assert parse_mail(raw).message_id == "<hostile-7@proof.invalid>"


PARSE_HUGE_HEADER = textwrap.dedent("""
    import sys
    from intake.mailparse import parse_mail
    raw = (sys.argv[1].encode() + b": " + b"word " * 400_000
           + b"\\r\\nSubject: who am I\\r\\n\\r\\nNo sender here.\\r\\n")
    print(parse_mail(raw).subject)
""")


@pytest.mark.parametrize("header", ["From", "To", "Cc"])
def test_a_megabyte_address_header_is_read_in_moments(header: str) -> None:
    # In a child process, so that a parser gone quadratic fails the test instead of
    # holding it for an hour.
    done = subprocess.run(
        [sys.executable, "-c", PARSE_HUGE_HEADER, header],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.strip() == "who am I", done.stderr


def test_the_configured_pdf_limits_are_the_ones_applied(sqlite_database, tmp_path: Path) -> None:
    """A five-page PDF is refused under `[limits] pdf_max_pages = 4` (the default is 20)."""
    from intake.pipeline import run_round
    from service.config import Config, DatabaseConfig, LimitsConfig, MailboxConfig, StorageConfig
    from service.context import workflow_env
    from tests.test_forms_pdf import pages
    from workflow.handler import handle_message
    from workflow.models import Case

    box = MailboxConfig(name="enquiries", maildir=str(tmp_path / "inbox"))
    config = Config(
        database=DatabaseConfig(sqlite_database.url),
        mailboxes=[box],
        storage=StorageConfig(raw_dir=str(tmp_path / "raw")),
        limits=LimitsConfig(pdf_max_pages=4),
    )
    fill_maildir(tmp_path / "inbox", [pdf_message("five pages", pages(5))])

    run_round(sqlite_database, config, handle_message(workflow_env(config)), cases=WorkflowLink())

    with sqlite_database.transaction() as session:
        [case] = session.scalars(select(Case)).all()
        said = " ".join(f.get("message", "") for f in case.findings)
    assert "The PDF has 5 pages, more than the 4 a form can have" in said


@pytest.mark.slow
def test_hostile_mail_at_volume_ends_with_an_outcome_for_every_message(tmp_path: Path) -> None:
    verdict, report = prove(200, 11, 1, None, tmp_path, pdf_names=QUICK_PDFS, say=lambda _: None)

    assert verdict.rows == verdict.messages
    assert not verdict.not_final
    assert not verdict.without_reason
    assert verdict.unexpected == []
    assert verdict.by_status["processed"] > 0 and verdict.by_status["ignored"] > 0
    # The 30 MB attachment is skipped, not read: the worker stays well under a gigabyte.
    assert report["peak_rss_mb"] < 900
