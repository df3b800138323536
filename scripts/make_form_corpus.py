"""Write the PDF form corpus under tests/corpus/forms/: each sample and what it should read as.

    .venv/bin/python scripts/make_form_corpus.py

Every sample is one of the shipped forms filled the ways people send them: AcroForm fields
filled by a PDF tool (pypdf, as a viewer would), flattened (the values drawn as page text,
no fields), flattened by "printing" the filled form (appearances merged into the page),
with odd case and spacing, with a part left out, unsigned, with invalid values, and scanned
(pages turned into images). Beside each NAME.pdf is NAME.expected.json: the kind, the
normalised fields and the findings (code and field) a careful reader would report.
Hostile files (bombs, truncated, encrypted, huge) are made by the tests themselves.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_blank_forms import render  # noqa: E402

from forms.definitions import FormDefinition, by_version  # noqa: E402

OUT = ROOT / "tests" / "corpus" / "forms"
GPP = "PCSE-UMF-GPP v1"
UAR = "PCSE-UMF-UAR v1"
PCN = "PCSE-UMF-PCN v1"

Values = dict[str, Any]


# --------------------------------------------------------------------------- ways of filling


def fill_acroform(
    definition: FormDefinition,
    values: Values,
    omit_parts: tuple[str, ...] = (),
    *,
    printed: bool = False,
) -> bytes:
    """The blank form with its fields filled by pypdf; `printed` merges the appearances
    into the page and drops the fields, as printing to PDF does."""
    blank = render(definition, omit_parts=omit_parts)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(blank)))
    fields = {
        name: ("/Yes" if value else "/Off") if isinstance(value, bool) else value
        for name, value in values.items()
    }
    writer.update_page_form_field_values(None, fields, auto_regenerate=False, flatten=printed)
    if printed:
        writer.remove_annotations(subtypes="/Widget")
        del writer.root_object["/AcroForm"]
        writer.metadata = None  # a printer driver writes its own document information
    else:
        writer.set_need_appearances_writer(True)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def flattened(
    definition: FormDefinition, values: Values, omit_parts: tuple[str, ...] = ()
) -> bytes:
    """The values drawn as page text on a form with no fields."""
    return render(definition, values, fillable=False, omit_parts=omit_parts)


def scanned(definition: FormDefinition, values: Values) -> bytes:
    """Each page of the flattened form photographed into a JPEG: no text layer at all."""
    document = pypdfium2.PdfDocument(flattened(definition, values))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)
    for index in range(len(document)):
        image = document[index].render(scale=1.1, grayscale=True).to_pil()
        jpeg = io.BytesIO()
        image.rotate(0.6, fillcolor=255, expand=False).save(jpeg, "JPEG", quality=45)
        jpeg.seek(0)
        canvas.drawImage(ImageReader(jpeg), 0, 0, width=A4[0], height=A4[1])
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def copier_scan(definition: FormDefinition, values: Values, dpi: int = 200) -> bytes:
    """The flattened form as a practice copier scans it: 200 dpi, turned 1°, noisy JPEGs."""
    from make_scan_corpus import as_pdf, copier

    document = pypdfium2.PdfDocument(flattened(definition, values))
    pages = [
        copier(document[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L"), 1.0, 1)
        for i in range(len(document))
    ]
    return as_pdf(pages, dpi, quality=70)


def letter() -> bytes:
    """A PDF that is not a form at all: a practice newsletter."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawString(50, 780, "Riverside Surgery – Patient Newsletter, Winter 2026")
    canvas.setFont("Helvetica", 11)
    lines = [
        "Flu clinics run every Saturday in November from 9am to 12 noon.",
        "Our new practice nurse, Amira Hussain, joins the team on 1 December.",
        "Please remember to order repeat prescriptions two working days in advance.",
    ]
    for number, line in enumerate(lines):
        canvas.drawString(50, 740 - number * 18, line)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


# --------------------------------------------------------------------------- values


GPP_VALUES: Values = {
    "organisation_name": "Riverside Surgery",
    "organisation_code": "A81001",
    "nominee_name": "Jane Smith",
    "nominee_email": "jane.smith@nhs.net",
    "signer_name": "Dr Anil Patel",
    "signer_capacity": "GP Partner",
    "signer_email": "anil.patel@nhs.net",
    "signer_date": "20/11/2026",
    "declaration": True,
}
GPP_FIELDS: dict[str, Any] = {
    "organisation_code": "A81001",
    "organisation_name": "Riverside Surgery",
    "nominees": [{"name": "Jane Smith", "email": "jane.smith@nhs.net", "services": ["gpp"]}],
    "main_contact": None,
    "signer": {
        "name": "Dr Anil Patel",
        "email": "anil.patel@nhs.net",
        "capacity": "gp_partner",
        "date": "2026-11-20",
        "declaration": True,
    },
}

UAR_VALUES: Values = {
    "organisation_name": "Beacon Family Practice",
    "organisation_code": "B82005",
    "admin1_name": "Chloe Evans",
    "admin1_email": "chloe.evans@nhs.net",
    "admin1_gpp": True,
    "admin1_pl": True,
    "admin1_oph": False,
    "admin2_name": "Aisha Rahman",
    "admin2_email": "aisha.rahman2@nhs.net",
    "admin2_gpp": True,
    "admin2_pl": False,
    "admin2_oph": False,
    "main_contact_name": "Mike Dunn",
    "main_contact_email": "mike.dunn@nhs.net",
    "signer_name": "Dr Helen Ward",
    "signer_capacity": "Caldicott Guardian",
    "signer_email": "helen.ward@nhs.net",
    "signer_date": "3 December 2026",
    "declaration": True,
}
UAR_FIELDS: dict[str, Any] = {
    "organisation_code": "B82005",
    "organisation_name": "Beacon Family Practice",
    "nominees": [
        {"name": "Chloe Evans", "email": "chloe.evans@nhs.net", "services": ["gpp", "pl"]},
        {"name": "Aisha Rahman", "email": "aisha.rahman2@nhs.net", "services": ["gpp"]},
    ],
    "main_contact": {"name": "Mike Dunn", "email": "mike.dunn@nhs.net"},
    "signer": {
        "name": "Dr Helen Ward",
        "email": "helen.ward@nhs.net",
        "capacity": "caldicott_guardian",
        "date": "2026-12-03",
        "declaration": True,
    },
}

PCN_VALUES: Values = {
    "organisation_name": "Coastal Primary Care Network",
    "organisation_code": "U12345",
    "nominee1_name": "Tariq Mahmood",
    "nominee1_email": "tariq.mahmood@nhs.net",
    "nominee2_name": "Emma Clarke",
    "nominee2_email": "emma.clarke4@nhs.net",
    "signer_name": "Gill Hart",
    "icb_code": "QHM",
    "signer_email": "gill.hart@nhs.net",
    "signer_date": "2026-11-24",
    "declaration": True,
}
PCN_FIELDS: dict[str, Any] = {
    "organisation_code": "U12345",
    "organisation_name": "Coastal Primary Care Network",
    "nominees": [
        {"name": "Tariq Mahmood", "email": "tariq.mahmood@nhs.net", "services": ["pcn"]},
        {"name": "Emma Clarke", "email": "emma.clarke4@nhs.net", "services": ["pcn"]},
    ],
    "main_contact": None,
    "signer": {
        "name": "Gill Hart",
        "email": "gill.hart@nhs.net",
        "capacity": "icb",
        "date": "2026-11-24",
        "declaration": True,
    },
    "icb_code": "QHM",
}

NOTHING: dict[str, Any] = {
    "organisation_code": None,
    "organisation_name": None,
    "nominees": [],
    "main_contact": None,
    "signer": None,
}


def changed(base: dict[str, Any], **updates: Any) -> dict[str, Any]:
    """A deep copy of `base` with dotted keys replaced ("signer.email", "nominees.0.name")."""
    copy = json.loads(json.dumps(base))
    for dotted, value in updates.items():
        node: Any = copy
        *parents, leaf = dotted.split("__")
        for name in parents:
            node = node[int(name)] if isinstance(node, list) else node[name]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return copy


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    name: str
    note: str
    make: Callable[[], bytes]
    kind: str | None
    source: str
    version: str | None
    fields: dict[str, Any]
    findings: list[tuple[str, str | None]] = field(default_factory=list)
    # Read by OCR: each value is right or flagged for a person (exact findings vary).
    ocr: bool = False


def samples() -> list[Sample]:
    gpp, uar, pcn = by_version(GPP), by_version(UAR), by_version(PCN)
    assert gpp and uar and pcn
    odd_gpp = {
        **GPP_VALUES,
        "organisation_name": "  riverside    SURGERY ",
        "organisation_code": " a81 001 ",
        "nominee_name": "JANE   o'brien",
        "nominee_email": "  Jane.OBrien@NHS.NET ",
        "signer_name": "dr anil   patel",
        "signer_capacity": "gp partner",
        "signer_date": "20 Nov 2026",
    }
    odd_gpp_fields = changed(
        GPP_FIELDS,
        organisation_name="riverside SURGERY",
        nominees__0__name="Jane O'Brien",
        nominees__0__email="jane.obrien@nhs.net",
        signer__name="Dr Anil Patel",
    )
    unsigned_gpp = {k: v for k, v in GPP_VALUES.items() if not k.startswith("signer")}
    unsigned_gpp["declaration"] = False
    no_email_gpp = {**GPP_VALUES, "signer_email": "", "declaration": False}
    bad_gpp = {
        **GPP_VALUES,
        "nominee_email": "jane.smith@nhs",
        "signer_date": "31/02/2026",
        "signer_capacity": "Practice Manager",
    }
    uar_one = {
        **{k: v for k, v in UAR_VALUES.items() if not k.startswith(("admin2", "main_contact"))},
        "admin1_gpp": False,
        "admin1_pl": False,
        "admin1_oph": True,
        "organisation_name": "Clearview Opticians",
        "organisation_code": "TP7011",
        "signer_name": "Daniel Brooks",
        "signer_capacity": "Company Director",
        "signer_email": "daniel.brooks@clearview-opticians.co.uk",
        "signer_date": "20.11.26",
    }
    uar_one_fields = {
        "organisation_code": "TP7011",
        "organisation_name": "Clearview Opticians",
        "nominees": [{"name": "Chloe Evans", "email": "chloe.evans@nhs.net", "services": ["oph"]}],
        "main_contact": None,
        "signer": {
            "name": "Daniel Brooks",
            "email": "daniel.brooks@clearview-opticians.co.uk",
            "capacity": "company_director",
            "date": "2026-11-20",
            "declaration": True,
        },
    }
    uar_odd = {
        **UAR_VALUES,
        "organisation_name": "HIGH STREET   PHARMACY",
        "organisation_code": "fw 844",
        "admin1_name": "  chloe  evans ",
        "admin1_email": "Chloe.Evans @NHS.net",
        "main_contact_name": "MIKE DUNN",
        "main_contact_email": " Mike.Dunn@nhs.NET",
        "signer_capacity": "company director",
        "signer_date": "03/12/26",
    }
    uar_odd_fields = changed(
        UAR_FIELDS,
        organisation_code="FW844",
        organisation_name="HIGH STREET PHARMACY",
        signer__capacity="company_director",
    )
    uar_no_service = {**UAR_VALUES, "admin2_gpp": False}
    uar_partial_admin2 = {**UAR_VALUES, "admin2_email": ""}
    pcn_odd = {
        **PCN_VALUES,
        "organisation_code": "u12 345",
        "icb_code": " qhm",
        "nominee1_name": "TARIQ MAHMOOD",
        "signer_date": "24th November 2026",
    }
    pcn_bad = {**PCN_VALUES, "organisation_code": "A81001"}
    pcn_unsigned = {
        k: v
        for k, v in PCN_VALUES.items()
        if not k.startswith("signer") and k not in ("icb_code", "declaration")
    }
    return [
        # ---- GPP certification form
        Sample(
            "gpp-acroform",
            "fields filled by a PDF tool",
            lambda: fill_acroform(gpp, GPP_VALUES),
            "gpp_admin_form",
            "acroform",
            GPP,
            GPP_FIELDS,
        ),
        Sample(
            "gpp-acroform-odd-case",
            "values typed in odd case and spacing",
            lambda: fill_acroform(gpp, odd_gpp),
            "gpp_admin_form",
            "acroform",
            GPP,
            odd_gpp_fields,
        ),
        Sample(
            "gpp-flattened",
            "values drawn as page text, no fields",
            lambda: flattened(gpp, {**GPP_VALUES, "signer_date": "2026-11-20"}),
            "gpp_admin_form",
            "page_text",
            GPP,
            GPP_FIELDS,
        ),
        Sample(
            "gpp-printed",
            "filled, then printed to PDF: appearances merged into the page",
            lambda: fill_acroform(gpp, GPP_VALUES, printed=True),
            "gpp_admin_form",
            "page_text",
            GPP,
            GPP_FIELDS,
        ),
        Sample(
            "gpp-flattened-odd-case",
            "flattened, odd case and spacing",
            lambda: flattened(gpp, odd_gpp),
            "gpp_admin_form",
            "page_text",
            GPP,
            odd_gpp_fields,
        ),
        Sample(
            "gpp-part-b-missing",
            "only the first page (Part A) sent",
            lambda: fill_acroform(gpp, GPP_VALUES, omit_parts=("B",)),
            "gpp_admin_form",
            "acroform",
            GPP,
            changed(GPP_FIELDS, signer=None),
            [("part_missing", None)],
        ),
        Sample(
            "gpp-flattened-part-a-missing",
            "only the second page (Part B) sent",
            lambda: flattened(gpp, GPP_VALUES, omit_parts=("A",)),
            "gpp_admin_form",
            "page_text",
            GPP,
            changed(GPP_FIELDS, organisation_code=None, organisation_name=None, nominees=[]),
            [("part_missing", None)],
        ),
        Sample(
            "gpp-unsigned",
            "Part B left blank",
            lambda: fill_acroform(gpp, unsigned_gpp),
            "gpp_admin_form",
            "acroform",
            GPP,
            changed(GPP_FIELDS, signer=None),
            [("not_signed", "signer")],
        ),
        Sample(
            "gpp-signer-email-missing",
            "Part B without the signer's email, box unticked",
            lambda: fill_acroform(gpp, no_email_gpp),
            "gpp_admin_form",
            "acroform",
            GPP,
            changed(GPP_FIELDS, signer__email=None, signer__declaration=False),
            [("not_signed", "signer.email"), ("declaration_unticked", "signer.declaration")],
        ),
        Sample(
            "gpp-invalid-ods",
            "a practice code one digit short",
            lambda: fill_acroform(gpp, {**GPP_VALUES, "organisation_code": "A8100"}),
            "gpp_admin_form",
            "acroform",
            GPP,
            changed(GPP_FIELDS, organisation_code="A8100"),
            [("invalid_ods_code", "organisation_code")],
        ),
        Sample(
            "gpp-flattened-bad-values",
            "flattened: bad email, impossible date, wrong signer",
            lambda: flattened(gpp, bad_gpp),
            "gpp_admin_form",
            "page_text",
            GPP,
            changed(GPP_FIELDS, nominees__0__email=None, signer__date=None, signer__capacity=None),
            [
                ("invalid_email", "nominees.0.email"),
                ("invalid_date", "signer.date"),
                ("invalid_capacity", "signer.capacity"),
            ],
        ),
        Sample(
            "gpp-scan",
            "printed, signed and scanned: images only",
            lambda: scanned(gpp, GPP_VALUES),
            "gpp_admin_form",
            "ocr",
            GPP,
            GPP_FIELDS,
            [],
            ocr=True,
        ),
        Sample(
            "gpp-scan-200dpi",
            "printed, signed and scanned on a copier at 200 dpi, turned 1°: read by OCR",
            lambda: copier_scan(gpp, GPP_VALUES),
            "gpp_admin_form",
            "ocr",
            GPP,
            GPP_FIELDS,
            [],
            ocr=True,
        ),
        # ---- User Administrator Request Form
        Sample(
            "uar-acroform",
            "two administrators, a main contact, signed",
            lambda: fill_acroform(uar, UAR_VALUES),
            "user_admin_form",
            "acroform",
            UAR,
            UAR_FIELDS,
        ),
        Sample(
            "uar-acroform-one-admin",
            "an optician: one OPH administrator, no main contact",
            lambda: fill_acroform(uar, uar_one),
            "user_admin_form",
            "acroform",
            UAR,
            uar_one_fields,
        ),
        Sample(
            "uar-flattened",
            "values drawn as page text, no fields",
            lambda: flattened(uar, UAR_VALUES),
            "user_admin_form",
            "page_text",
            UAR,
            UAR_FIELDS,
        ),
        Sample(
            "uar-printed",
            "filled, then printed to PDF",
            lambda: fill_acroform(uar, UAR_VALUES, printed=True),
            "user_admin_form",
            "page_text",
            UAR,
            UAR_FIELDS,
        ),
        Sample(
            "uar-acroform-odd-case",
            "a pharmacy, odd case and spacing",
            lambda: fill_acroform(uar, uar_odd),
            "user_admin_form",
            "acroform",
            UAR,
            uar_odd_fields,
        ),
        Sample(
            "uar-flattened-odd-case",
            "flattened, odd case and spacing",
            lambda: flattened(uar, uar_odd),
            "user_admin_form",
            "page_text",
            UAR,
            uar_odd_fields,
        ),
        Sample(
            "uar-no-service",
            "administrator 2 without a service ticked",
            lambda: fill_acroform(uar, uar_no_service),
            "user_admin_form",
            "acroform",
            UAR,
            changed(UAR_FIELDS, nominees__1__services=[]),
            [("missing_field", "nominees.1.services")],
        ),
        Sample(
            "uar-admin2-email-missing",
            "administrator 2 named without an email address",
            lambda: flattened(uar, uar_partial_admin2),
            "user_admin_form",
            "page_text",
            UAR,
            changed(UAR_FIELDS, nominees__1__email=None),
            [("missing_field", "nominees.1.email")],
        ),
        Sample(
            "uar-signature-page-missing",
            "page 2 (Parts F and G) not sent",
            lambda: fill_acroform(uar, UAR_VALUES, omit_parts=("F", "G")),
            "user_admin_form",
            "acroform",
            UAR,
            changed(UAR_FIELDS, signer=None, main_contact=None),
            [("part_missing", None)],
        ),
        Sample(
            "uar-scan",
            "scanned: images only",
            lambda: scanned(uar, UAR_VALUES),
            "user_admin_form",
            "ocr",
            UAR,
            UAR_FIELDS,
            [],
            ocr=True,
        ),
        # ---- PCN user admin request form
        Sample(
            "pcn-acroform",
            "two nominees, approved by the ICB",
            lambda: fill_acroform(pcn, PCN_VALUES),
            "pcn_admin_form",
            "acroform",
            PCN,
            PCN_FIELDS,
        ),
        Sample(
            "pcn-flattened",
            "values drawn as page text, no fields",
            lambda: flattened(pcn, PCN_VALUES),
            "pcn_admin_form",
            "page_text",
            PCN,
            PCN_FIELDS,
        ),
        Sample(
            "pcn-printed",
            "filled, then printed to PDF",
            lambda: fill_acroform(pcn, PCN_VALUES, printed=True),
            "pcn_admin_form",
            "page_text",
            PCN,
            PCN_FIELDS,
        ),
        Sample(
            "pcn-flattened-odd-case",
            "flattened, odd case and spacing",
            lambda: flattened(pcn, pcn_odd),
            "pcn_admin_form",
            "page_text",
            PCN,
            changed(PCN_FIELDS, nominees__0__name="Tariq Mahmood"),
        ),
        Sample(
            "pcn-invalid-ods",
            "a practice code where the PCN code belongs",
            lambda: fill_acroform(pcn, pcn_bad),
            "pcn_admin_form",
            "acroform",
            PCN,
            changed(PCN_FIELDS, organisation_code="A81001"),
            [("invalid_ods_code", "organisation_code")],
        ),
        Sample(
            "pcn-unsigned",
            "sent by the PCN before the ICB approved it",
            lambda: fill_acroform(pcn, pcn_unsigned),
            "pcn_admin_form",
            "acroform",
            PCN,
            changed(PCN_FIELDS, signer=None, icb_code=None),
            [("not_signed", "signer")],
        ),
        Sample(
            "pcn-part-b-missing",
            "only Part A sent, flattened",
            lambda: flattened(pcn, PCN_VALUES, omit_parts=("B",)),
            "pcn_admin_form",
            "page_text",
            PCN,
            changed(PCN_FIELDS, signer=None, icb_code=None),
            [("part_missing", None)],
        ),
        Sample(
            "pcn-scan",
            "scanned: images only",
            lambda: scanned(pcn, PCN_VALUES),
            "pcn_admin_form",
            "ocr",
            PCN,
            PCN_FIELDS,
            [],
            ocr=True,
        ),
        # ---- not a form
        Sample(
            "newsletter",
            "a PDF that is not one of the forms",
            letter,
            None,
            "pdf",
            None,
            NOTHING,
            [("unknown_form", None)],
        ),
    ]


def expected(sample: Sample) -> dict[str, Any]:
    fields = dict(sample.fields)
    if "icb_code" in fields and fields["icb_code"] is None:
        del fields["icb_code"]
    return {
        "note": sample.note,
        "kind": sample.kind,
        "source": sample.source,
        "form_version": sample.version,
        "fields": fields,
        **({"ocr": True} if sample.ocr else {}),
        "findings": [{"code": code, "field": key} for code, key in sample.findings],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    for sample in samples():
        (OUT / f"{sample.name}.pdf").write_bytes(sample.make())
        (OUT / f"{sample.name}.expected.json").write_text(
            json.dumps(expected(sample), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {sample.name}.pdf")


if __name__ == "__main__":
    main()
