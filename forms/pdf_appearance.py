"""Whether a form field's widget shows its value, as a PDF viewer draws it.

A field's value (/V) and what its widget draws (its normal appearance stream, /AP /N) are
kept apart in a PDF, and a viewer draws the appearance unless the form asks it to draw
the values afresh (/NeedAppearances, which some viewers ignore). Someone who edits a
filled-in form can change one and not the other, or hide a widget: the approver who opens
the PDF then sees one email address and the service would read another. So a widget that
draws nothing (hidden, no size, or off its page) gives no value, and a value its
appearance does not show, or may not show (forms.appearance_text: drawn out of sight, or
by operators a form filler does not write), is reported, for the sender to be asked to
fill the form in again.

This runs in the sandboxed PDF worker, with forms.pdf_extract.
"""

from __future__ import annotations

from typing import Any

from pdfminer.pdftypes import PDFStream, resolve1

from forms.appearance_text import AppearanceReader

# Annotation flags (PDF 32000-1, 12.5.3): Hidden and NoView draw nothing on the page.
_NOT_DRAWN = 2 | 32
# A widget narrower or lower than this (in points) cannot show a value.
_MIN_SIZE = 1.0
# The most of an appearance stream read: a text field's is a few hundred bytes.
MAX_APPEARANCE = 64 * 1024


def drawn(widget: dict[str, Any]) -> bool:
    """Does the viewer draw this widget at all?"""
    flags = resolve1(widget.get("F"))
    if isinstance(flags, int) and flags & _NOT_DRAWN:
        return False
    rect = resolve1(widget.get("Rect"))
    if not isinstance(rect, list) or len(rect) != 4:
        return True  # no rectangle to judge by: the page decides
    try:
        x0, y0, x1, y1 = (float(resolve1(v)) for v in rect)
    except (TypeError, ValueError):
        return False
    if abs(x1 - x0) < _MIN_SIZE or abs(y1 - y0) < _MIN_SIZE:
        return False
    return _on_its_page((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), widget)


def _on_its_page(rect: tuple[float, float, float, float], widget: dict[str, Any]) -> bool:
    """Does the widget lie at least partly on the visible part of the page it names (/P)?
    One placed beyond the page's edge is never seen."""
    page = resolve1(widget.get("P"))
    if not isinstance(page, dict):
        return True  # no page named: the page that lists it decides
    box = resolve1(page.get("CropBox")) or resolve1(page.get("MediaBox"))
    try:
        px0, py0, px1, py1 = (float(resolve1(v)) for v in box)
    except (TypeError, ValueError):
        return True
    left, low, right, high = min(px0, px1), min(py0, py1), max(px0, px1), max(py0, py1)
    return rect[0] < right and rect[2] > left and rect[1] < high and rect[3] > low


def shows(widget: dict[str, Any], value: str, reader: AppearanceReader) -> bool:
    """Does the widget's appearance show `value` (whitespace aside)? True when it has no
    appearance of its own (the viewer then draws the value)."""
    drawn_text = appearance_text(widget, reader)
    return drawn_text is None or _squashed(drawn_text) == _squashed(value)


def appearance_text(widget: dict[str, Any], reader: AppearanceReader) -> str | None:
    """The text the widget's normal appearance draws where it is seen
    (forms.appearance_text); None when it has none."""
    appearances = resolve1(widget.get("AP"))
    if not isinstance(appearances, dict):
        return None
    normal = resolve1(appearances.get("N"))
    if not isinstance(normal, PDFStream):
        return None  # a checkbox's states, by name
    rect = annotation_rect(widget)
    text = reader.drawn_text(normal, rect) if rect is not None else None
    return _UNKNOWN if text is None else text


def annotation_rect(widget: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """An annotation's /Rect, corners in order (x0 <= x1, y0 <= y1); None if unreadable."""
    rect = resolve1(widget.get("Rect"))
    try:
        x0, y0, x1, y1 = (float(resolve1(v)) for v in rect)
    except (TypeError, ValueError):
        return None
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


# Stands for an appearance whose text cannot be told: it matches no value.
_UNKNOWN = "\x00"


def _squashed(text: str) -> str:
    return "".join(text.split()).casefold()
