"""What the form shows is what is read: a value its box does not show, or a box the viewer
does not draw, never reaches a decision as if the approver had seen it."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from pypdf.generic import (
    BooleanObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

import forms

PCN = Path(__file__).parent / "corpus" / "forms" / "pcn-acroform.pdf"


def changed(
    *, values: dict[str, str] | None = None, flags: dict[str, int] | None = None, redraw=False
) -> bytes:
    """The corpus PCN form with field values set without redrawing their boxes (as an
    edit after filling in does), or widget flags set."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(PCN))
    writer._root_object["/AcroForm"][NameObject("/NeedAppearances")] = BooleanObject(redraw)
    for page in writer.pages:
        for annot in page.get("/Annots", []):
            widget = annot.get_object()
            name = widget.get("/T")
            if name in (values or {}):
                widget[NameObject("/V")] = TextStringObject(values[name])
            if name in (flags or {}):
                widget[NameObject("/F")] = NumberObject(flags[name])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def emails(request: forms.ParsedRequest) -> list[str]:
    return [n["email"] for n in request.fields.get("nominees") or []]


def test_the_filled_in_form_reads_as_it_shows() -> None:
    request = forms.read_pdf(changed())
    assert not request.findings
    assert emails(request) == ["tariq.mahmood@nhs.net", "emma.clarke4@nhs.net"]


def test_a_value_its_box_does_not_show_is_a_finding() -> None:
    request = forms.read_pdf(changed(values={"nominee2_email": "emma.clarke4@nhs-net.co.uk"}))
    assert [(f.code, f.field) for f in request.findings] == [("not_as_shown", "nominees.1.email")]
    assert "box shows something other" in request.findings[0].message


def test_a_stale_box_is_reported_even_where_viewers_are_asked_to_redraw() -> None:
    """/NeedAppearances asks viewers to draw each value afresh; some (iOS Quick Look)
    draw the stale appearance all the same."""
    request = forms.read_pdf(
        changed(values={"nominee2_email": "emma.clarke5@nhs.net"}, redraw=True)
    )
    assert [f.code for f in request.findings] == ["not_as_shown"]


def test_a_value_read_from_the_page_widget_is_held_to_its_box() -> None:
    """With the form's field list gone, values are read from the widgets on the page."""
    writer = pypdf.PdfReader(io.BytesIO(changed(values={"nominee2_email": "bob@evil.example"})))
    out = pypdf.PdfWriter(clone_from=writer)
    del out._root_object["/AcroForm"]
    data = io.BytesIO()
    out.write(data)
    request = forms.read_pdf(data.getvalue())
    assert "not_as_shown" in [f.code for f in request.findings]


def test_text_drawn_invisibly_in_the_box_is_not_taken_as_shown() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(PCN))
    for page in writer.pages:
        for annot in page.get("/Annots", []):
            widget = annot.get_object()
            if widget.get("/T") == "nominee2_email":
                widget[NameObject("/V")] = TextStringObject("bob@evil.example")
                stream = widget["/AP"]["/N"].get_object()
                stream.set_data(b"/Tx BMC BT 3 Tr (bob@evil.example) Tj ET EMC")
    data = io.BytesIO()
    writer.write(data)
    request = forms.read_pdf(data.getvalue())
    assert [(f.code, f.field) for f in request.findings] == [("not_as_shown", "nominees.1.email")]


def test_two_fields_of_one_name_are_not_read_as_either() -> None:
    from forms.pdf_extract import extract
    from forms.pdf_reader import _not_as_shown, identify

    found = extract(PCN.read_bytes(), max_pages=20, marks=[])
    found["acroform"]["decoy.nominee2_email"] = "bob@evil.example"
    definition = identify(found)
    assert definition is not None
    values = {"nominees.1.email": "emma.clarke4@nhs.net"}
    assert [f.field for f in _not_as_shown(definition, found, values)] == ["nominees.1.email"]


@pytest.mark.parametrize("flag", [2, 32])  # Hidden, NoView
def test_a_box_the_viewer_does_not_draw_gives_no_value(flag: int) -> None:
    hidden = {"nominee2_name": flag, "nominee2_email": flag}
    request = forms.read_pdf(changed(flags=hidden))
    assert emails(request) == ["tariq.mahmood@nhs.net"]


def _name_drawn_as(drawing: bytes, encoding: str | None) -> forms.ParsedRequest:
    """The PCN form with nominee 2's name saved as "Emma O’Brien" and its box drawn by
    `drawing`, in Helvetica with the `encoding` named (None: the form's own, which is
    Acrobat's PDFDocEncoding by /Differences)."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(PCN))
    for page in writer.pages:
        for annot in page.get("/Annots", []):
            widget = annot.get_object()
            if widget.get("/T") == "nominee2_name":
                widget[NameObject("/V")] = TextStringObject("Emma O\u2019Brien")
                appearance = widget["/AP"]["/N"].get_object()
                appearance.set_data(drawing)
                if encoding is not None:
                    font = DictionaryObject(
                        {
                            NameObject("/Type"): NameObject("/Font"),
                            NameObject("/Subtype"): NameObject("/Type1"),
                            NameObject("/BaseFont"): NameObject("/Helvetica"),
                            NameObject("/Encoding"): NameObject(encoding),
                        }
                    )
                    appearance[NameObject("/Resources")] = DictionaryObject(
                        {NameObject("/Font"): DictionaryObject({NameObject("/Helv"): font})}
                    )
    data = io.BytesIO()
    writer.write(data)
    return forms.read_pdf(data.getvalue())


def test_a_box_drawn_in_winansi_shows_its_typographic_apostrophe() -> None:
    """In WinAnsi, "’" is byte 0x92 (PDFDocEncoding reads another character there): "O’Brien"
    drawn so is the value "O’Brien"."""
    request = _name_drawn_as(
        b"/Tx BMC BT /Helv 10 Tf 2 2 Td (Emma O\x92Brien) Tj ET EMC", "/WinAnsiEncoding"
    )
    assert not [f for f in request.findings if f.code == "not_as_shown"]
    assert request.fields["nominees"][1]["name"] == "Emma O\u2019Brien"


def test_a_box_is_read_in_its_own_font_s_encoding() -> None:
    """The form's own Helvetica encodes as PDFDocEncoding, where byte 0x92 is "™": a viewer
    draws "Emma O™Brien", so the saved "Emma O’Brien" is not what the box shows; in that
    encoding "’" is byte 0x90."""
    drawn_as_trademark = _name_drawn_as(
        b"/Tx BMC BT /Helv 10 Tf 2 2 Td (Emma O\x92Brien) Tj ET EMC", None
    )
    assert [f.code for f in drawn_as_trademark.findings] == ["not_as_shown"]
    drawn_as_apostrophe = _name_drawn_as(
        b"/Tx BMC BT /Helv 10 Tf 2 2 Td (Emma O\x90Brien) Tj ET EMC", None
    )
    assert drawn_as_apostrophe.findings == []
