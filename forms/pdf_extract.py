"""What a PDF holds, read with pdfplumber: AcroForm values, widgets per page, words on the page.

This runs inside the sandboxed worker (forms/pdf_worker.py), never in the service itself:
it touches untrusted bytes. It returns plain JSON-able data; deciding what the values mean
happens in the parent (forms/pdf_reader.py).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import Any

import pdfplumber
from pdfminer.layout import LTChar, LTContainer, LTCurve, LTImage, LTLine, LTRect
from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdftypes import LITERALS_FLATE_DECODE, PDFObjRef, PDFStream, resolve1
from pdfminer.psparser import PSLiteral
from pdfminer.utils import decode_text
from pdfplumber.utils.exceptions import PdfminerException

from forms.appearance_text import AppearanceReader
from forms.pdf_appearance import MAX_APPEARANCE, annotation_rect, drawn, shows
from forms.pdf_ink import inked_chars
from forms.pdf_shown import (
    hidden_groups,
    is_backing,
    seen_chars,
    shown_layout,
    visible_area,
)

MAX_FIELDS = 2000
MAX_DEPTH = 12
MAX_WORDS_PER_PAGE = 5000
MAX_VALUE_CHARS = 500
WORD_TOLERANCE = 3.0  # pdfplumber's default x and y tolerance
# No stream of a form inflates to more than this; a scanned A4 page in colour is about 26 MB.
MAX_INFLATED = 64 * 1024 * 1024
MAX_XOBJECTS = 200


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
        # A checkbox's state (/Yes, /Off) or a radio button's chosen export name.
        name = value.name.decode("latin-1") if isinstance(value.name, bytes) else value.name
        if name in ("Off", "No", ""):
            return False
        return True if name in ("Yes", "On", "1", "True") else name[:MAX_VALUE_CHARS]
    if isinstance(value, list):  # multi-select choice fields
        parts = [p for p in (_text(v) for v in value[:20]) if isinstance(p, str)]
        return ", ".join(parts)
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    return None


@dataclass
class _Fields:
    """What the walk of the field tree finds."""

    values: dict[str, str | bool | None] = field(default_factory=dict)
    # Fields whose widgets draw something other than the value (forms.pdf_appearance).
    # Checked whatever /NeedAppearances says: viewers that do not draw values afresh (iOS
    # Quick Look among them) show the stale appearance.
    unshown: set[str] = field(default_factory=set)


def _walk_fields(
    refs: Any, prefix: str, depth: int, seen: set[int], found: _Fields, reader: AppearanceReader
) -> None:
    out = found.values
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
            _walk_fields(kids, name, depth + 1, seen, found, reader)
            continue
        value = field.get("V")
        if value is None and field.get("AS") is not None:
            value = field.get("AS")
        if value is None and kids:
            states = [resolve1(k).get("AS") for k in kids if isinstance(resolve1(k), dict)]
            value = next((s for s in states if s is not None and _text(s)), None)
        if name:
            out[name] = _as_drawn(name, value, field, found, reader)


def _widgets_of(field: dict[str, Any]) -> list[dict[str, Any]]:
    """A terminal field's widgets: the field itself, or its kids."""
    if "Rect" in field or "AP" in field:
        return [field]
    kids = resolve1(field.get("Kids")) or []
    return [k for k in (resolve1(kid) for kid in kids[:MAX_FIELDS]) if isinstance(k, dict)]


def _as_drawn(
    name: str, saved: Any, field: dict[str, Any], found: _Fields, reader: AppearanceReader
) -> str | bool | None:
    """The value (`saved`, as the PDF holds it) as the page shows it: none where no widget
    is drawn, and the field noted in `found.unshown` where a drawn widget shows something
    else."""
    value = _text(saved) if saved is not None else None
    widgets = _widgets_of(field)
    shown = [w for w in widgets if drawn(w)]
    if widgets and not shown:
        return None
    checked = isinstance(value, str) and value.strip()
    if (checked and not all(shows(w, str(value), reader) for w in shown)) or not _state_shown(
        shown, saved
    ):
        found.unshown.add(name)
    return value


def _state_shown(widgets: list[dict[str, Any]], saved: Any) -> bool:
    """Does a ticked box (or a chosen radio button) draw itself ticked? Its saved state
    (/V) and the state its drawn `widgets` show (/AS) are kept apart: a box saved ticked
    may draw empty."""
    state = resolve1(saved)
    if not isinstance(state, PSLiteral) or _text(state) is False:
        return True
    drawn_states = [resolve1(w.get("AS")) for w in widgets if w.get("AS") is not None]
    return not drawn_states or any(
        isinstance(s, PSLiteral) and s.name == state.name for s in drawn_states
    )


def acroform_values(pdf: pdfplumber.PDF, reader: AppearanceReader) -> _Fields:
    """Every terminal field of the document's AcroForm, by fully qualified name."""
    acroform = resolve1(pdf.doc.catalog.get("AcroForm"))
    if not isinstance(acroform, dict):
        return _Fields()
    found = _Fields()
    _walk_fields(acroform.get("Fields"), "", 0, set(), found, reader)
    return found


def page_widgets(page: pdfplumber.page.Page, reader: AppearanceReader) -> list[dict[str, Any]]:
    """The form widgets on one page with their names and values: what pdfplumber's
    page.annots lists, read without resolving every object each annotation points to. A
    widget under another annotation drawn on the page (a stamp, a box of its own text) is
    not shown: which of the two a viewer draws on top differs from viewer to viewer. So is
    one under another widget (a button drawing another address over the box)."""
    found = []
    annots = [a for a in (resolve1(a) for a in (resolve1(page.page_obj.annots) or [])) if a]
    annots = [a for a in annots[:MAX_FIELDS] if isinstance(a, dict)]
    covers = [
        (index, annotation_rect(a))
        for index, a in enumerate(annots)
        if _subtype(a) not in _UNDRAWN_KINDS and drawn(a)
    ]
    for index, annot in enumerate(annots):
        if _subtype(annot) != "Widget" or not drawn(annot):
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
            text = _text(value) if value is not None else None
            # A value read from the page's widget is held to what the widget shows too.
            shown = not isinstance(text, str) or not text.strip() or shows(annot, text, reader)
            shown = shown and _state_shown([annot], value)
            shown = shown and not any(
                _covered(annotation_rect(annot), cover) for other, cover in covers if other != index
            )
            found.append({"name": name, "value": text, "shown": shown})
    return found


# Annotations that draw nothing over a page's content: a link's area, a note's pop-up.
_UNDRAWN_KINDS = frozenset({"Link", "Popup"})
# How much of a widget another annotation may lie over (borders that touch) and still not
# hide it.
_MOST_COVERED = 0.2


def _subtype(annot: dict[str, Any]) -> str | None:
    subtype = resolve1(annot.get("Subtype"))
    return str(subtype.name) if isinstance(subtype, PSLiteral) else None


def _covered(box: tuple[float, ...] | None, cover: tuple[float, ...] | None) -> bool:
    """Does `cover` lie over more than a border's worth of `box`? (A rectangle that cannot
    be read: assumed to.)"""
    if box is None or cover is None:
        return True
    wide = min(box[2], cover[2]) - max(box[0], cover[0])
    high = min(box[3], cover[3]) - max(box[1], cover[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return wide > 0 and high > 0 and wide * high > _MOST_COVERED * max(area, 1e-9)


def _page_count(pdf: pdfplumber.PDF) -> int:
    pages = resolve1(pdf.doc.catalog.get("Pages"))
    count = resolve1(pages.get("Count")) if isinstance(pages, dict) else None
    return count if isinstance(count, int) else 0


@dataclass
class PageContent:
    """What one page draws: its characters as words, small shapes, and how many images."""

    words: list[list[Any]] = field(default_factory=list)
    marks: list[list[float]] = field(default_factory=list)
    chars: int = 0
    images: int = 0


def _is_mark(shape: LTCurve) -> bool:
    """A small drawn shape that may be the tick in a checkbox: a filled curve or a diagonal
    line (flattened forms often draw their ticks as paths rather than text)."""
    width, height = shape.x1 - shape.x0, shape.y1 - shape.y0
    if width > 30 or height > 30 or isinstance(shape, LTRect):
        return False
    if isinstance(shape, LTLine):
        return width > 2 and height > 2
    return is_backing(shape)


def _walk(
    objects: Any,
    height: float,
    content: PageContent,
    chars: list[LTChar],
    depth: int = 0,
    *,
    backings: list[tuple[float, float, float, float]],
) -> None:
    for obj in objects:
        if isinstance(obj, LTChar):
            chars.append(obj)
        elif isinstance(obj, LTImage):
            content.images += 1
            backings.append(obj.bbox)
        elif isinstance(obj, LTCurve):
            if is_backing(obj):
                backings.append(obj.bbox)
            if _is_mark(obj) and len(content.marks) < MAX_WORDS_PER_PAGE:
                content.marks.append(
                    [
                        round(obj.x0, 1),
                        round(obj.x1, 1),
                        round(height - obj.y1, 1),
                        round(height - obj.y0, 1),
                    ]
                )
        elif isinstance(obj, LTContainer) and depth < MAX_DEPTH:
            _walk(obj, height, content, chars, depth + 1, backings=backings)


def _lines(chars: list[LTChar]) -> list[list[LTChar]]:
    """Characters grouped into lines (tops within the tolerance), each left to right."""
    lines: list[list[LTChar]] = []
    for char in sorted(chars, key=lambda c: (-c.y1, c.x0)):
        if lines and abs(lines[-1][0].y1 - char.y1) <= WORD_TOLERANCE:
            lines[-1].append(char)
        else:
            lines.append([char])
    return [sorted(line, key=lambda c: c.x0) for line in lines]


def _word(chars: list[LTChar], height: float) -> list[Any]:
    return [
        "".join(c.get_text() for c in chars),
        round(min(c.x0 for c in chars), 1),
        round(max(c.x1 for c in chars), 1),
        round(height - max(c.y1 for c in chars), 1),
        round(height - min(c.y0 for c in chars), 1),
        chars[0].fontname,
    ]


def _words(chars: list[LTChar], height: float) -> list[list[Any]]:
    """Characters joined into words as pdfplumber's extract_words does: split at spaces, at
    gaps wider than the tolerance, and where the font changes."""
    words: list[list[Any]] = []
    for line in _lines(chars):
        current: list[LTChar] = []
        for char in line:
            text = char.get_text()
            if current and (
                text.isspace()
                or char.x0 - current[-1].x1 > WORD_TOLERANCE
                or char.fontname != current[-1].fontname
            ):
                words.append(_word(current, height))
                current = []
            if not text.isspace():
                current.append(char)
        if current:
            words.append(_word(current, height))
    return words[:MAX_WORDS_PER_PAGE]


def _page_streams(page: pdfplumber.page.Page) -> list[PDFStream]:
    streams = [
        s for s in (resolve1(c) for c in page.page_obj.contents or []) if isinstance(s, PDFStream)
    ]
    resources = resolve1(page.page_obj.resources) or {}
    xobjects = resolve1(resources.get("XObject")) if isinstance(resources, dict) else None
    if isinstance(xobjects, dict):
        for ref in list(xobjects.values())[:MAX_XOBJECTS]:
            stream = resolve1(ref)
            if isinstance(stream, PDFStream):
                streams.append(stream)
    return streams


def _inflated_size(data: bytes) -> int:
    """How large a zlib stream inflates, counted a megabyte at a time (never held whole),
    stopping once past the limit; 0 for a damaged stream (pdfminer copes or fails alone)."""
    inflater = zlib.decompressobj()
    step = 1024 * 1024
    try:
        total = len(inflater.decompress(data, step))
        while inflater.unconsumed_tail and total <= MAX_INFLATED:
            total += len(inflater.decompress(inflater.unconsumed_tail, step))
    except zlib.error:
        return 0
    return total


def check_inflation(page: pdfplumber.page.Page) -> None:
    """Refuse a page whose compressed streams inflate beyond any form's (a decompression
    bomb) before the parser tries: pdfminer would inflate it whole, and its fallback for
    damaged streams works a byte at a time."""
    for stream in _page_streams(page):
        data = stream.rawdata
        filters = stream.get_filters() if data is not None else []
        if data is None or not filters or filters[0][0] not in LITERALS_FLATE_DECODE:
            continue
        if stream.decipher and stream.objid is not None and stream.genno is not None:
            data = stream.decipher(stream.objid, stream.genno, data, stream.attrs)
        if _inflated_size(data) > MAX_INFLATED:
            raise ExtractError(
                "pdf_too_large",
                f"a stream inflates to more than {MAX_INFLATED // (1024 * 1024)} MB",
            )


def page_content(
    page: pdfplumber.page.Page, hidden_groups: frozenset[int], drawn: Any
) -> PageContent:
    """The page's words with their positions, from pdfminer's layout of the page, leaving
    out characters no viewer shows: a second row under a label, drawn off the page,
    invisibly, in white, minutely or in a layer switched off (forms.pdf_shown), or painted
    over, clipped, transparent or in glyphs that draw nothing (forms.pdf_ink, by pdfium's
    drawing of the page, `drawn`), is not read.

    Walking the layout directly, rather than calling page.extract_words(), skips building
    a dictionary of every attribute of every character, which is most of the cost.
    """
    content = PageContent()
    chars: list[LTChar] = []
    height = float(page.mediabox[3])
    backings: list[tuple[float, float, float, float]] = []
    _walk(shown_layout(page, hidden_groups), height, content, chars, backings=backings)
    area = visible_area(page.page_obj)
    chars = inked_chars(drawn, seen_chars(chars, area, backings), area)
    content.chars = len(chars)
    content.words = _words(chars[: MAX_WORDS_PER_PAGE * 8], height)
    return content


def _pages_content(
    data: bytes, pages: list[pdfplumber.page.Page], hidden: frozenset[int]
) -> list[PageContent]:
    """Each page's content, checked against pdfium's drawing of the same document."""
    if not pages:
        return []
    import pypdfium2  # type: ignore[import-untyped]

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise ExtractError("pdf_unreadable", f"pdfium: {exc}"[:300]) from exc
    try:
        document.init_forms()  # widgets drawn as a viewer draws them, over the page
        if len(document) != len(pages):
            raise ExtractError("pdf_unreadable", "the readers do not agree on the pages")
        return [page_content(page, hidden, document[i]) for i, page in enumerate(pages)]
    finally:
        document.close()


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
        reader = AppearanceReader(pdf.rsrcmgr, MAX_APPEARANCE)
        fields = acroform_values(pdf, reader)
        values = fields.values
        pages = pdf.pages
        if len(pages) > max_pages:
            raise ExtractError("pdf_too_large", f"{len(pages)} pages")
        widgets = [page_widgets(page, reader) for page in pages]
        has_values = any(v not in (None, "", False) for v in values.values()) or any(
            w["value"] not in (None, "", False) for ws in widgets for w in ws
        )
        stored = " ".join(info.values()).casefold()
        marked = any(mark.casefold() in stored for mark in marks)
        result: dict[str, Any] = {
            "pages": len(pages),
            "info": info,
            "acroform": values,
            "unshown": sorted(fields.unshown),
            "widgets": widgets,
            "words": None,
            "marks": None,
            "chars": None,
            "images": None,
        }
        if not (has_values and marked):
            for page in pages:
                check_inflation(page)
            hidden = hidden_groups(pdf.doc.catalog)
            contents = _pages_content(data, pages, hidden)
            result["words"] = [c.words for c in contents]
            result["marks"] = [c.marks for c in contents]
            result["chars"] = sum(c.chars for c in contents)
            result["images"] = sum(c.images for c in contents)
        return result
