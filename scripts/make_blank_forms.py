"""Draw the blank fillable forms in forms/blank/ from the definitions in forms/definitions/.

    .venv/bin/python scripts/make_blank_forms.py

Each page carries printed labels beside AcroForm text fields and checkboxes, and the form's
version mark (e.g. "PCSE-UMF-GPP v1") in its footer; the mark is also stored in the
document's keywords. `render()` is also used by scripts/make_form_corpus.py to draw filled
and flattened copies for the tests.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.colors import Color, black, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen.canvas import Canvas

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forms.definitions import FieldDef, FormDefinition, definitions  # noqa: E402

PAGE_W, PAGE_H = A4
MARGIN = 50
LABEL_X = MARGIN
BOX_X = 235
BOX_W = PAGE_W - MARGIN - BOX_X
BOX_H = 18
CHECK_SIZE = 12
ROW_STEP = 26
NHS_BLUE = Color(0, 0.369, 0.722)
GREY = Color(0.35, 0.35, 0.35)

Values = dict[str, "str | bool"]


@dataclass
class Pen:
    """Where the next line goes on the current page."""

    canvas: Canvas
    y: float

    def paragraph(
        self,
        text: str,
        font: str = "Helvetica",
        size: float = 9,
        color: Color = black,
        gap: float = 4,
    ) -> None:
        self.canvas.setFont(font, size)
        self.canvas.setFillColor(color)
        for block in text.split("\n\n"):
            for line in simpleSplit(" ".join(block.split()), font, size, PAGE_W - 2 * MARGIN):
                self.canvas.drawString(MARGIN, self.y, line)
                self.y -= size * 1.3
            self.y -= gap
        self.canvas.setFillColor(black)


def _header(pen: Pen, definition: FormDefinition) -> None:
    c = pen.canvas
    c.setFillColor(NHS_BLUE)
    c.rect(0, PAGE_H - 36, PAGE_W, 36, stroke=0, fill=1)
    c.setFillColor(white)
    c.setFont("Helvetica-Bold", 11)
    c.drawString(MARGIN, PAGE_H - 23, "Primary Care Support England – PCSE Online")
    pen.y = PAGE_H - 70
    pen.paragraph(definition.title, font="Helvetica-Bold", size=15, gap=6)
    if definition.intro:
        pen.paragraph(definition.intro, size=9.5, gap=8)


def _footer(c: Canvas, definition: FormDefinition, page: int) -> None:
    c.setFont("Helvetica", 8)
    c.setFillColor(GREY)
    c.drawString(MARGIN, 30, definition.version)
    c.drawRightString(PAGE_W - MARGIN, 30, f"Page {page} of {definition.pages}")
    c.setFillColor(black)


def _field_row(pen: Pen, field: FieldDef, values: Values | None, fillable: bool) -> None:
    c = pen.canvas
    y = pen.y
    c.setFont("Helvetica", 10)
    c.drawString(LABEL_X, y, field.label)
    value = (values or {}).get(field.name)
    if field.type == "checkbox":
        _checkbox(c, field, y, bool(value), fillable)
    else:
        _textbox(c, field, y, "" if value is None else str(value), fillable)
    pen.y -= ROW_STEP


def _textbox(c: Canvas, field: FieldDef, y: float, value: str, fillable: bool) -> None:
    if fillable:
        c.acroForm.textfield(
            name=field.name,
            tooltip=field.label,
            value=value,
            x=BOX_X,
            y=y - 5,
            width=BOX_W,
            height=BOX_H,
            fontName="Helvetica",
            fontSize=10,
            borderColor=GREY,
            fillColor=white,
            textColor=black,
            borderWidth=0.8,
            forceBorder=True,
        )
        return
    c.setStrokeColor(GREY)
    c.rect(BOX_X, y - 5, BOX_W, BOX_H, stroke=1, fill=0)
    if value:
        c.setFont("Helvetica", 10)
        c.drawString(BOX_X + 4, y, value)


def _checkbox(c: Canvas, field: FieldDef, y: float, ticked: bool, fillable: bool) -> None:
    if fillable:
        c.acroForm.checkbox(
            name=field.name,
            tooltip=field.label,
            checked=ticked,
            buttonStyle="check",
            x=BOX_X,
            y=y - 3,
            size=CHECK_SIZE,
            borderColor=GREY,
            fillColor=white,
            textColor=black,
            borderWidth=0.8,
            forceBorder=True,
        )
        return
    c.setStrokeColor(GREY)
    c.rect(BOX_X, y - 3, CHECK_SIZE, CHECK_SIZE, stroke=1, fill=0)
    if ticked:
        c.setFont("Helvetica-Bold", 10)
        c.drawString(BOX_X + 2.5, y - 0.5, "X")


def render(
    definition: FormDefinition,
    values: Values | None = None,
    *,
    fillable: bool = True,
    omit_parts: tuple[str, ...] = (),
) -> bytes:
    """The form as PDF bytes: fillable (AcroForm fields holding `values`) or flattened
    (the values drawn as page text, no fields). Pages whose sections all belong to
    `omit_parts` are left out, as when someone sends only part of a form."""
    buffer = io.BytesIO()
    c = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
    c.setTitle(definition.title)
    c.setSubject(f"Form version {definition.version}")
    c.setKeywords(definition.version)
    c.setCreator("PCSE Online user management")
    c.setAuthor("Primary Care Support England")
    for page in range(1, definition.pages + 1):
        sections = [s for s in definition.sections if s.page == page and s.part not in omit_parts]
        if not sections:
            continue
        pen = Pen(c, PAGE_H - 60)
        if page == 1:
            _header(pen, definition)
        for section in sections:
            pen.y -= 6
            c.setStrokeColor(NHS_BLUE)
            c.line(MARGIN, pen.y + 16, PAGE_W - MARGIN, pen.y + 16)
            size = 12.5 if section.id == section.part else 11
            pen.paragraph(section.heading, font="Helvetica-Bold", size=size, color=NHS_BLUE)
            if section.text:
                pen.paragraph(section.text, size=9, gap=6)
            pen.y -= 4
            for field in section.fields:
                _field_row(pen, field, values, fillable)
        _footer(c, definition, page)
        c.showPage()
    c.save()
    return buffer.getvalue()


def main() -> None:
    out_dir = ROOT / "forms" / "blank"
    out_dir.mkdir(parents=True, exist_ok=True)
    for definition in definitions():
        path = out_dir / definition.blank
        path.write_bytes(render(definition))
        print(f"wrote {path.relative_to(ROOT)} ({definition.version})")


if __name__ == "__main__":
    main()
