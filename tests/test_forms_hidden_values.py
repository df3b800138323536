"""What a form's reader takes must be what a person opening the PDF sees.

Each test builds a form from the project's own corpus, adds something a PDF viewer does
not show (or shows differently), and asserts the SAFE behaviour: either the value read is
the one a person sees, or there is a finding so that a person looks.
"""

from __future__ import annotations

import pytest
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
)

import forms
from core.db import Database
from tests.pdf_tampering import (
    A4_H,
    CORPUS,
    add_page_content,
    box_text,
    covered_by_annotation,
    covered_by_widget,
    drawn_in_form_xobject,
    from_an_ael_contact,
    in_blank_glyphs,
    tampered_widget,
    text_op,
    with_appearance_box,
    with_appearance_font,
    with_page_resource,
)
from tests.test_workflow_helpers import (
    case_of,
    holders,
)

EVIL = "bob@evil.example"
SEEN = "emma.clarke4@nhs.net"  # what the PCN corpus form shows for nominee 2


def emails(request: forms.ParsedRequest) -> list[str]:
    return [n["email"] for n in request.fields.get("nominees") or []]


def safe(request: forms.ParsedRequest, seen: str) -> bool:
    return (
        seen in emails(request) and not any(EVIL.split("@")[0] in e for e in emails(request))
    ) or bool(request.findings)


# ---------------------------------------------------------------- flattened / printed forms
# GPP flattened corpus form: the visible row reads "Nominee's email address jane.smith@nhs.net"
# (top 265.7). A second row with the same label, drawn so that no viewer shows it, is put
# just above it; the reader takes the first row under the heading that starts with the label.

GPP_FLAT = (CORPUS / "gpp-flattened.pdf").read_bytes()
ROW = "Nominee's email address"


def hidden_row(
    pre: str = "", size: float = 10, x1: float = 340, x2: float = 480, top: float = 256
) -> bytes:
    return text_op(x1, top, ROW, size=size, pre=pre) + text_op(
        x2, top, "evil@nhs.net", size=size, pre=pre
    )


def small_row(pre: str = "") -> bytes:
    """The hidden row in 6 points, between the name's row and the address's."""
    return hidden_row(pre=pre, size=6, x1=340, x2=430, top=254.3)


PAGE_TEXT_VARIANTS = {
    "outside the media box (x=700 on an A4 page)": lambda: add_page_content(
        GPP_FLAT, 0, hidden_row(x1=700, x2=900)
    ),
    "invisible text, render mode 3": lambda: add_page_content(GPP_FLAT, 0, hidden_row(pre="3 Tr")),
    "white text on the white page": lambda: add_page_content(
        GPP_FLAT,
        0,
        text_op(340, 253, ROW, pre="1 1 1 rg") + text_op(480, 253, "evil@nhs.net", pre="1 1 1 rg"),
    ),
    "half-point font": lambda: add_page_content(GPP_FLAT, 0, hidden_row(size=0.5, x2=350)),
    "optional content group switched off": lambda: add_page_content(
        GPP_FLAT, 0, b"/OC /oc1 BDC\n" + hidden_row() + b"EMC\n", ocg_off=True
    ),
    # Drawn, and then hidden: found by drawing the page with and without its text.
    "painted over in white afterwards": lambda: add_page_content(
        GPP_FLAT, 0, small_row() + b"q 1 1 1 rg 336 %.2f 205 5.4 re f Q\n" % (A4_H - 259.8)
    ),
    "fully transparent (ExtGState /ca 0)": lambda: with_page_resource(
        add_page_content(GPP_FLAT, 0, small_row(pre="/GSa gs")),
        "/ExtGState",
        "/GSa",
        DictionaryObject(
            {NameObject("/Type"): NameObject("/ExtGState"), NameObject("/ca"): FloatObject(0)}
        ),
    ),
    "outlined in white (1 Tr)": lambda: add_page_content(
        GPP_FLAT, 0, small_row(pre="1 Tr 1 1 1 RG")
    ),
    "CMYK a hair from white": lambda: add_page_content(GPP_FLAT, 0, small_row(pre="0 0 0 0.005 k")),
    "clipped to a point": lambda: add_page_content(GPP_FLAT, 0, small_row(pre="0 0 1 1 re W n")),
    "an Indexed colour that is white": lambda: with_page_resource(
        add_page_content(GPP_FLAT, 0, small_row(pre="/CSi cs 0 sc")),
        "/ColorSpace",
        "/CSi",
        ArrayObject(
            [
                NameObject("/Indexed"),
                NameObject("/DeviceRGB"),
                NumberObject(0),
                ByteStringObject(b"\xff\xff\xff"),
            ]
        ),
    ),
    "a form XObject in a layer switched off": lambda: drawn_in_form_xobject(
        GPP_FLAT, small_row(), (0, 0, 595, 842), layer_off=True
    ),
    "a form XObject whose box clips it all": lambda: drawn_in_form_xobject(
        GPP_FLAT, small_row(), (0, 0, 1, 1)
    ),
    "under a white Square annotation": lambda: covered_by_annotation(
        add_page_content(GPP_FLAT, 0, small_row()), (336, A4_H - 259.8, 541, A4_H - 254.4)
    ),
    "glyphs that draw blanks, a ToUnicode that says letters": lambda: in_blank_glyphs(
        GPP_FLAT, [(340, A4_H - 264, ROW), (480, A4_H - 264, "evil@nhs.net")]
    ),
}


@pytest.mark.parametrize("how", list(PAGE_TEXT_VARIANTS))
def test_flattened_form_text_no_viewer_shows_is_not_read_as_the_value(how: str) -> None:
    request = forms.read_pdf(PAGE_TEXT_VARIANTS[how]())
    assert request.kind == "gpp_admin_form"
    # Safe: the address the page shows, or a finding for a person. Today: evil@nhs.net, no finding.
    assert emails(request) == ["jane.smith@nhs.net"] or request.findings, (
        emails(request),
        request.findings,
    )


# ---------------------------------------------------------------- filled AcroForm forms
# The box's appearance stream draws part of the value where nobody sees it: each glyph is
# placed as a viewer places it (forms.appearance_text), and any operator a form filler does
# not write makes the box's text unknown.

NO_BG = dict(background=False)
TAILED = SEEN + ".evil.example"
SHOWN = b"(emma.clarke4@nhs.net) Tj "
DECOY = text_op(
    237, A4_H - 497.49 + 4, SEEN
)  # the visible address, drawn on the page under the box

ACRO_VARIANTS = {
    # The value's tail is drawn past the box's clip: the box shows emma.clarke4@nhs.net.
    "tail drawn outside the clipped box": dict(
        value=SEEN + ".evil.example",
        appearance=box_text(b"(emma.clarke4@nhs.net) Tj 400 0 Td (.evil.example) Tj"),
    ),
    "value drawn with render mode 7 (clip only)": dict(
        value=EVIL,
        appearance=box_text(b"(bob@evil.example) Tj", pre=b"/Helv 10.0 Tf 7 Tr", **NO_BG),
        page_content=DECOY,
    ),
    "value drawn at 0.05 pt": dict(
        value=EVIL,
        appearance=box_text(b"(bob@evil.example) Tj", pre=b"/Helv 0.05 Tf", **NO_BG),
        page_content=DECOY,
    ),
    **{
        how: dict(value=TAILED, appearance=box_text(drawing))
        for how, drawing in {
            "a kerning number in TJ": b"[(emma.clarke4@nhs.net) -60000 (.evil.example)] TJ",
            "two moves, each within the box": SHOWN + b"300 0 Td 300 0 Td (.evil.example) Tj",
            "a text rise (Ts)": SHOWN + b"100 Ts (.evil.example) Tj",
            "a new line (TL, T*)": SHOWN + b"100 TL T* (.evil.example) Tj",
            "a new line (TL, ')": SHOWN + b"100 TL (.evil.example) '",
            'character spacing by "': SHOWN + b'0 500 (.evil.example) "',
            "scaled by cm": SHOWN + b"ET q 0.01 0 0 0.01 0 0 cm BT (.evil.example) Tj ET Q BT",
            "scaled by Tm, its origin in the box": SHOWN
            + b"0.01 0 0 0.01 100 5 Tm (.evil.example) Tj",
            "white on the white box": SHOWN + b"1 1 1 rg (.evil.example) Tj",
            "outlined in white (1 Tr)": SHOWN + b"1 Tr 1 1 1 RG (.evil.example) Tj",
            "a white rectangle painted over the tail": SHOWN
            + b"(.evil.example) Tj ET 1 1 1 rg 108.74 1.6 180 14.8 re f BT",
            "a clip narrowed to the part shown": b"ET Q q 2 0.8 105.74 15.6 re W n BT /Helv 10 Tf"
            b" 0 g 2 5.41 Td " + SHOWN + b"(.evil.example) Tj",
            "an ExtGState (transparency)": SHOWN + b"/GSa gs (.evil.example) Tj",
        }.items()
    },
    "the tail in the colour of the box's shading": dict(
        value=TAILED,
        appearance=b"q 0.8 g 0 0 310.2756 18 re f Q q 2 0.8 304.276 15.6 re W n BT /Helv 10 Tf"
        b" 2 5.41 Td 0 g (emma.clarke4@nhs.net) Tj 0.8 g (.evil.example) Tj ET Q",
    ),
    "a letter drawn over the one before it": dict(
        value="emma.clarke44@nhs.net",
        appearance=box_text(b"[(emma.clarke4) 556 (4@nhs.net)] TJ"),
    ),
    "a Square annotation drawn over the box": dict(
        value=EVIL,
        appearance=box_text(b"(bob@evil.example) Tj"),
        overlay=b"1 1 1 rg 0 0 310 18 re f BT /Fx 10 Tf 0 g 4 5.41 Td ("
        + SEEN.encode()
        + b") Tj ET",
    ),
    "widget rectangle off the page": dict(
        value=EVIL,
        appearance=box_text(b"(bob@evil.example) Tj"),
        widget_keys={
            "/Rect": ArrayObject([FloatObject(v) for v in (2000, 479.49, 2310.28, 497.49)])
        },
        page_content=DECOY,
    ),
}


@pytest.mark.parametrize("how", list(ACRO_VARIANTS))
def test_acroform_value_no_viewer_shows_is_a_finding(how: str) -> None:
    request = forms.read_pdf(tampered_widget("nominee2_email", **ACRO_VARIANTS[how]))
    assert request.kind == "pcn_admin_form" and request.source == "acroform"
    # What the page shows, or a finding on the box (not_as_shown; missing_field where the
    # box is off the page).
    findings = {f.field for f in request.findings}
    assert emails(request)[1] == SEEN or findings == {"nominees.1.email"}, (
        emails(request),
        request.findings,
    )


def test_a_box_drawn_many_times_smaller_than_its_text_says_is_not_shown() -> None:
    """A BBox a hundred times the widget's Rect: a viewer fits it into the Rect, and the
    10 points of the box's text are drawn at a tenth of a point."""
    request = forms.read_pdf(
        with_appearance_box(
            tampered_widget(
                "nominee2_email",
                EVIL,
                b"BT /Helv 10 Tf 0 g 2 5.41 Td (bob@evil.example) Tj ET",
                page_content=DECOY,
            ),
            "nominee2_email",
            (0, 0, 31027.56, 1800),
        )
    )
    assert [(f.code, f.field) for f in request.findings] == [("not_as_shown", "nominees.1.email")]


def test_a_box_under_another_widget_is_not_shown() -> None:
    """A push button over the box draws the address the approver expects."""
    request = forms.read_pdf(
        covered_by_widget(
            tampered_widget("nominee2_email", EVIL, box_text(b"(bob@evil.example) Tj")),
            "nominee2_email",
            SEEN,
        )
    )
    assert ("not_as_shown", "nominees.1.email") in [(f.code, f.field) for f in request.findings]


def test_a_font_whose_encoding_draws_another_glyph_is_read_as_drawn() -> None:
    """/Differences [53 /four]: the box's bytes say "clarke5", a viewer draws "clarke4"."""
    drawn_four = with_appearance_font(
        tampered_widget(
            "nominee2_email",
            "emma.clarke5@nhs.net",
            box_text(b"(emma.clarke5@nhs.net) Tj", pre=b"/Hx 10.0 Tf 0 0 0 rg"),
        ),
        "nominee2_email",
        "/Hx",
        differences=[(53, "/four")],
    )
    request = forms.read_pdf(drawn_four)
    assert [(f.code, f.field) for f in request.findings] == [("not_as_shown", "nominees.1.email")]


# ---------------------------------------------------------------- end to end
# An ICB's AEL contact forwards a PCN form she was given (and read) from inside NHSmail:
# it is applied at once, with no approver asked and nobody shown the address.

PCN_FLAT = (CORPUS / "pcn-flattened.pdf").read_bytes()


def pcn_with_hidden_address() -> bytes:
    # Nominee 2's visible row "Email address emma.clarke4@nhs.net" is at top 349.5; the
    # hidden row sits off the page's right edge just above it.
    return add_page_content(
        PCN_FLAT, 0, text_op(700, 339, "Email address") + text_op(800, 339, EVIL)
    )


def test_pcn_form_with_hidden_address_from_an_ael_contact_grants_nobody_unseen(
    db: Database,
) -> None:
    outcome = from_an_ael_contact(db, pcn_with_hidden_address())
    ref = outcome.split(" ")[0].rstrip(":")
    # Safe: nobody gets a role at an address no one who opened the PDF could see.
    assert EVIL not in holders(db, "U12345", "pcn"), (outcome, case_of(db, ref).state)


def test_a_pcn_form_whose_box_hides_its_tail_grants_nobody_unseen(db: Database) -> None:
    """The box shows emma.clarke4@nhs.net; a kerning number pushes ".evil.example" out of
    it. Sent by an AEL contact, the form would be applied with nobody else asked."""
    kerned = box_text(b"[(emma.clarke4@nhs.net) -60000 (.evil.example)] TJ")
    outcome = from_an_ael_contact(db, tampered_widget("nominee2_email", TAILED, kerned))
    assert TAILED not in holders(db, "U12345", "pcn"), outcome
