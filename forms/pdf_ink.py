"""Which characters of a page change what a viewer draws: the page rendered with its text
and without it, compared under each character.

Laying a page out says where each character is, not whether anyone sees it: a row can be
painted over in white, drawn through a transparent state, clipped away, drawn in a colour a
hair from white, in a layer a form XObject switches off, under an annotation, or in glyphs
that draw nothing whatever their names say. Rather than follow each way (the list is never
complete), pdfium draws the page as a viewer does, annotations included, and draws it again
with every text object taken out: a character under which the two differ is seen; one under
which they do not shows nothing and is not read.

This runs in the sandboxed PDF worker, with forms.pdf_extract.
"""

from __future__ import annotations

from typing import Any

from pdfminer.layout import LTChar
from PIL import Image, ImageChops

Box = tuple[float, float, float, float]

# Pixels per point, and the most pixels a page's longer side is drawn at (a page many
# times A4 is drawn coarser; its smallest glyphs then show nothing and are not read).
_SCALE = 1.0
_MOST_PIXELS = 2400
# How much darker or lighter (of 255) a glyph must make a pixel to be seen.
_INK = 40


def inked_chars(page: Any, chars: list[LTChar], area: Box | None) -> list[LTChar]:
    """The characters of `chars` (laid out in `area`, the page's visible part in layout
    coordinates; None when that cannot be told) under which pdfium's drawing of `page` (a
    pypdfium2 page) changes when its text is taken out; spaces are kept as they are."""
    if area is None:
        return []
    x0, y0, x1, y1 = area
    scale = min(_SCALE, _MOST_PIXELS / max(x1 - x0, y1 - y0, 1.0))
    with_text = _drawn(page, scale)
    if (
        abs(with_text.width - (x1 - x0) * scale) > 2
        or abs(with_text.height - (y1 - y0) * scale) > 2
    ):
        return []  # pdfium's page is not the layout's: nothing can be matched
    _take_out_text(page)
    ink = ImageChops.difference(with_text, _drawn(page, scale)).point(
        lambda v: 255 if v >= _INK else 0
    )

    pixels, across, down = ink.tobytes(), ink.width, ink.height

    def seen(char: LTChar) -> bool:
        if char.get_text().isspace():
            return True
        left = max(0, int((char.x0 - x0) * scale))
        right = min(across, max(left + 1, round((char.x1 - x0) * scale)))
        top = max(0, int((y1 - char.y1) * scale))
        bottom = min(down, max(top + 1, round((y1 - char.y0) * scale)))
        # Any pixel of the glyph's box that the text changed (each row a slice of bytes).
        return any(
            pixels[row * across + left : row * across + right].strip(b"\x00")
            for row in range(top, bottom)
        )

    return [c for c in chars if seen(c)]


def _drawn(page: Any, scale: float) -> Image.Image:
    bitmap = page.render(scale=scale, grayscale=True, draw_annots=True, may_draw_forms=True)
    return bitmap.to_pil().convert("L")


def _take_out_text(page: Any) -> None:
    """Every text object of the page, in its content and in its form XObjects, removed."""
    import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

    for text in list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT])):
        if text.container is None:
            pdfium_c.FPDFPage_RemoveObject(page.raw, text.raw)
        else:
            pdfium_c.FPDFFormObj_RemoveObject(text.container.raw, text.raw)
