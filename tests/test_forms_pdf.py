"""PDF forms: the corpus reads to its expected fields and findings; hostile files are contained."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pdfplumber
import pytest

import forms
from bench.hostile_pdfs import HOSTILE, bomb, pages
from forms import PdfLimits, blank_form_path, read_pdf
from forms.definitions import definitions
from forms.sandbox import POOL
from tests.scan_checks import unflagged

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "forms"
SAMPLES = sorted(CORPUS.glob("*.pdf"))
CONTRACT_KEYS = ("organisation_code", "organisation_name", "nominees", "main_contact", "signer")


def _expected(pdf: Path) -> dict[str, Any]:
    return json.loads(pdf.with_name(pdf.stem + ".expected.json").read_text(encoding="utf-8"))


def test_corpus_is_there() -> None:
    assert len(SAMPLES) >= 30
    assert all(p.with_name(p.stem + ".expected.json").is_file() for p in SAMPLES)


@pytest.mark.parametrize("pdf", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_corpus_sample_reads_as_expected(pdf: Path) -> None:
    expected = _expected(pdf)
    parsed = read_pdf(pdf.read_bytes())
    json.dumps(parsed.fields)  # stored as JSON on the case
    assert parsed.kind == expected["kind"]
    assert parsed.source == expected["source"]
    assert parsed.form_version == expected["form_version"]
    if expected.get("ocr"):
        # A scan: read by OCR, each value right or flagged for a person.
        assert unflagged(parsed, expected["fields"]) == {}
        return
    for key in CONTRACT_KEYS:
        assert key in parsed.fields
    for key, value in expected["fields"].items():
        assert parsed.fields[key] == value, key
    got = sorted((f.code, f.field or "") for f in parsed.findings)
    want = sorted((f["code"], f["field"] or "") for f in expected["findings"])
    assert got == want
    for finding in parsed.findings:
        assert finding.message.endswith(".") and len(finding.message) > 20


def test_unsigned_sentence_names_the_missing_value() -> None:
    parsed = read_pdf((CORPUS / "gpp-signer-email-missing.pdf").read_bytes())
    messages = [f.message for f in parsed.findings]
    assert "Part B is not signed: the signer's email address is missing." in messages


def test_missing_part_is_one_finding_not_one_per_field() -> None:
    parsed = read_pdf((CORPUS / "uar-signature-page-missing.pdf").read_bytes())
    assert [f.code for f in parsed.findings] == ["part_missing"]
    assert "Part G" in parsed.findings[0].message


# --------------------------------------------------------------------------- blank forms


@pytest.mark.parametrize("definition", definitions(), ids=lambda d: d.version)
def test_blank_form_carries_its_fields_and_version_mark(definition) -> None:
    path = blank_form_path(definition.blank)
    with pdfplumber.open(path) as pdf:
        assert definition.version in pdf.metadata["Keywords"]
        assert len(pdf.pages) == definition.pages
        for page in pdf.pages:
            assert definition.version in page.extract_text()
        names = {a["title"] for page in pdf.pages for a in page.annots}
    assert names == {f.name for f in definition.fields}


@pytest.mark.parametrize("definition", definitions(), ids=lambda d: d.version)
def test_committed_blank_form_prints_its_definition(definition) -> None:
    """Every heading and label of the definition is printed on its page (regenerate with
    scripts/make_blank_forms.py after changing a definition)."""
    with pdfplumber.open(blank_form_path(definition.blank)) as pdf:
        pages = [" ".join(page.extract_text().split()) for page in pdf.pages]
    for section in definition.sections:
        page = pages[section.page - 1]
        assert section.heading in page
        for field in section.fields:
            assert field.label in page, field.label


def test_blank_form_read_back_lists_every_missing_field() -> None:
    parsed = read_pdf(blank_form_path("gpp-user-admin-certification.pdf").read_bytes())
    assert parsed.kind == "gpp_admin_form"
    codes = {(f.code, f.field) for f in parsed.findings}
    assert ("missing_field", "organisation_code") in codes
    assert ("not_signed", "signer") in codes


def test_blank_form_path_finds_shipped_forms_and_refuses_others() -> None:
    assert blank_form_path("pcn-user-admin-request").name == "pcn-user-admin-request.pdf"
    assert forms.blank_form_names() == sorted(d.blank for d in definitions())
    with pytest.raises(forms.blanks.UnknownBlankForm):
        blank_form_path("../../pyproject.toml")
    with pytest.raises(forms.blanks.UnknownBlankForm):
        blank_form_path("no-such-form.pdf")


# --------------------------------------------------------------------------- hostile files


LIMITS = PdfLimits(timeout_seconds=3, memory_mb=384, max_pages=20)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_becomes_its_own_finding(name: str) -> None:
    make, codes = HOSTILE[name]
    data = make()
    started = time.monotonic()
    parsed = read_pdf(data, LIMITS)
    assert time.monotonic() - started < LIMITS.timeout_seconds + 5
    assert parsed.kind is None
    assert len(parsed.findings) == 1
    assert parsed.findings[0].code in codes
    assert parsed.findings[0].message.endswith(".")
    # The caller, and the reader, are still fine: a good form reads next.
    good = read_pdf((CORPUS / "gpp-acroform.pdf").read_bytes(), LIMITS)
    assert good.kind == "gpp_admin_form" and not good.findings


def test_thousand_pages_are_refused_with_the_count() -> None:
    parsed = read_pdf(pages(1000), LIMITS)
    assert "1000 pages" in parsed.findings[0].message


def test_page_limit_is_configurable() -> None:
    data = pages(5)
    assert read_pdf(data, PdfLimits(max_pages=4)).findings[0].code == "pdf_too_large"
    assert read_pdf(data, PdfLimits(max_pages=5)).findings[0].code == "unknown_form"


def test_memory_limit_stops_the_worker_not_the_caller() -> None:
    # A stream small enough to pass the inflation check, under a tight memory limit.
    parsed = read_pdf(bomb(megabytes=60), PdfLimits(timeout_seconds=20, memory_mb=100))
    assert parsed.findings[0].code == "pdf_too_large"
    assert "memory" in parsed.fields["problem_detail"].lower()


def test_limits_from_service_config() -> None:
    from service.config import LimitsConfig

    limits = PdfLimits.from_config(
        LimitsConfig(pdf_timeout_seconds=7, pdf_memory_mb=256, pdf_max_pages=9)
    )
    assert limits == PdfLimits(timeout_seconds=7.0, memory_mb=256, max_pages=9)


def test_worker_is_reused_between_forms() -> None:
    data = (CORPUS / "pcn-acroform.pdf").read_bytes()
    read_pdf(data)
    before = {w.process.pid for w in POOL._idle}
    read_pdf(data)
    after = {w.process.pid for w in POOL._idle}
    assert before and before == after


def test_threads_read_in_parallel_through_the_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = ["gpp-acroform", "uar-flattened", "pcn-printed", "uar-acroform"] * 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        kinds = list(pool.map(lambda n: read_pdf((CORPUS / f"{n}.pdf").read_bytes()).kind, names))
    assert kinds == [_expected(CORPUS / f"{n}.pdf")["kind"] for n in names]


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_restricted_but_openable_pdf_is_read_and_password_protected_is_not(algorithm) -> None:
    from pypdf import PdfReader, PdfWriter

    def encrypted_copy(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=PdfReader(CORPUS / "gpp-acroform.pdf"))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    # "Restrict editing" (an owner password only) still opens without a password.
    assert read_pdf(encrypted_copy("")).fields["organisation_code"] == "A81001"
    assert [f.code for f in read_pdf(encrypted_copy("secret")).findings] == ["pdf_encrypted"]


@pytest.mark.parametrize(("state", "ticked"), [("/Checked", True), ("/Off", False)])
def test_checkbox_with_its_own_on_state(state: str, ticked: bool) -> None:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    writer = PdfWriter(clone_from=PdfReader(CORPUS / "gpp-acroform.pdf"))
    for ref in writer.pages[1]["/Annots"]:
        annot = ref.get_object()
        if annot.get("/T") == "declaration":  # as a viewer with its own state names writes it
            annot[NameObject("/V")] = NameObject(state)
            annot[NameObject("/AS")] = NameObject(state)
    out = io.BytesIO()
    writer.write(out)
    parsed = read_pdf(out.getvalue())
    assert parsed.fields["signer"]["declaration"] is ticked
    assert ("declaration_unticked" in [f.code for f in parsed.findings]) is not ticked
