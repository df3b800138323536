"""The corpus forms with what an attacker adds: page content a viewer does not show, and
form boxes whose drawing hides part of their value."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pypdf
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from core.db import Database
from core.inbound import MessageKind
from intake.mailparse import MailAttachment
from tests.test_workflow_helpers import ICB_CONTACT, deliver, mail_from, ms365_env

CORPUS = Path(__file__).parent / "corpus" / "forms"
A4_H = 841.89


def _stream(writer, data: bytes, extra: dict | None = None):
    s = DecodedStreamObject()
    s.set_data(data)
    for k, v in (extra or {}).items():
        s[NameObject(k)] = v
    return writer._add_object(s)


def _helv(writer):
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    return writer._add_object(font)


def add_page_content(
    data: bytes,
    page_no: int,
    content: bytes,
    *,
    ocg_off: bool = False,
    cropbox: tuple | None = None,
) -> bytes:
    """Append a content stream to a page; font /Fx is Helvetica. With `ocg_off`, the
    resource /Properties /oc1 is an optional content group switched off in the catalog."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    page = writer.pages[page_no]
    res = page["/Resources"].get_object() if "/Resources" in page else DictionaryObject()
    fonts = res.get("/Font")
    fonts = fonts.get_object() if fonts is not None else DictionaryObject()
    fonts[NameObject("/Fx")] = _helv(writer)
    res[NameObject("/Font")] = fonts
    if ocg_off:
        ocg = writer._add_object(
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/OCG"),
                    NameObject("/Name"): TextStringObject("Layer"),
                }
            )
        )
        props = DictionaryObject({NameObject("/oc1"): ocg})
        res[NameObject("/Properties")] = props
        writer._root_object[NameObject("/OCProperties")] = DictionaryObject(
            {
                NameObject("/OCGs"): ArrayObject([ocg]),
                NameObject("/D"): DictionaryObject(
                    {
                        NameObject("/ON"): ArrayObject([]),
                        NameObject("/OFF"): ArrayObject([ocg]),
                    }
                ),
            }
        )
    page[NameObject("/Resources")] = res
    ref = _stream(writer, content)
    contents = page.get("/Contents")
    if contents is None:
        page[NameObject("/Contents")] = ArrayObject([ref])
    else:
        c = contents.get_object()
        if isinstance(c, ArrayObject):
            arr = ArrayObject([*list(c), ref])
        else:
            arr = ArrayObject(
                [
                    contents.indirect_reference
                    if hasattr(contents, "indirect_reference") and contents.indirect_reference
                    else contents,
                    ref,
                ]
            )
        page[NameObject("/Contents")] = arr
    if cropbox:
        page[NameObject("/CropBox")] = ArrayObject([FloatObject(v) for v in cropbox])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def text_op(x: float, top: float, text: str, size: float = 10, pre: str = "") -> bytes:
    """Draw `text` with its top (from the page top) at `top`, in Helvetica."""
    y = A4_H - top - size * 0.8
    return (
        f"q {pre} BT /Fx {size} Tf {x} {y} Td ("
        + text.replace("(", "\\(").replace(")", "\\)")
        + ") Tj ET Q\n"
    ).encode("latin-1")


PCN = CORPUS / "pcn-acroform.pdf"
BOX = (
    b"q\n0 0 310.2756 18.0 re\n1 1 1 rg\nf\n"
    b"0.8 0.8 308.6756 16.4 re\n0.8 w\n0.35 0.35 0.35 RG\ns\nQ\n"
)


def tampered_widget(
    name: str,
    value: str,
    appearance: bytes | None = None,
    *,
    widget_keys: dict | None = None,
    page_content: bytes | None = None,
    overlay: bytes | None = None,
    ocg_off: bool = False,
    source: Path = PCN,
) -> bytes:
    """The corpus form with field `name` set to `value`, its normal appearance replaced by
    `appearance` (content of the box), extra keys set on the widget, optional extra page
    content (font /Fx Helvetica) and an annotation on top of the widget drawing `overlay`."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(source))
    af = writer._root_object["/AcroForm"]
    af[NameObject("/NeedAppearances")] = pypdf.generic.BooleanObject(False)
    for _page_no, page in enumerate(writer.pages):
        for annot in list(page.get("/Annots", [])):
            widget = annot.get_object()
            if widget.get("/T") != name:
                continue
            widget[NameObject("/V")] = TextStringObject(value)
            stream = widget["/AP"]["/N"].get_object()
            if appearance is not None:
                stream.set_data(appearance)
            for k, v in (widget_keys or {}).items():
                if v == "OCG":
                    ocg = writer._add_object(
                        DictionaryObject(
                            {
                                NameObject("/Type"): NameObject("/OCG"),
                                NameObject("/Name"): TextStringObject("Layer"),
                            }
                        )
                    )
                    writer._root_object[NameObject("/OCProperties")] = DictionaryObject(
                        {
                            NameObject("/OCGs"): ArrayObject([ocg]),
                            NameObject("/D"): DictionaryObject(
                                {
                                    NameObject("/ON"): ArrayObject([]),
                                    NameObject("/OFF"): ArrayObject([ocg]),
                                }
                            ),
                        }
                    )
                    v = ocg
                widget[NameObject(k)] = v
            rect = [float(x) for x in widget["/Rect"]]
            if overlay is not None:
                font = _helv(writer)
                ap = _stream(
                    writer,
                    overlay,
                    {
                        "/Type": NameObject("/XObject"),
                        "/Subtype": NameObject("/Form"),
                        "/BBox": ArrayObject(
                            [
                                FloatObject(0),
                                FloatObject(0),
                                FloatObject(rect[2] - rect[0]),
                                FloatObject(rect[3] - rect[1]),
                            ]
                        ),
                        "/Resources": DictionaryObject(
                            {NameObject("/Font"): DictionaryObject({NameObject("/Fx"): font})}
                        ),
                    },
                )
                square = writer._add_object(
                    DictionaryObject(
                        {
                            NameObject("/Type"): NameObject("/Annot"),
                            NameObject("/Subtype"): NameObject("/Square"),
                            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in rect]),
                            NameObject("/F"): NumberObject(4),
                            NameObject("/AP"): DictionaryObject({NameObject("/N"): ap}),
                        }
                    )
                )
                annots = page["/Annots"]
                annots.append(square)
            if page_content is not None:
                pass
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    if page_content is not None:
        data = add_page_content(data, 0, page_content)
    return data


def box_text(
    *parts: bytes, pre: bytes = b"/Helv 10.0 Tf 0 0 0 rg", background: bool = True
) -> bytes:
    body = b" ".join(parts)
    return (
        (BOX if background else b"")
        + b"q\n/Tx BMC \nq\n2 0.8 304.276 15.6 re\nW n\nBT\n"
        + pre
        + b"\n2 5.41 Td\n"
        + body
        + b"\nET\nQ\nEMC\nQ\n"
    )


def from_an_ael_contact(db: Database, pdf: bytes) -> str:
    """The PCN form `pdf`, sent by an ICB's AEL contact from inside NHSmail with a plain
    covering note: applied at once, nobody else asked. The outcome of delivering it."""
    mail = mail_from(
        ICB_CONTACT,
        subject="PCN user admin request",
        text="Hello,\n\nPlease find attached the PCN form.\n\nKind regards\nChris",
        authentication_results=[],
        auth_as=["Internal"],
        attachments=[MailAttachment("PCN form.pdf", "application/pdf", pdf)],
    )
    return deliver(db, ms365_env(), mail, MessageKind.NEW_REQUEST)


def with_appearance_font(
    data: bytes, name: str, font: str, *, differences: list[tuple[int, str]]
) -> bytes:
    """Field `name`'s box drawn with a Helvetica named `font` in its appearance's resources,
    WinAnsi but for `differences` (code, glyph name)."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    for annot in writer.pages[0]["/Annots"]:
        widget = annot.get_object()
        if widget.get("/T") != name:
            continue
        appearance = widget["/AP"]["/N"].get_object()
        fonts = DictionaryObject(appearance["/Resources"].get_object()["/Font"])
        diffs = ArrayObject()
        for code, glyph in differences:
            diffs += [NumberObject(code), NameObject(glyph)]
        encoding = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Encoding"),
                NameObject("/BaseEncoding"): NameObject("/WinAnsiEncoding"),
                NameObject("/Differences"): diffs,
            }
        )
        helvetica = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
                NameObject("/Encoding"): encoding,
            }
        )
        fonts[NameObject(font)] = writer._add_object(helvetica)
        appearance[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_page_resource(data: bytes, kind: str, name: str, value: Any) -> bytes:
    """Page 1 with `value` in its resources' `kind` dictionary (/ExtGState, /ColorSpace)
    under `name`."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    resources = writer.pages[0]["/Resources"].get_object()
    held = resources.get(kind)
    entries = DictionaryObject(held.get_object()) if held is not None else DictionaryObject()
    entries[NameObject(name)] = (
        value if isinstance(value, ArrayObject) else writer._add_object(value)
    )
    resources[NameObject(kind)] = entries
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def drawn_in_form_xobject(
    data: bytes, content: bytes, bbox: tuple[float, ...], *, layer_off: bool = False
) -> bytes:
    """Page 1 drawing `content` (font /Fx, Helvetica) through a form XObject with `bbox`,
    itself in a layer switched off when `layer_off`."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    resources = writer.pages[0]["/Resources"].get_object()
    extra: dict[str, Any] = {
        "/Type": NameObject("/XObject"),
        "/Subtype": NameObject("/Form"),
        "/BBox": ArrayObject([FloatObject(v) for v in bbox]),
        "/Resources": DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/Fx"): _helv(writer)})}
        ),
    }
    if layer_off:
        layer = writer._add_object(
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/OCG"),
                    NameObject("/Name"): TextStringObject("L"),
                }
            )
        )
        extra["/OC"] = layer
        writer._root_object[NameObject("/OCProperties")] = DictionaryObject(
            {
                NameObject("/OCGs"): ArrayObject([layer]),
                NameObject("/D"): DictionaryObject({NameObject("/OFF"): ArrayObject([layer])}),
            }
        )
    held = resources.get("/XObject")
    xobjects = DictionaryObject(held.get_object()) if held is not None else DictionaryObject()
    xobjects[NameObject("/Xh")] = _stream(writer, content, extra)
    resources[NameObject("/XObject")] = xobjects
    out = io.BytesIO()
    writer.write(out)
    return add_page_content(out.getvalue(), 0, b"/Xh Do\n")


def covered_by_annotation(data: bytes, rect: tuple[float, float, float, float]) -> bytes:
    """Page 1 with a Square annotation painting `rect` white over whatever is there."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    page = writer.pages[0]
    width, height = rect[2] - rect[0], rect[3] - rect[1]
    appearance = _stream(
        writer,
        b"1 1 1 rg 0 0 %.2f %.2f re f" % (width, height),
        {
            "/Type": NameObject("/XObject"),
            "/Subtype": NameObject("/Form"),
            "/BBox": ArrayObject([FloatObject(v) for v in (0, 0, width, height)]),
        },
    )
    square = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Square"),
                NameObject("/Rect"): ArrayObject([FloatObject(v) for v in rect]),
                NameObject("/F"): NumberObject(4 | 128),
                NameObject("/AP"): DictionaryObject({NameObject("/N"): appearance}),
            }
        )
    )
    annots = page.get("/Annots")
    if annots is None:
        page[NameObject("/Annots")] = ArrayObject([square])
    else:
        annots.get_object().append(square)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def in_blank_glyphs(data: bytes, drawing: list[tuple[float, float, str]]) -> bytes:
    """Page 1 with each (x, y, text) drawn in a Helvetica whose every code used draws the
    glyph "space" while its /ToUnicode says the letters: a reader of ToUnicode sees text
    where a viewer draws nothing."""
    letters = sorted({ch for _, _, text in drawing for ch in text} - {" "})
    code = {ch: i + 1 for i, ch in enumerate(letters)}
    differences = ArrayObject()
    for ch in letters:
        differences += [NumberObject(code[ch]), NameObject("/space")]
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /L def "
        f"1 begincodespacerange <00> <FF> endcodespacerange {len(letters)} beginbfchar "
        + " ".join(f"<{code[ch]:02X}> <{ord(ch):04X}>" for ch in letters)
        + " endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
    ).encode()
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    lying = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
                NameObject("/Encoding"): DictionaryObject(
                    {
                        NameObject("/Type"): NameObject("/Encoding"),
                        NameObject("/BaseEncoding"): NameObject("/WinAnsiEncoding"),
                        NameObject("/Differences"): differences,
                    }
                ),
                NameObject("/ToUnicode"): _stream(writer, cmap),
            }
        )
    )
    resources = writer.pages[0]["/Resources"].get_object()
    fonts = DictionaryObject(resources["/Font"].get_object())
    fonts[NameObject("/Fy")] = lying
    resources[NameObject("/Font")] = fonts
    out = io.BytesIO()
    writer.write(out)
    shown = b"".join(
        b"BT /Fy 10 Tf %.2f %.2f Td <%s> Tj ET\n"
        % (x, y, "".join("20" if ch == " " else f"{code[ch]:02X}" for ch in text).encode())
        for x, y, text in drawing
    )
    return add_page_content(out.getvalue(), 0, shown)


def with_appearance_box(data: bytes, name: str, bbox: tuple[float, ...]) -> bytes:
    """Field `name`'s appearance given `bbox`: a viewer fits the box into the widget's Rect,
    so a box many times the Rect draws its text that many times smaller."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    for annot in writer.pages[0]["/Annots"]:
        widget = annot.get_object()
        if widget.get("/T") == name:
            appearance = widget["/AP"]["/N"].get_object()
            appearance[NameObject("/BBox")] = ArrayObject([FloatObject(v) for v in bbox])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def covered_by_widget(data: bytes, name: str, shown: str) -> bytes:
    """A push button, a widget of its own field, painted over field `name`'s box and drawing
    `shown` there."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    page = writer.pages[0]
    target = next(a.get_object() for a in page["/Annots"] if a.get_object().get("/T") == name)
    rect = [float(v) for v in target["/Rect"]]
    appearance = _stream(
        writer,
        BOX + b"BT /Helv 10 Tf 0 g 2 5.41 Td (" + shown.encode() + b") Tj ET",
        {
            "/Type": NameObject("/XObject"),
            "/Subtype": NameObject("/Form"),
            "/BBox": ArrayObject([FloatObject(v) for v in (0, 0, rect[2] - rect[0], 18)]),
            "/Resources": target["/AP"]["/N"].get_object()["/Resources"],
        },
    )
    button = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Widget"),
                NameObject("/FT"): NameObject("/Btn"),
                NameObject("/Ff"): NumberObject(65536),
                NameObject("/T"): TextStringObject("stamp"),
                NameObject("/Rect"): ArrayObject([FloatObject(v) for v in rect]),
                NameObject("/F"): NumberObject(4),
                NameObject("/P"): page.indirect_reference,
                NameObject("/AP"): DictionaryObject({NameObject("/N"): appearance}),
            }
        )
    )
    page["/Annots"].append(button)
    writer._root_object["/AcroForm"]["/Fields"].append(button)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
