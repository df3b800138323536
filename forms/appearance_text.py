"""The text a form field's appearance stream draws where it can be seen, or None if unsure.

A filled-in field's box is drawn from its appearance stream, not from its saved value, and
a stream can draw part of the value where nobody sees it: past the box's edge (a kerning
number, a run of moves, a rise, a new line), outside a clip, minutely, in white, or under
something painted after it. Lists of such tricks are never complete, so the stream is read
the other way round: only the few operators a form filler writes are understood (a clip
rectangle, a background, colours, one font, moves and strings), each glyph is placed with
its font's widths as a viewer places it, and any other operator, or any glyph that would
not be seen, makes the answer None ("cannot tell").

The characters are those the font's encoding names (its /Differences included), not what
a /ToUnicode map claims: a viewer draws the named glyph. A font embedded in the file may
still draw another shape under a glyph's name; that is not checked.

This runs in the sandboxed PDF worker (forms.pdf_appearance).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pdfminer.pdffont import PDFFont, PDFSimpleFont, PDFType3Font, PDFUnicodeNotDefined
from pdfminer.pdfinterp import PDFResourceManager
from pdfminer.pdftypes import PDFObjRef, PDFStream, resolve1

Matrix = tuple[float, float, float, float, float, float]
Box = tuple[float, float, float, float]
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

# The smallest text a person reads (points), and how far outside its clip a glyph's box
# may reach (rounding; a descender on the clip's edge).
SMALLEST = 2.0
_TOLERANCE = 1.0
# How far apart (0 black, 1 white) a letter's colour and what lies under it must be for
# the letter to be read, and how much of a letter's width may lie over one drawn before.
_CONTRAST = 0.35
_MOST_OVERLAP = 0.3
_MAX_TOKENS = 20000

# Operators that change nothing a person sees of the text: stroking colour and line style
# (text is drawn filled, render mode 0, or not at all), marked content, rendering intent.
_IGNORED = frozenset(
    "G RG K w J j M d i ri BMC BDC EMC MP DP ET".split()  # noqa: SIM905 (a set of words)
)
_PAINTS = frozenset("f F f* s S b b* B B*".split())  # noqa: SIM905
_PATH = frozenset("m l c v y h".split())  # noqa: SIM905


class _Unsure(Exception):
    """The stream does something this reading does not follow."""


@dataclass
class _State:
    fill: tuple[str, tuple[float, ...]] = ("g", (0.0,))
    clip: Box = (0.0, 0.0, 0.0, 0.0)
    font: PDFFont | None = None
    size: float = 0.0
    char_spacing: float = 0.0
    word_spacing: float = 0.0
    scaling: float = 1.0
    leading: float = 0.0
    render: int = 0


@dataclass
class _Reading:
    resources: dict[str, Any]
    fonts: PDFResourceManager
    state: _State
    stack: list[_State] = field(default_factory=list)
    matrix: Matrix = _IDENTITY  # the text matrix
    line: Matrix = _IDENTITY  # the text line matrix
    rects: list[Box] = field(default_factory=list)  # the path being built
    curved: bool = False
    clipping: bool = False
    shown: list[str] = field(default_factory=list)
    # What is painted under the text: (area, lightness), the box's white first.
    painted: list[tuple[Box, float]] = field(default_factory=list)
    glyphs: list[Box] = field(default_factory=list)  # where each letter drawn lies
    page_scale: float = 1.0  # the form's points to the page's (the box fitted to its Rect)


class AppearanceReader:
    """Reads one document's appearance streams: each font made once (`fonts` caches them by
    object number), each stream read once, however many widgets and readings ask."""

    def __init__(self, fonts: PDFResourceManager, max_bytes: int) -> None:
        self._fonts = fonts
        self._max_bytes = max_bytes
        self._read: dict[tuple[int, Box], str | None] = {}

    def drawn_text(self, stream: PDFStream, rect: Box) -> str | None:
        """What the appearance `stream`, drawn in the widget's `rect` on the page, draws
        where it is seen; None when that cannot be told."""
        if stream.objid is None:
            return _drawn_text(stream, rect, self._fonts, self._max_bytes)
        key = (stream.objid, rect)
        if key not in self._read:
            self._read[key] = _drawn_text(stream, rect, self._fonts, self._max_bytes)
        return self._read[key]


def _drawn_text(
    stream: PDFStream, rect: Box, fonts: PDFResourceManager, max_bytes: int
) -> str | None:
    try:
        if len(stream.get_data()) > max_bytes:
            return None
        box = _box(resolve1(stream.attrs.get("BBox")))
        resources = resolve1(stream.attrs.get("Resources"))
        reading = _Reading(
            resources if isinstance(resources, dict) else {},
            fonts,
            _State(clip=box),
            painted=[(box, 1.0)],
            page_scale=_page_scale(stream, box, rect),
        )
        _run(reading, stream)
    except _Unsure:
        return None
    except Exception:  # a stream or font that cannot be read shows nothing known
        return None
    return "".join(reading.shown)


def _run(reading: _Reading, stream: PDFStream) -> None:
    operands: list[Any] = []
    arrays: list[list[Any]] = []
    for count, (kind, token) in enumerate(_tokens(stream.get_data())):
        if count > _MAX_TOKENS:
            raise _Unsure  # longer than any field's drawing
        if kind == "open":
            arrays.append([])
        elif kind == "close":
            if not arrays:
                raise _Unsure
            done = arrays.pop()
            (arrays[-1] if arrays else operands).append(done)
        elif kind == "keyword":
            if arrays:
                raise _Unsure
            _operate(reading, token, operands)
            operands = []
        else:
            (arrays[-1] if arrays else operands).append(token)


class _Name(str):
    """A name operand ("/Helv" as "Helv")."""


# The tokens of a content stream: space and comments, strings (literal, nesting one level
# deep, or hexadecimal), a dictionary's brackets, an array's, names, numbers, operators.
_TOKEN = re.compile(
    rb"""(?:\s+|%[^\r\n]*)
    |(?P<string>\((?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*\))
    |(?P<hex><[0-9A-Fa-f\s]*>)
    |(?P<dict><<|>>)
    |(?P<open>\[)|(?P<close>\])
    |(?P<name>/[^\s/\[\]()<>{}%]*)
    |(?P<number>[-+]?(?:\d+\.?\d*|\.\d+))
    |(?P<keyword>[A-Za-z'"][A-Za-z0-9*'"]*)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|.)", re.DOTALL)


def _tokens(data: bytes) -> Iterator[tuple[str, Any]]:
    """(kind, value) for each token; anything else in the stream (an inline dictionary,
    a stray byte) is not followed."""
    position = 0
    while position < len(data):
        found = _TOKEN.match(data, position)
        if found is None or found.lastgroup == "dict":
            raise _Unsure
        position = found.end()
        kind = found.lastgroup
        text = found.group()
        if kind is None:
            continue
        if kind == "string":
            yield kind, _ESCAPE.sub(_unescape, text[1:-1])
        elif kind == "hex":
            digits = re.sub(rb"\s", b"", text[1:-1])
            yield "string", bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
        elif kind == "name":
            yield kind, _Name(text[1:].decode("latin-1"))
        elif kind == "number":
            yield kind, float(text)
        elif kind == "keyword":
            yield kind, text.decode("ascii")
        else:
            yield kind, None


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1].isdigit():
        return bytes([int(code, 8) & 0xFF])
    if code in (b"\r\n", b"\n", b"\r"):
        return b""  # a line continuation
    return _ESCAPES.get(code, code)


def _operate(reading: _Reading, op: str, args: list[Any]) -> None:
    state = reading.state
    if op in _IGNORED:
        return
    if op == "q":
        reading.stack.append(replace(state))
    elif op == "Q":
        reading.state = reading.stack.pop() if reading.stack else state
    elif op == "re":
        x, y, w, h = _numbers(args, 4)
        reading.rects.append((min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)))
    elif op in _PATH:
        reading.curved = True
    elif op in ("W", "W*"):
        reading.clipping = True
    elif op == "n" or op in _PAINTS:
        _end_path(reading, painted=op != "n", op=op)
    elif op in ("g", "rg", "k"):
        state.fill = (op, tuple(_numbers(args, {"g": 1, "rg": 3, "k": 4}[op])))
    elif op == "BT":
        reading.matrix = reading.line = _IDENTITY
    elif op == "Tf":
        state.font = _font(reading, args)
        state.size = _numbers(args[1:], 1)[0]
    elif op in ("Tc", "Tw", "Tz", "TL", "Tr"):
        _text_state(state, op, _numbers(args, 1)[0])
    elif op in ("Td", "TD", "Tm", "T*"):
        _move(reading, op, args)
    elif op in ("Tj", "TJ", "'", '"'):
        _show_operator(reading, op, args)
    else:  # cm, gs, Do, sh, Ts, cs/sc/scn and anything else: not followed
        raise _Unsure


def _page_scale(stream: PDFStream, box: Box, rect: Box) -> float:
    """How much the viewer shrinks or grows the form to fit its box into the widget's
    Rect (PDF 32000-1, 12.5.5): the smaller of the two ways, so that text drawn at 10 points
    in a box a hundred times the Rect's size counts as the tenth of a point it is."""
    matrix = resolve1(stream.attrs.get("Matrix"))
    a, b, c, d, e, f = _numbers(matrix, 6) if isinstance(matrix, list) else _IDENTITY
    corners = [_apply((a, b, c, d, e, f), x, y) for x in (box[0], box[2]) for y in (box[1], box[3])]
    wide = max(x for x, _ in corners) - min(x for x, _ in corners)
    high = max(y for _, y in corners) - min(y for _, y in corners)
    if wide <= 0 or high <= 0:
        raise _Unsure
    form_scale = math.sqrt(abs(a * d - b * c))
    return form_scale * min((rect[2] - rect[0]) / wide, (rect[3] - rect[1]) / high)


_FILLS = frozenset("f F f* b b* B B*".split())  # noqa: SIM905 (a set of words)


def _end_path(reading: _Reading, *, painted: bool, op: str = "n") -> None:
    if painted and reading.shown:
        raise _Unsure  # painted over text already drawn
    if op in _FILLS:
        if reading.curved:
            raise _Unsure  # a filled shape other than rectangles under the text
        shade = _lightness(reading.state.fill)
        reading.painted += [(rect, shade) for rect in reading.rects]
    if reading.clipping:
        if reading.curved or len(reading.rects) != 1:
            raise _Unsure  # a clip other than one rectangle
        reading.state.clip = _intersection(reading.state.clip, reading.rects[0])
    reading.rects, reading.curved, reading.clipping = [], False, False


def _text_state(state: _State, op: str, value: float) -> None:
    if op == "Tc":
        state.char_spacing = value
    elif op == "Tw":
        state.word_spacing = value
    elif op == "Tz":
        state.scaling = value / 100
    elif op == "TL":
        state.leading = value
    else:
        state.render = int(value)


def _move(reading: _Reading, op: str, args: list[Any]) -> None:
    if op == "Tm":
        a, b, c, d, e, f = _numbers(args, 6)
        reading.matrix = reading.line = (a, b, c, d, e, f)
        return
    if op == "T*":
        tx, ty = 0.0, -reading.state.leading
    else:
        tx, ty = _numbers(args, 2)
        if op == "TD":
            reading.state.leading = -ty
    reading.matrix = reading.line = _translated(reading.line, tx, ty)


def _show_operator(reading: _Reading, op: str, args: list[Any]) -> None:
    if op == '"':
        reading.state.word_spacing, reading.state.char_spacing = _numbers(args[:2], 2)
        args = args[2:]
    if op in ("'", '"'):
        _move(reading, "T*", [])
    if op == "TJ":
        items = args[0] if args else None
        if not isinstance(items, list):
            raise _Unsure
        for item in items:
            if isinstance(item, bytes):
                _show(reading, item)
            else:
                shift = -_numbers([item], 1)[0] / 1000 * reading.state.size
                reading.matrix = _translated(reading.matrix, shift * reading.state.scaling, 0)
        return
    if not args or not isinstance(args[-1], bytes):
        raise _Unsure
    _show(reading, args[-1])


def _show(reading: _Reading, text: bytes) -> None:
    """Place each glyph of `text` as a viewer would, and keep it if it is seen."""
    state = reading.state
    font = state.font
    if font is None or state.render != 0 or state.scaling <= 0:
        raise _Unsure
    a, b, c, d, _, _ = reading.matrix
    if state.size * math.sqrt(abs(a * d - b * c)) * reading.page_scale < SMALLEST:
        raise _Unsure  # too small to read where the viewer draws it
    ink = _lightness(state.fill)
    low = font.get_descent() * state.size
    high = max(font.get_ascent(), 0.6) * state.size
    for cid in font.decode(text):
        letter = _glyph(font, cid)
        width = font.char_width(cid) * state.size * state.scaling
        if not letter.isspace():
            corners = [_apply(reading.matrix, x, y) for x in (0, width) for y in (low, high)]
            if not all(_inside(point, state.clip) for point in corners):
                raise _Unsure  # drawn where the clip hides it
            _check_seen(reading, _bounds(corners), ink)
        reading.shown.append(letter)
        spacing = state.char_spacing + (state.word_spacing if cid == 32 else 0)
        advance = width + spacing * state.scaling
        reading.matrix = _translated(reading.matrix, advance, 0)


def _glyph(font: PDFFont, cid: int) -> str:
    """The character of the glyph the font's encoding names; a /ToUnicode map that says
    otherwise is a lie about what is drawn."""
    if not isinstance(font, PDFSimpleFont) or isinstance(font, PDFType3Font):
        raise _Unsure  # composite and Type 3 fonts: their glyphs are not named
    letter = font.cid2unicode.get(cid)
    if not letter:
        raise _Unsure
    if font.unicode_map is not None:
        try:
            if font.unicode_map.get_unichr(cid) != letter:
                raise _Unsure
        except KeyError:
            pass
    return letter


def _font(reading: _Reading, args: list[Any]) -> PDFFont:
    fonts = resolve1(reading.resources.get("Font"))
    name = args[0] if args else None
    if not isinstance(fonts, dict) or not isinstance(name, _Name):
        raise _Unsure
    ref = fonts.get(name)
    spec = resolve1(ref)
    if not isinstance(spec, dict):
        raise _Unsure
    objid = ref.objid if isinstance(ref, PDFObjRef) else None
    try:
        return reading.fonts.get_font(objid, spec)
    except PDFUnicodeNotDefined as exc:
        raise _Unsure from exc


def _check_seen(reading: _Reading, glyph: Box, ink: float) -> None:
    """A letter is seen if it stands out from what is painted under it and lies over no
    letter drawn before it (a "4" drawn on a "4" reads as "44" and shows as "4")."""
    middle = ((glyph[0] + glyph[2]) / 2, (glyph[1] + glyph[3]) / 2)
    under = next((shade for area, shade in reversed(reading.painted) if _inside(middle, area)), 1.0)
    if abs(ink - under) < _CONTRAST:
        raise _Unsure  # the colour of what lies under it
    width = glyph[2] - glyph[0]
    for earlier in reading.glyphs:
        shared = min(glyph[2], earlier[2]) - max(glyph[0], earlier[0])
        if shared > width * _MOST_OVERLAP and _overlap_high(glyph, earlier):
            raise _Unsure  # drawn over another letter
    reading.glyphs.append(glyph)


def _overlap_high(one: Box, other: Box) -> bool:
    return min(one[3], other[3]) > max(one[1], other[1])


def _lightness(fill: tuple[str, tuple[float, ...]]) -> float:
    """0 for black, 1 for white."""
    space, values = fill
    if space == "k":
        c, m, y, k = values
        return max(0.0, 1 - min(1.0, 0.3 * c + 0.59 * m + 0.11 * y + k))
    if space == "rg":
        r, g, b = values
        return 0.299 * r + 0.587 * g + 0.114 * b
    return values[0]


def _bounds(points: list[tuple[float, float]]) -> Box:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _numbers(args: list[Any], count: int) -> list[float]:
    values = [resolve1(a) for a in args[-count:]] if count else []
    if len(values) != count or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise _Unsure
    return [float(v) for v in values]


def _box(value: Any) -> Box:
    if not isinstance(value, list) or len(value) != 4:
        raise _Unsure
    x0, y0, x1, y1 = _numbers(value, 4)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _intersection(one: Box, other: Box) -> Box:
    return (
        max(one[0], other[0]),
        max(one[1], other[1]),
        min(one[2], other[2]),
        min(one[3], other[3]),
    )


def _translated(m: Matrix, tx: float, ty: float) -> Matrix:
    a, b, c, d, e, f = m
    return (a, b, c, d, tx * a + ty * c + e, tx * b + ty * d + f)


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return (a * x + c * y + e, b * x + d * y + f)


def _inside(point: tuple[float, float], box: Box) -> bool:
    x, y = point
    return (
        box[0] - _TOLERANCE <= x <= box[2] + _TOLERANCE
        and box[1] - _TOLERANCE <= y <= box[3] + _TOLERANCE
    )
