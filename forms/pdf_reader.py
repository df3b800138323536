"""read_pdf: a PDF attachment in, a ParsedRequest out, whatever the file holds.

Cheap checks run here (empty file, not a PDF); everything that parses the file runs in the
sandboxed worker. What the worker returns is then interpreted against the form
definitions: which form and version it is, then its AcroForm values, or failing those the
words on its pages located by their labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from forms.definitions import FormDefinition, definitions, version_marks
from forms.form_fields import build_request
from forms.model import Finding, ParsedRequest
from forms.page_text import full_text, page_form, read_fields
from forms.readahead import ReadAhead, current
from forms.sandbox import POOL, PdfLimits, WorkerFailure
from forms.scan_pages import image_kind
from forms.scan_reader import read_scan

# Fewer words than this on image pages, with no form found, means a scan.
SCAN_MAX_WORDS = 25
# Share of a definition's AcroForm names a document must hold to be taken for that form.
FIELD_NAME_MATCH = 0.6

PROBLEMS = {
    "empty_attachment": "The attached file is empty, so there is no form to read. "
    "Please attach the completed form again.",
    "not_a_pdf": "The attached file is not a PDF, so we cannot read it as a form. "
    "Please send the completed form as a PDF.",
    "pdf_encrypted": "The PDF is protected by a password, so we cannot open it. "
    "Please send the form again without a password.",
    "pdf_unreadable": "The PDF is damaged, so we cannot read it. Please save the completed "
    "form again and send it as a new attachment.",
    "pdf_truncated": "The PDF is incomplete (the file seems to have been cut short), so we "
    "cannot read it. Please attach the completed form again.",
    "pdf_too_large": "The PDF is too large or too complex for us to read. Please send only "
    "the completed form, saved as an ordinary PDF.",
    "pdf_too_many_pages": "The PDF has {pages} pages, more than the {limit} a form can have. "
    "Please send only the completed form.",
    "pdf_timeout": "The PDF took too long to read, so we stopped. Please save the completed "
    "form as an ordinary PDF and send it again.",
    "scanned_form": "The form is a scan (a picture of the pages), so it cannot be read "
    "automatically; a member of our team will read it. Next time, please fill "
    "in the form on screen and send the PDF itself.",
    "unknown_form": "The PDF is not one of PCSE's user administrator forms, so we could not "
    "read a request from it. Please use the current form.",
    "blank_pdf": "The PDF has no text or images on its pages, so there is no form to read.",
}


def _failed(
    code: str, message: str, source: str = "pdf", detail: str | None = None
) -> ParsedRequest:
    fields: dict[str, Any] = {
        "nominees": [],
        "main_contact": None,
        "signer": None,
        "organisation_code": None,
        "organisation_name": None,
    }
    if detail:
        fields["problem_detail"] = detail
    return ParsedRequest(kind=None, fields=fields, findings=[Finding(code, message)], source=source)


def _looks_truncated(data: bytes) -> bool:
    return b"%%EOF" not in data[-2048:]


def _worker_problem(code: str, detail: str, data: bytes, limits: PdfLimits) -> ParsedRequest:
    if code == "pdf_too_large" and detail.endswith(" pages"):
        pages = detail.split()[0]
        message = PROBLEMS["pdf_too_many_pages"].format(pages=pages, limit=limits.max_pages)
        return _failed(code, message, detail=detail)
    if code == "pdf_unreadable" and _looks_truncated(data):
        return _failed(code, PROBLEMS["pdf_truncated"], detail=detail)
    return _failed(code, PROBLEMS.get(code, PROBLEMS["pdf_unreadable"]), detail=detail)


def _by_marks(text: str) -> FormDefinition | None:
    folded = " ".join(text.split()).casefold()
    for definition in definitions():
        if definition.version.casefold() in folded:
            return definition
    return None


def _field_names(extracted: dict[str, Any]) -> set[str]:
    names = set(extracted.get("acroform") or {})
    names.update(w["name"] for page in extracted.get("widgets") or [] for w in page)
    return names | {name.rsplit(".", 1)[-1] for name in names}


def identify(extracted: dict[str, Any]) -> FormDefinition | None:
    """Which form version this is: by the mark stored in the document, the mark printed on
    its pages, or failing both the AcroForm field names it carries."""
    stored = _by_marks(" ".join(extracted.get("info", {}).values()))
    if stored:
        return stored
    words = extracted.get("words")
    if words:
        printed = _by_marks(" ".join(str(w[0]) for page in words for w in page))
        if printed:
            return printed
    names = _field_names(extracted)
    best, best_share = None, 0.0
    for definition in definitions():
        wanted = {f.name for f in definition.fields}
        share = len(wanted & names) / len(wanted)
        if share > best_share:
            best, best_share = definition, share
    return best if best_share >= FIELD_NAME_MATCH else None


def _as_checkbox(value: Any) -> bool:
    """A checkbox whose "on" state has its own name (/Checked, /Ja) is ticked too."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().casefold() not in ("", "off", "no")


def _acroform_reading(
    definition: FormDefinition, extracted: dict[str, Any]
) -> tuple[dict[str, Any], set[str]] | None:
    """Values by field key and the parts present, or None when no field holds a value."""
    by_name: dict[str, Any] = {}
    for name, value in (extracted.get("acroform") or {}).items():
        by_name.setdefault(name, value)
        by_name.setdefault(name.rsplit(".", 1)[-1], value)
    on_pages: set[str] = set()
    for page in extracted.get("widgets") or []:
        for widget in page:
            on_pages.add(widget["name"])
            if by_name.get(widget["name"]) in (None, ""):
                by_name[widget["name"]] = widget["value"]
    values = {
        f.key: _as_checkbox(by_name.get(f.name)) if f.type == "checkbox" else by_name.get(f.name)
        for f in definition.fields
    }
    if not any(v not in (None, "", False) for v in values.values()):
        return None
    present = on_pages or set(by_name)
    parts = {f.part for f in definition.fields if f.name in present}
    return values, parts


def _not_as_shown(
    definition: FormDefinition, extracted: dict[str, Any], values: dict[str, Any]
) -> list[Finding]:
    """A finding for each value read whose box on the page shows something else
    (forms.pdf_appearance): the approver would see one thing and the service read another."""
    unshown = set(extracted.get("unshown") or [])
    for page in extracted.get("widgets") or []:
        unshown.update(w["name"] for w in page if w.get("shown") is False)
    # Two fields with one name (a decoy off the page beside the box that shows): which of
    # them was read cannot be told.
    last = Counter(name.rsplit(".", 1)[-1] for name in extracted.get("acroform") or {})
    unshown.update(name for name, times in last.items() if times > 1)
    return [
        Finding(
            "not_as_shown",
            f"The form's {f.label} box shows something other than the value saved in it "
            "(the value may be too long to show in the box, or the PDF was changed after it "
            "was filled in): please fill the form in again, keeping each value within its "
            "box, save it in a PDF viewer, and send it.",
            f.key,
        )
        for f in definition.fields
        if values.get(f.key) not in (None, "", False)
        and (f.name in unshown or any(n.rsplit(".", 1)[-1] == f.name for n in unshown))
    ]


def interpret(extracted: dict[str, Any]) -> ParsedRequest:
    """The request a successfully extracted PDF holds."""
    definition = identify(extracted)
    words = extracted.get("words")
    if definition is None:
        word_count = sum(len(page) for page in words or [])
        if words is not None and (extracted.get("images") or 0) > 0 and word_count < SCAN_MAX_WORDS:
            return _failed("scanned_form", PROBLEMS["scanned_form"], source="scan")
        if words is not None and word_count == 0:
            return _failed("unknown_form", PROBLEMS["blank_pdf"])
        return _failed("unknown_form", PROBLEMS["unknown_form"])
    acro = _acroform_reading(definition, extracted)
    if acro is not None:
        values, parts = acro
        request = build_request(definition, values, parts, "acroform")
        request.findings.extend(_not_as_shown(definition, extracted, values))
        return request
    form = page_form(extracted)
    if not form.words:
        # Known by its stored mark or field names, yet nothing to read on the pages.
        if extracted.get("images"):
            return _failed("scanned_form", PROBLEMS["scanned_form"], source="scan")
        return _failed("unknown_form", PROBLEMS["blank_pdf"])
    values, parts = read_fields(definition, form)
    if not _by_marks(full_text(form.words)) and not parts:
        return _failed("unknown_form", PROBLEMS["unknown_form"])
    return build_request(definition, values, parts, "page_text")


def read_pdf(data: bytes, limits: PdfLimits | None = None) -> ParsedRequest:
    """Read a PDF form; every problem, hostile files included, comes back as a finding."""
    limits = limits or PdfLimits()
    if not data or not data.strip():
        return _failed("empty_attachment", PROBLEMS["empty_attachment"])
    if b"%PDF-" not in data[:1024]:
        return _failed("not_a_pdf", PROBLEMS["not_a_pdf"])
    result = POOL.run(data, limits, version_marks())
    if isinstance(result, WorkerFailure):
        return _worker_problem(result.code, result.detail, data, limits)
    if not result.get("ok"):
        return _worker_problem(str(result.get("code")), str(result.get("detail", "")), data, limits)
    request = interpret(result)
    if any(f.code == "scanned_form" for f in request.findings):
        # Pages with no usable text: read them by OCR, in the same sandbox.
        return read_scan(data, limits)
    return request


def is_form_file(content_type: str, filename: str, data: bytes) -> bool:
    """A PDF, or an image a scanned or photographed form may come as."""
    return (
        content_type.lower() == "application/pdf"
        or filename.lower().endswith(".pdf")
        or data[:5] == b"%PDF-"
        or image_kind(data) is not None
    )


def read_attachment(data: bytes, limits: PdfLimits | None = None) -> ParsedRequest:
    """Read an attached form: a PDF, or a scan sent as an image (JPEG, PNG, TIFF). One the
    batch being worked started reading ahead (`read_ahead`) is taken from there."""
    limits = limits or PdfLimits()
    ahead = current()
    if ahead is not None:
        found = ahead.take(data, limits)
        if found is not None:
            return found
    return _read_attachment_now(data, limits)


def _read_attachment_now(data: bytes, limits: PdfLimits) -> ParsedRequest:
    if image_kind(data) is not None:
        return read_scan(data, limits)
    return read_pdf(data, limits)


def read_ahead(
    documents: Iterable[bytes],
    limits: PdfLimits | None = None,
    guard: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> ReadAhead:
    """Start reading these attached forms side by side, one per slot of the worker pool,
    each reading inside `guard()`; `forms.reading(ahead)` makes `read_attachment` take them
    from there."""
    return ReadAhead(documents, limits or PdfLimits(), _read_attachment_now, POOL.size, guard)
