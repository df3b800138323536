"""Whether a form field's widget shows its value, as a PDF viewer draws it.

A field's value (/V) and what its widget draws (its normal appearance stream, /AP /N) are
kept apart in a PDF, and a viewer draws the appearance unless the form asks it to draw
the values afresh (/NeedAppearances, which some viewers ignore). Someone who edits a
filled-in form can change one and not the other, or hide a widget: the approver who opens
the PDF then sees one email address and the service would read another. So a widget that
draws nothing (hidden, or no size) gives no value, and a value its appearance does not
show, or may not show (text drawn invisibly, or through a nested XObject), is reported,
for the sender to be asked to fill the form in again.

This runs in the sandboxed PDF worker, with forms.pdf_extract.
"""

from __future__ import annotations

import re
from typing import Any

from pdfminer.pdftypes import PDFStream, resolve1
from pdfminer.utils import decode_text

# Annotation flags (PDF 32000-1, 12.5.3): Hidden and NoView draw nothing on the page.
_NOT_DRAWN = 2 | 32
# A widget narrower or lower than this (in points) cannot show a value.
_MIN_SIZE = 1.0
# The most of an appearance stream read: a text field's is a few hundred bytes.
MAX_APPEARANCE = 64 * 1024
# A string operand in a content stream: a literal string, or a hexadecimal one.
_STRING = re.compile(rb"\((?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*\)|<[0-9A-Fa-f\s]*>", re.DOTALL)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|.)", re.DOTALL)


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


def shows(widget: dict[str, Any], value: str) -> bool:
    """Does the widget's appearance show `value` (whitespace aside)? True when it has no
    appearance of its own (the viewer then draws the value)."""
    drawn_texts = appearance_texts(widget)
    wanted = _squashed(value)
    return drawn_texts is None or any(_squashed(t) == wanted for t in drawn_texts)


def appearance_texts(widget: dict[str, Any]) -> tuple[str, ...] | None:
    """The text the widget's normal appearance draws, read as PDFDocEncoding and as
    WinAnsi (the encoding of most forms' fonts: "’" and "–" differ between the two); None
    when it has none."""
    appearances = resolve1(widget.get("AP"))
    if not isinstance(appearances, dict):
        return None
    normal = resolve1(appearances.get("N"))
    if not isinstance(normal, PDFStream):
        return None  # a checkbox's states, by name
    try:
        data = normal.get_data()[:MAX_APPEARANCE]
    except Exception:  # an appearance that cannot be read shows nothing known
        return (_UNKNOWN,)
    if _HIDES_OR_NESTS.search(data) or _out_of_sight(data, resolve1(normal.attrs.get("BBox"))):
        # Text drawn invisibly (render modes 3 and 7), out of sight, or drawing handed to
        # another form XObject: what shows cannot be told from the strings here.
        return (_UNKNOWN,)
    strings = [_raw(m.group()) for m in _STRING.finditer(data)]
    return (
        "".join(decode_text(s) for s in strings),
        "".join(s.decode("cp1252", errors="replace") for s in strings),
    )


# Stands for an appearance whose text cannot be told: it matches no value.
_UNKNOWN = "\x00"
_HIDES_OR_NESTS = re.compile(rb"(?<![\w/])(?:Do|[37]\s+Tr)(?!\w)")
_NUMBER = rb"([-+]?(?:\d+\.?\d*|\.\d+))"
_FONT_SIZE = re.compile(rb"/\S+\s+" + _NUMBER + rb"\s+Tf(?!\w)")
_MOVE = re.compile(_NUMBER + rb"\s+" + _NUMBER + rb"\s+T[dD](?!\w)")
_MATRIX = re.compile(
    rb"(?:[-+]?(?:\d+\.?\d*|\.\d+)\s+){4}" + _NUMBER + rb"\s+" + _NUMBER + rb"\s+Tm(?!\w)"
)
_SPACING = re.compile(_NUMBER + rb"\s+(Tc|Tw|Tz)(?!\w)")
# A text field's drawing uses a readable size, no stretching, and stays in its box.
_SMALLEST_FONT = 2.0
_MOST_SPACING = 2.0
_LEAST_SCALING = 50.0


def _out_of_sight(data: bytes, bbox: Any) -> bool:
    """Might the appearance draw text where it cannot be seen: minutely, squeezed, spaced
    or moved out of its box ("…@nhs.net" shown, ".evil.example" drawn past the edge)?"""
    if any(abs(float(m.group(1))) < _SMALLEST_FONT for m in _FONT_SIZE.finditer(data)):
        return True
    for m in _SPACING.finditer(data):
        value, operator = float(m.group(1)), m.group(2)
        if (operator == b"Tz" and value < _LEAST_SCALING) or (
            operator != b"Tz" and abs(value) > _MOST_SPACING
        ):
            return True
    try:
        x0, y0, x1, y1 = (float(resolve1(v)) for v in bbox)
    except (TypeError, ValueError):
        return False  # no box to judge by
    width, height = abs(x1 - x0), abs(y1 - y0)
    moves = [(float(m.group(1)), float(m.group(2))) for m in _MOVE.finditer(data)]
    if any(abs(dx) > width or abs(dy) > height for dx, dy in moves):
        return True
    places = [(float(m.group(1)), float(m.group(2))) for m in _MATRIX.finditer(data)]
    left, right, low, high = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    return any(not (left <= x <= right and low <= y <= high) for x, y in places)


def _raw(operand: bytes) -> bytes:
    """A string operand's bytes."""
    if operand.startswith(b"<"):
        digits = re.sub(rb"\s", b"", operand[1:-1])
        return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
    return _ESCAPE.sub(_unescape, operand[1:-1])


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1].isdigit():
        return bytes([int(code, 8) & 0xFF])
    if code in (b"\r\n", b"\n", b"\r"):
        return b""  # a line continuation
    return _ESCAPES.get(code, code)


def _squashed(text: str) -> str:
    return "".join(text.split()).casefold()
