"""What a PDF holds, read with pdfplumber: AcroForm values, widgets per page, words on the page.

This runs inside the sandboxed worker (forms/pdf_worker.py), never in the service itself:
it touches untrusted bytes. It returns plain JSON-able data; deciding what the values mean
happens in the parent (forms/pdf_reader.py).
"""

from __future__ import annotations

import io
from typing import Any

import pdfplumber
from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdftypes import PDFObjRef, resolve1
from pdfminer.psparser import PSLiteral
from pdfminer.utils import decode_text
from pdfplumber.utils.exceptions import PdfminerException

MAX_FIELDS = 2000
MAX_DEPTH = 12
MAX_WORDS_PER_PAGE = 5000
MAX_VALUE_CHARS = 500


class ExtractError(Exception):
    """A PDF that cannot be read; `code` is the finding code the parent reports."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _text(value: Any) -> str | bool | None:
    """A field value as text, or a checkbox state as a bool-like name."""
    value = resolve1(value)
    if isinstance(value, bytes):
        return decode_text(value)[:MAX_VALUE_CHARS]
    if isinstance(value, PSLiteral):
        name = value.name.decode("latin-1") if isinstance(value.name, bytes) else value.name
        return name not in ("Off", "No", "")
    if isinstance(value, list):  # multi-select choice fields
        parts = [p for p in (_text(v) for v in value[:20]) if isinstance(p, str)]
        return ", ".join(parts)
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    return None


def _walk_fields(refs: Any, prefix: str, depth: int, seen: set[int],
                 out: dict[str, str | bool | None]) -> None:
    for ref in resolve1(refs) or []:
        if len(out) >= MAX_FIELDS or depth > MAX_DEPTH:
            return
        if isinstance(ref, PDFObjRef):
            if ref.objid in seen:
                continue  # a field tree that loops back on itself
            seen.add(ref.objid)
        field = resolve1(ref)
        if not isinstance(field, dict):
            continue
        partial = _text(field.get("T"))
        name = prefix
        if isinstance(partial, str) and partial:
            name = f"{prefix}.{partial}" if prefix else partial
        kids = resolve1(field.get("Kids"))
        if kids and any(isinstance(resolve1(k), dict) and "T" in resolve1(k) for k in kids):
            _walk_fields(kids, name, depth + 1, seen, out)
            continue
        value = field.get("V")
        if value is None and field.get("AS") is not None:
            value = field.get("AS")
        if value is None and kids:
            states = [resolve1(k).get("AS") for k in kids if isinstance(resolve1(k), dict)]
            value = next((s for s in states if s is not None and _text(s)), None)
        if name:
            out[name] = _text(value) if value is not None else None


def acroform_values(pdf: pdfplumber.PDF) -> dict[str, str | bool | None]:
    """Every terminal field of the document's AcroForm, by fully qualified name."""
    acroform = resolve1(pdf.doc.catalog.get("AcroForm"))
    if not isinstance(acroform, dict):
        return {}
    out: dict[str, str | bool | None] = {}
    _walk_fields(acroform.get("Fields"), "", 0, set(), out)
    return out


def page_widgets(page: pdfplumber.page.Page) -> list[dict[str, Any]]:
    """The form widgets on one page: name, value and position (the page.annots view)."""
    found = []
    for annot in (resolve1(page.page_obj.annots) or [])[:MAX_FIELDS]:
        annot = resolve1(annot)
        if not isinstance(annot, dict):
            continue
        subtype = resolve1(annot.get("Subtype"))
        if not isinstance(subtype, PSLiteral) or subtype.name != "Widget":
            continue
        name = _text(annot.get("T"))
        value = annot.get("V")
        parent = resolve1(annot.get("Parent"))
        if not name and isinstance(parent, dict):
            name = _text(parent.get("T"))
            value = parent.get("V") if value is None else value
        if value is None:
            value = annot.get("AS")
        if isinstance(name, str) and name:
            found.append({"name": name, "value": _text(value) if value is not None else None})
    return found


def _page_count(pdf: pdfplumber.PDF) -> int:
    pages = resolve1(pdf.doc.catalog.get("Pages"))
    count = resolve1(pages.get("Count")) if isinstance(pages, dict) else None
    return count if isinstance(count, int) else 0


def _words(page: pdfplumber.page.Page) -> list[list[Any]]:
    words = page.extract_words(extra_attrs=["fontname"])[:MAX_WORDS_PER_PAGE]
    return [
        [w["text"], round(w["x0"], 1), round(w["x1"], 1), round(w["top"], 1),
         round(w["bottom"], 1), w["fontname"]]
        for w in words
    ]


def _is_white(color: Any) -> bool:
    values = color if isinstance(color, list | tuple) else [color]
    numbers = [v for v in values if isinstance(v, int | float)]
    if len(numbers) == 4:  # CMYK
        return not any(numbers)
    return bool(numbers) and all(v >= 0.95 for v in numbers)


def _marks(page: pdfplumber.page.Page) -> list[list[float]]:
    """Small drawn shapes that may be the tick in a checkbox: filled curves, diagonal lines.

    A flattened form often draws its ticks as paths rather than text.
    """
    found = []
    for shape in [*page.curves, *page.lines][:MAX_WORDS_PER_PAGE]:
        width, height = shape["x1"] - shape["x0"], shape["bottom"] - shape["top"]
        if width > 30 or height > 30:
            continue
        filled = shape.get("fill") and not _is_white(shape.get("non_stroking_color"))
        diagonal = shape["object_type"] == "line" and width > 2 and height > 2
        if filled or diagonal:
            found.append([round(shape["x0"], 1), round(shape["x1"], 1),
                          round(shape["top"], 1), round(shape["bottom"], 1)])
    return found


def _info(pdf: pdfplumber.PDF) -> dict[str, str]:
    return {str(k): v[:500] for k, v in pdf.metadata.items() if isinstance(v, str)}


def _open(data: bytes) -> pdfplumber.PDF:
    try:
        return pdfplumber.open(io.BytesIO(data))
    except PdfminerException as exc:
        cause = exc.args[0] if exc.args else exc
        if isinstance(cause, PDFPasswordIncorrect | PDFEncryptionError):
            raise ExtractError("pdf_encrypted", "the PDF is protected by a password") from exc
        raise ExtractError("pdf_unreadable", f"{type(cause).__name__}: {cause}") from exc


def extract(data: bytes, *, max_pages: int, marks: list[str]) -> dict[str, Any]:
    """Read a PDF's form values and, when they are not enough, the words on its pages.

    The words are read only when the AcroForm holds no values or the document does not say
    which form version it is (reading page text is most of the cost).
    """
    with _open(data) as pdf:
        declared = _page_count(pdf)
        if declared > max_pages:
            raise ExtractError("pdf_too_large", f"{declared} pages")
        info = _info(pdf)
        values = acroform_values(pdf)
        pages = pdf.pages
        if len(pages) > max_pages:
            raise ExtractError("pdf_too_large", f"{len(pages)} pages")
        widgets = [page_widgets(page) for page in pages]
        has_values = any(v not in (None, "", False) for v in values.values()) or any(
            w["value"] not in (None, "", False) for ws in widgets for w in ws
        )
        stored = " ".join(info.values()).casefold()
        marked = any(mark.casefold() in stored for mark in marks)
        result: dict[str, Any] = {
            "pages": len(pages),
            "info": info,
            "acroform": values,
            "widgets": widgets,
            "words": None,
            "marks": None,
            "chars": None,
            "images": None,
        }
        if not (has_values and marked):
            result["words"] = [_words(page) for page in pages]
            result["marks"] = [_marks(page) for page in pages]
            result["chars"] = sum(len(page.chars) for page in pages)
            result["images"] = sum(len(page.images) for page in pages)
        return result


