"""Which characters of a page a PDF viewer shows.

A form's reader must read what the person who opens the PDF sees. Text can be drawn so
that no viewer shows it: invisibly (text render modes 3 and 7), in a layer (optional
content group) switched off, outside the page's visible area, minutely, or in white on
the white page. A second "Nominee's email address" row hidden one of these ways above the
visible one would otherwise be read in its place. Such characters are left out; what is
left is what the page shows, and a form missing a value then says so.

This runs in the sandboxed PDF worker, with forms.pdf_extract.
"""

from __future__ import annotations

from typing import Any

import pdfplumber
from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LTChar, LTCurve, LTPage
from pdfminer.pdfinterp import PDFPageInterpreter
from pdfminer.pdfpage import PDFPage
from pdfminer.pdftypes import PDFObjRef, resolve1
from pdfminer.psparser import PSLiteral
from pdfplumber.utils.exceptions import PdfminerException

# Text render modes that paint nothing: 3 (invisible) and 7 (add to the clip only).
_INVISIBLE_MODES = (3, 7)
# Characters smaller than this (points high, or wide) cannot be read on screen or paper.
MIN_HEIGHT = 2.0
MIN_WIDTH = 0.3
# How far outside the visible area a character's middle may fall (rounding, bleed).
_MARGIN = 1.0
_MAX_GROUPS = 1000

Box = tuple[float, float, float, float]
_UNSEEN = "pcse_unseen"  # set on each character the device lays out


class _ShownDevice(PDFPageAggregator):
    """pdfminer's layout device, marking each character `unseen` when it is drawn
    invisibly or inside marked content of an optional content group switched off."""

    def __init__(self, page: pdfplumber.page.Page, hidden: frozenset[int]) -> None:
        super().__init__(page.pdf.rsrcmgr, pageno=page.page_number, laparams=None)
        self.interpreter: PDFPageInterpreter | None = None
        self._hidden = hidden
        self._marked: list[bool] = []  # for each open marked-content sequence: hidden?
        self._mode = 0

    def begin_tag(self, tag: PSLiteral, props: Any = None) -> None:
        inside = bool(self._marked) and self._marked[-1]
        self._marked.append(inside or self._switched_off(tag, props))

    def end_tag(self) -> None:
        if self._marked:
            self._marked.pop()

    def render_string(self, textstate: Any, seq: Any, ncs: Any, graphicstate: Any) -> None:
        self._mode = textstate.render
        super().render_string(textstate, seq, ncs, graphicstate)

    def render_char(self, *args: Any, **kwargs: Any) -> float:
        advance = super().render_char(*args, **kwargs)
        unseen = self._mode in _INVISIBLE_MODES or (bool(self._marked) and self._marked[-1])
        setattr(self.cur_item._objs[-1], _UNSEEN, unseen)
        return advance

    def _switched_off(self, tag: PSLiteral, props: Any) -> bool:
        if getattr(tag, "name", None) != "OC":
            return False
        group = props
        if isinstance(props, PSLiteral):  # named in the resources' /Properties
            resources = self.interpreter.resources if self.interpreter else {}
            named = resolve1(resources.get("Properties")) if isinstance(resources, dict) else None
            group = named.get(props.name) if isinstance(named, dict) else None
            if group is None:
                return True  # a layer that cannot be found is not known to show
        return _group_off(group, self._hidden)


def _group_off(group: Any, hidden: frozenset[int]) -> bool:
    """Is an optional content group (or a membership dictionary of groups) switched off?
    A membership dictionary counts as off when any of its groups is: its visibility policy
    could show it only when some are off, which a form has no need of."""
    if isinstance(group, PDFObjRef) and group.objid in hidden:
        return True
    found = resolve1(group)
    if isinstance(found, dict) and getattr(resolve1(found.get("Type")), "name", None) == "OCMD":
        members = resolve1(found.get("OCGs"))
        members = members if isinstance(members, list) else [found.get("OCGs")]
        return any(isinstance(m, PDFObjRef) and m.objid in hidden for m in members[:_MAX_GROUPS])
    return False


def hidden_groups(catalog: dict[str, Any]) -> frozenset[int]:
    """The object numbers of the optional content groups the document opens switched off."""
    properties = resolve1(catalog.get("OCProperties"))
    if not isinstance(properties, dict):
        return frozenset()
    default = resolve1(properties.get("D"))
    if not isinstance(default, dict):
        return frozenset()

    def refs(value: Any) -> set[int]:
        found = resolve1(value)
        items = found[:_MAX_GROUPS] if isinstance(found, list) else []
        return {r.objid for r in items if isinstance(r, PDFObjRef)}

    off = refs(default.get("OFF"))
    if getattr(resolve1(default.get("BaseState")), "name", None) == "OFF":
        off |= refs(properties.get("OCGs")) - refs(default.get("ON"))
    return frozenset(off)


def shown_layout(page: pdfplumber.page.Page, hidden: frozenset[int]) -> LTPage:
    """The page's layout, as pdfplumber's page.layout, with characters marked `unseen`."""
    device = _ShownDevice(page, hidden)
    interpreter = PDFPageInterpreter(page.pdf.rsrcmgr, device)
    device.interpreter = interpreter
    try:
        interpreter.process_page(page.page_obj)
    except Exception as exc:
        raise PdfminerException(exc) from exc
    return device.get_result()


def visible_area(page: PDFPage) -> Box | None:
    """The part of the page a viewer shows (the crop box within the media box), in the
    layout's coordinates (the media box's lower left corner at 0, 0); None for a turned
    page cropped (where the crop lies in the turned layout is not worked out here)."""
    mx0, my0, mx1, my1 = page.mediabox
    cx0, cy0, cx1, cy1 = page.cropbox or page.mediabox
    box = (max(cx0, mx0) - mx0, max(cy0, my0) - my0, min(cx1, mx1) - mx0, min(cy1, my1) - my0)
    if page.rotate % 360 == 0:
        return box
    if box != (0, 0, mx1 - mx0, my1 - my0):
        return None
    if page.rotate % 180 == 90:  # the layout is drawn turned: its width is the page's height
        return (0, 0, box[3], box[2])
    return box


def _is_white(color: Any) -> bool:
    values = color if isinstance(color, list | tuple) else [color]
    numbers = [v for v in values if isinstance(v, int | float)]
    if len(numbers) == 4:  # CMYK
        return not any(numbers)
    return bool(numbers) and all(v >= 0.95 for v in numbers)


def is_backing(shape: LTCurve) -> bool:
    """A filled shape in a colour other than white, on which white text shows."""
    return bool(shape.fill) and not _is_white(shape.non_stroking_color)


def seen_chars(chars: list[LTChar], area: Box | None, backings: list[Box]) -> list[LTChar]:
    """The characters a viewer shows: drawn visibly, on the visible page, large enough,
    and not white unless on a coloured shape or a picture (none when the visible page
    cannot be told)."""
    if area is None:
        return []
    return [c for c in chars if _seen(c, area, backings)]


def _seen(char: LTChar, area: Box, backings: list[Box]) -> bool:
    if getattr(char, _UNSEEN, False):
        return False
    if char.get_text().isspace():
        return True  # spaces separate words; they show nothing either way
    if char.size < MIN_HEIGHT or char.x1 - char.x0 < MIN_WIDTH:
        return False
    middle = ((char.x0 + char.x1) / 2, (char.y0 + char.y1) / 2)
    if not _inside(middle, area, _MARGIN):
        return False
    return not _is_white(char.graphicstate.ncolor) or any(
        _inside(middle, box, 0) for box in backings
    )


def _inside(point: tuple[float, float], box: Box, margin: float) -> bool:
    x, y = point
    x0, y0, x1, y1 = box
    return x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin
