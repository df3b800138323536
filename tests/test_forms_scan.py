"""Scanned forms read by OCR: the scan corpus reads right or goes to a person, bombs and
unsupported photos are refused with a reason, and OCR stays inside the sandbox's limits."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from forms import PdfLimits, read_attachment
from forms.sandbox import WorkerFailure, WorkerPool
from forms.scan_pages import image_kind
from forms.scan_render import PageUnavailable, render_page
from tests.scan_checks import dotted, misread, unflagged

ROOT = Path(__file__).resolve().parents[1]
SCANS = ROOT / "tests" / "corpus" / "scans"
SAMPLES = sorted(p for p in SCANS.iterdir() if not p.name.endswith(".json"))


def _expected(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.stem + ".expected.json").read_text(encoding="utf-8"))


def test_scan_corpus_is_there() -> None:
    assert len(SAMPLES) >= 5
    assert {p.suffix for p in SAMPLES} >= {".pdf", ".tiff", ".png", ".jpg"}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_scan_reads_right_or_goes_to_a_person(path: Path) -> None:
    expected = _expected(path)
    parsed = read_attachment(path.read_bytes())
    json.dumps(parsed.fields)  # stored as JSON on the case
    assert (parsed.kind, parsed.source, parsed.form_version) == (
        expected["kind"],
        "ocr",
        expected["form_version"],
    )
    fields = expected["fields"]
    if expected.get("first_page_only"):
        assert any(f.code == "part_missing" for f in parsed.findings)
        fields = {k: fields[k] for k in ("organisation_code", "organisation_name")}
    assert unflagged(parsed, fields) == {}
    readings = parsed.fields["readings"]
    assert readings and all(r["source"] == "ocr" for r in readings.values())
    assert all(0 <= r["confidence"] <= 100 for r in readings.values())
    # Most of a typed form is read exactly, even from a turned, noisy copy.
    wrong = misread(parsed, fields)
    assert len(wrong) <= len(dotted(fields)) // 2, wrong


def test_turned_pages_are_stood_upright() -> None:
    parsed = read_attachment((SCANS / "pcn-pdf-300dpi-upside-down.pdf").read_bytes())
    assert parsed.fields["scan"]["turned"] == [180, 180]
    parsed = read_attachment((SCANS / "gpp-jpeg-150dpi-sideways.jpg").read_bytes())
    assert parsed.fields["scan"]["turned"] in ([90], [270])


def test_skew_is_measured() -> None:
    parsed = read_attachment((SCANS / "gpp-tiff-200dpi-rot-3.tiff").read_bytes())
    first, second = parsed.fields["scan"]["skew"]
    # Turned -3° (clockwise) and 1°: lines fall, then rise, to the right.
    assert 2.0 < first < 4.0 and -2.0 < second < -0.3


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: refused from its header, never decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(100_000, 100_000), (30_000, 10), (9_000, 9_000)])
def test_bomb_image_is_refused_with_a_reason(size: tuple[int, int]) -> None:
    parsed = read_attachment(_png_header_only(*size))
    assert parsed.kind is None
    (finding,) = parsed.findings
    assert finding.code == "image_too_large"
    assert "pixels" in finding.message or "pixels" in parsed.fields["problem_detail"]


def test_tiff_with_too_many_pages_is_refused() -> None:
    pages = [Image.new("1", (700, 700), 1) for _ in range(9)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    parsed = read_attachment(out.getvalue(), PdfLimits(ocr_max_pages=6))
    assert parsed.findings[0].code == "image_too_large"


def test_heic_photo_is_read() -> None:
    """An iPhone photo of the first page (HEIC), read like a JPEG."""
    photo = Image.open(SCANS / "gpp-jpeg-150dpi-sideways.jpg")
    out = io.BytesIO()
    import pillow_heif

    pillow_heif.from_pillow(photo.convert("RGB")).save(out, quality=80)
    assert image_kind(out.getvalue()) == "heif"
    parsed = read_attachment(out.getvalue())
    assert parsed.kind == "gpp_admin_form" and parsed.source == "ocr"
    assert parsed.fields["organisation_name"] == "Oakwood Lane Surgery"


def test_damaged_heic_is_a_finding() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    assert image_kind(heic) == "heif"
    parsed = read_attachment(heic)
    assert parsed.kind is None and parsed.findings[0].code == "image_unreadable"


def test_damaged_image_is_a_finding() -> None:
    parsed = read_attachment(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    assert parsed.kind is None and parsed.findings[0].code == "image_unreadable"


def test_ocr_time_limit_stops_the_worker_not_the_caller() -> None:
    data = (SCANS / "uar-pdf-150dpi-rot2.pdf").read_bytes()
    parsed = read_attachment(data, PdfLimits(ocr_timeout_seconds=0.05))
    assert parsed.kind is None and parsed.findings[0].code == "pdf_timeout"
    # The pool recovers: the next scan is read.
    assert read_attachment(data).kind == "user_admin_form"


def test_confidence_threshold_is_configurable() -> None:
    data = (SCANS / "gpp-tiff-200dpi-rot-3.tiff").read_bytes()
    strict = read_attachment(data, PdfLimits(ocr_min_confidence=99.5))
    doubted = {f.field for f in strict.findings if f.code == "ocr_low_confidence"}
    assert "signer.date" in doubted or "signer.name" in doubted
    assert strict.fields["scan"]["min_confidence"] == 99.5


def test_page_is_drawn_for_the_case_page() -> None:
    page = render_page((SCANS / "gpp-tiff-200dpi-rot-3.tiff").read_bytes(), 1, width=400)
    assert page.pages == 2 and page.png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(page.png)).width == 400
    with pytest.raises(PageUnavailable):
        render_page((SCANS / "gpp-tiff-200dpi-rot-3.tiff").read_bytes(), 5)


def test_confidence_threshold_config_is_checked() -> None:
    from service.config import ConfigError, from_mapping

    config = from_mapping({"limits": {"ocr_min_confidence": 75}})
    assert PdfLimits.from_config(config.limits).ocr_min_confidence == 75
    with pytest.raises(ConfigError, match="ocr_min_confidence"):
        from_mapping({"limits": {"ocr_min_confidence": 150}})


def test_logo_in_a_signature_is_not_taken_for_a_form() -> None:
    from types import SimpleNamespace
    from typing import cast

    from core.inbound import IncomingMail
    from workflow.opening import read_forms

    logo = io.BytesIO()
    Image.new("RGB", (240, 80), (0, 94, 184)).save(logo, "PNG")
    parsed = read_attachment(logo.getvalue())
    assert parsed.kind is None and parsed.findings[0].code == "not_a_page"
    page = (SCANS / "uar-png-200dpi-page1.png").read_bytes()
    mail = SimpleNamespace(
        attachments=[
            SimpleNamespace(filename="logo.png", content_type="image/png", data=logo.getvalue()),
            SimpleNamespace(filename="form.png", content_type="image/png", data=page),
        ]
    )
    recognised, unreadable = read_forms(cast(IncomingMail, mail))
    # The logo is left alone (the body is read instead when no form is found); the scanned
    # page is read as a form.
    assert unreadable == []
    assert [(name, r.kind) for name, r in recognised] == [("form.png", "user_admin_form")]


def _logo() -> bytes:
    logo = io.BytesIO()
    Image.new("RGB", (240, 80), (0, 94, 184)).save(logo, "PNG")
    return logo.getvalue()


OCR = {"op": "ocr", "max_pages": 6, "timeout": 30}


def _worker_after(pool: WorkerPool, data: bytes) -> tuple[str, int | None]:
    """The code the worker answered `data` with, and the process id of the worker the pool
    kept afterwards (None: it was let go)."""
    result = pool.run(data, PdfLimits(), [], OCR)
    assert not isinstance(result, WorkerFailure)
    kept = [worker.process.pid for worker in pool._idle]
    return str(result.get("code")), kept[0] if kept else None


def test_a_worker_that_refused_a_logo_is_kept_for_the_next_document() -> None:
    # Most emails carry a logo in their signature; starting a worker for each cost a
    # quarter of a second an email.
    pool = WorkerPool(size=1)
    try:
        code, first = _worker_after(pool, _logo())
        assert code == "not_a_page" and first is not None
        assert _worker_after(pool, _logo()) == ("not_a_page", first)
        too_many = (SCANS / "gpp-tiff-200dpi-rot-3.tiff").read_bytes()
        limits = PdfLimits(ocr_max_pages=1)
        result = pool.run(too_many, limits, [], {**OCR, "max_pages": limits.ocr_max_pages})
        assert not isinstance(result, WorkerFailure) and result["code"] == "image_too_large"
        assert [w.process.pid for w in pool._idle] == [first]
    finally:
        pool.close()


def test_a_worker_whose_parser_failed_is_replaced() -> None:
    pool = WorkerPool(size=1)
    try:
        _, first = _worker_after(pool, _logo())
        # PIL's own error, wrapped: the worker may not be as it was, and starts afresh.
        assert _worker_after(pool, b"\xff\xd8\xff\xe0" + b"\x00" * 200) == (
            "image_unreadable",
            None,
        )
        _, second = _worker_after(pool, _logo())
        assert second is not None and second != first
    finally:
        pool.close()


def _names_pdf(names: int) -> bytes:
    """A PDF of no pages whose catalog holds `names` distinct names: pdfminer keeps every
    name it reads for the life of its process."""
    body = b" ".join(b"/N%07d 0" % i for i in range(names))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /X << " + body + b" >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 3\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_a_worker_grown_past_half_its_memory_is_replaced() -> None:
    # What a document leaves in a worker (pdfminer's names) must not leave the next form
    # too little room: a worker past half its limit is not kept, whatever it answered.
    limits = PdfLimits(memory_mb=160)
    form = (ROOT / "tests/corpus/forms/gpp-acroform.pdf").read_bytes()
    pool = WorkerPool(size=1)
    try:
        assert pool.run(form, limits, [], None)["ok"] is True  # type: ignore[index]
        kept = [w.process.pid for w in pool._idle]
        assert pool.run(form, limits, [], None)["ok"] is True  # type: ignore[index]
        assert [w.process.pid for w in pool._idle] == kept  # a small worker is kept
        grown = pool.run(_names_pdf(150_000), limits, [], None)
        assert not isinstance(grown, WorkerFailure) and grown["ok"] is True
        assert grown["rss_kb"] > 80 * 1024 and pool._idle == []  # not kept
        assert pool.run(form, limits, [], None)["ok"] is True  # type: ignore[index]
        assert [w.process.pid for w in pool._idle] != kept  # read in a new one
    finally:
        pool.close()


def _read_here(path: Path) -> dict[str, Any]:
    """A scan read by OCR in this process (as the worker reads it), without the sandbox."""
    from forms.scan_worker import ocr

    answer = ocr({"max_pages": 6}, path.read_bytes())
    assert answer["ok"], answer
    return dict(answer["ocr"])


def test_model_is_loaded_once_and_kept() -> None:
    from forms import ocr_library

    _read_here(SCANS / "gpp-tiff-200dpi-rot-3.tiff")
    api = ocr_library.ENGINES.apis["eng"]
    _read_here(SCANS / "uar-png-200dpi-page1.png")
    assert ocr_library.ENGINES.apis["eng"] is api  # the second scan used the same model


def test_tesseract_program_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from forms import ocr_engine, ocr_library

    monkeypatch.setattr(ocr_library, "ENGINES", ocr_library._Engines())
    monkeypatch.setattr(ocr_library, "TESSDATA_DIRS", ())
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    runs: list[list[str]] = []
    program = ocr_engine._run

    def counted(image: Image.Image, args: list[str], timeout: float) -> str:
        runs.append(args)
        return program(image, args, timeout)

    monkeypatch.setattr(ocr_engine, "_run", counted)
    path = SCANS / "pcn-pdf-300dpi-upside-down.pdf"
    form = _read_here(path)
    assert ocr_library.ENGINES.broken and runs
    assert any("osd" in args for args in runs)  # the orientation came from the program too
    assert form["turned"] == [180, 180] and form["form_version"] == _expected(path)["form_version"]
    values = {k: r["value"] for k, r in form["readings"].items()}
    assert values["organisation_code"] == _expected(path)["fields"]["organisation_code"]


def test_a_reading_past_its_time_is_stopped_in_the_worker() -> None:
    from forms.ocr_engine import OcrError, read_words

    image = Image.open(SCANS / "uar-png-200dpi-page1.png").convert("L")
    with pytest.raises(OcrError) as stopped:
        read_words(image, timeout=0.01)
    assert stopped.value.code == "pdf_timeout"
    assert len(read_words(image, timeout=30)) > 50  # the kept model still reads
