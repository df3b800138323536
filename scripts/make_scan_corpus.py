"""Write the scanned-form corpus under tests/corpus/scans/: printed, scanned and photographed
copies of the shipped forms, each with the fields a careful reader would read from it.

    .venv/bin/python scripts/make_scan_corpus.py           # the small committed corpus
    .venv/bin/python scripts/make_scan_corpus.py --all OUT  # every variant, for benchmarks

Each form is filled with varied values (names with accents and apostrophes, mixed-case
addresses, codes written with spaces), drawn as a flattened PDF, rasterised at the
scanner's resolution (150, 200 or 300 dpi), turned a little (±1–3°, or a quarter or half
turn, as a page fed the wrong way round), given copier noise and saved the ways scans
arrive: a PDF of JPEG pages, a multi-page TIFF (bilevel, CCITT G4, as copiers send), a
PNG or a JPEG. Beside each NAME.EXT is NAME.expected.json: the kind, the form version and
the normalised fields (the same shape read_pdf returns), plus "must_read": true when the
sample is typed and clean enough that every value must be read exactly.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2
from PIL import Image, ImageFilter
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_blank_forms import render  # noqa: E402

from forms.definitions import by_version  # noqa: E402

OUT = ROOT / "tests" / "corpus" / "scans"
Values = dict[str, Any]


# --------------------------------------------------------------------------- values

UAR_VALUES: Values = {
    "organisation_name": "St Mary's Medical Centre",
    "organisation_code": "Y02 345",
    "admin1_name": "Siobhán O'Neill",
    "admin1_email": "Siobhan.ONeill@nhs.net",
    "admin1_gpp": True,
    "admin1_pl": False,
    "admin1_oph": True,
    "admin2_name": "",
    "admin2_email": "",
    "admin2_gpp": False,
    "admin2_pl": False,
    "admin2_oph": False,
    "main_contact_name": "Kwame Mensah-Boateng",
    "main_contact_email": "kwame.mensah1@nhs.net",
    "signer_name": "Dr Zoë Ashworth",
    "signer_capacity": "GP Partner",
    "signer_email": "zoe.ashworth@nhs.net",
    "signer_date": "14/10/2026",
    "declaration": True,
}
UAR_FIELDS: dict[str, Any] = {
    "organisation_code": "Y02345",
    "organisation_name": "St Mary's Medical Centre",
    "nominees": [
        {"name": "Siobhán O'Neill", "email": "siobhan.oneill@nhs.net", "services": ["gpp", "oph"]}
    ],
    "main_contact": {"name": "Kwame Mensah-Boateng", "email": "kwame.mensah1@nhs.net"},
    "signer": {
        "name": "Dr Zoë Ashworth",
        "email": "zoe.ashworth@nhs.net",
        "capacity": "gp_partner",
        "date": "2026-10-14",
        "declaration": True,
    },
}

GPP_VALUES: Values = {
    "organisation_name": "Oakwood Lane Surgery",
    "organisation_code": "b86 017",
    "nominee_name": "Marie-Claire D'Souza",
    "nominee_email": "Marie.DSouza@NHS.net",
    "signer_name": "Dr Peter McAllister",
    "signer_capacity": "Caldicott Guardian",
    "signer_email": "peter.mcallister@nhs.net",
    "signer_date": "2 November 2026",
    "declaration": True,
}
GPP_FIELDS: dict[str, Any] = {
    "organisation_code": "B86017",
    "organisation_name": "Oakwood Lane Surgery",
    "nominees": [
        {"name": "Marie-Claire D'Souza", "email": "marie.dsouza@nhs.net", "services": ["gpp"]}
    ],
    "main_contact": None,
    "signer": {
        "name": "Dr Peter McAllister",
        "email": "peter.mcallister@nhs.net",
        "capacity": "caldicott_guardian",
        "date": "2026-11-02",
        "declaration": True,
    },
}

PCN_VALUES: Values = {
    "organisation_name": "North Tyneside Coastal PCN",
    "organisation_code": "U 45678",
    "nominee1_name": "Oluwaseun Adeyemi",
    "nominee1_email": "o.adeyemi@nhs.net",
    "nominee2_name": "Ríona Byrne",
    "nominee2_email": "riona.byrne@nhs.net",
    "signer_name": "Helen O'Connor",
    "icb_code": "QHM",
    "signer_email": "helen.oconnor@nhs.net",
    "signer_date": "05/11/2026",
    "declaration": True,
}
PCN_FIELDS: dict[str, Any] = {
    "organisation_code": "U45678",
    "organisation_name": "North Tyneside Coastal PCN",
    "nominees": [
        {"name": "Oluwaseun Adeyemi", "email": "o.adeyemi@nhs.net", "services": ["pcn"]},
        {"name": "Ríona Byrne", "email": "riona.byrne@nhs.net", "services": ["pcn"]},
    ],
    "main_contact": None,
    "signer": {
        "name": "Helen O'Connor",
        "email": "helen.oconnor@nhs.net",
        "capacity": "icb",
        "date": "2026-11-05",
        "declaration": True,
    },
    "icb_code": "QHM",
}

FORMS = {
    "uar": ("PCSE-UMF-UAR v1", "user_admin_form", UAR_VALUES, UAR_FIELDS),
    "gpp": ("PCSE-UMF-GPP v1", "gpp_admin_form", GPP_VALUES, GPP_FIELDS),
    "pcn": ("PCSE-UMF-PCN v1", "pcn_admin_form", PCN_VALUES, PCN_FIELDS),
}


# --------------------------------------------------------------------------- the copier


def pages(form: str, dpi: int) -> list[Image.Image]:
    """The filled form printed (flattened) and rasterised at `dpi`, greyscale."""
    version, _, values, _ = FORMS[form]
    definition = by_version(version)
    assert definition is not None
    document = pypdfium2.PdfDocument(render(definition, values, fillable=False))
    return [
        document[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        for i in range(len(document))
    ]


def copier(image: Image.Image, angle: float, seed: int, noise: float = 12.0) -> Image.Image:
    """A copier's page: turned by `angle` degrees, slightly soft, with toner speckle."""
    rng = random.Random(seed)
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
    soft = turned.filter(ImageFilter.GaussianBlur(0.6))
    speckle = Image.effect_noise(soft.size, noise).point(lambda v: 255 if v > 40 else 0)
    dots = Image.new("L", soft.size, 255)
    for _ in range(int(soft.width * soft.height / 20000)):
        x, y = rng.randrange(soft.width), rng.randrange(soft.height)
        dots.putpixel((x, y), 60)
    out = Image.composite(soft, Image.new("L", soft.size, 235), speckle)
    return Image.composite(out, dots, dots.point(lambda v: 255 if v > 128 else 0))


def quarter(image: Image.Image, degrees: int) -> Image.Image:
    return image.rotate(degrees, expand=True, fillcolor=255) if degrees else image


def as_pdf(images: list[Image.Image], dpi: int, quality: int = 45) -> bytes:
    """A scanner's PDF: one JPEG per page, no text layer."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)
    for image in images:
        jpeg = io.BytesIO()
        image.save(jpeg, "JPEG", quality=quality, dpi=(dpi, dpi))
        jpeg.seek(0)
        width, height = (A4[0], A4[1]) if image.height >= image.width else (A4[1], A4[0])
        canvas.setPageSize((width, height))
        canvas.drawImage(ImageReader(jpeg), 0, 0, width=width, height=height)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def as_tiff(images: list[Image.Image], dpi: int) -> bytes:
    """A copier's multi-page TIFF: bilevel pages, CCITT Group 4."""
    bilevel = [i.point(lambda v: 255 if v > 150 else 0).convert("1") for i in images]
    out = io.BytesIO()
    bilevel[0].save(
        out, "TIFF", compression="group4", save_all=True, append_images=bilevel[1:], dpi=(dpi, dpi)
    )
    return out.getvalue()


def as_image(images: list[Image.Image], dpi: int, fmt: str) -> bytes:
    """One page as a photo (JPEG) or screenshot-like PNG (palette of greys, small)."""
    out = io.BytesIO()
    if fmt == "PNG":
        images[0].quantize(16).save(out, "PNG", optimize=True, dpi=(dpi, dpi))
    else:
        images[0].save(out, "JPEG", quality=50, dpi=(dpi, dpi))
    return out.getvalue()


# --------------------------------------------------------------------------- samples


@dataclass
class Scan:
    name: str
    note: str
    form: str
    ext: str
    make: Callable[[], bytes]
    must_read: bool = True
    first_page_only: bool = False


def _scan(form: str, dpi: int, angles: tuple[float, ...], fmt: str, turn: int = 0) -> bytes:
    images = [
        quarter(copier(page, angle, seed=dpi + n), turn)
        for n, (page, angle) in enumerate(zip(pages(form, dpi), angles, strict=False))
    ]
    if fmt == "pdf":
        return as_pdf(images, dpi)
    if fmt == "tiff":
        return as_tiff(images, dpi)
    return as_image(images, dpi, fmt)


def committed() -> list[Scan]:
    """The small corpus kept in the repository: one of each way a scan arrives."""
    return [
        Scan(
            "uar-pdf-150dpi-rot2",
            "copier PDF, 150 dpi, turned 2° and -1.5°",
            "uar",
            "pdf",
            lambda: _scan("uar", 150, (2.0, -1.5), "pdf"),
        ),
        Scan(
            "gpp-tiff-200dpi-rot-3",
            "multi-page G4 TIFF, 200 dpi, turned -3° and 1°",
            "gpp",
            "tiff",
            lambda: _scan("gpp", 200, (-3.0, 1.0), "tiff"),
        ),
        Scan(
            "pcn-pdf-300dpi-upside-down",
            "copier PDF, 300 dpi, fed upside down",
            "pcn",
            "pdf",
            lambda: _scan("pcn", 300, (0.5, -0.5), "pdf", turn=180),
        ),
        Scan(
            "uar-png-200dpi-page1",
            "first page only, PNG, 200 dpi, turned 1°",
            "uar",
            "png",
            lambda: _scan("uar", 200, (1.0,), "PNG"),
            must_read=True,
            first_page_only=True,
        ),
        Scan(
            "gpp-jpeg-150dpi-sideways",
            "first page photographed sideways (90°), JPEG",
            "gpp",
            "jpg",
            lambda: _scan("gpp", 150, (0.0,), "JPEG", turn=90),
            first_page_only=True,
        ),
    ]


def every_variant() -> list[Scan]:
    """Every form at every resolution and turn, for benchmarks and wider checks."""
    found = []
    for form in FORMS:
        for dpi in (150, 200, 300):
            for angle in (-3.0, -1.0, 1.5, 3.0):
                found.append(
                    Scan(
                        f"{form}-pdf-{dpi}dpi-rot{angle:g}",
                        f"{dpi} dpi, {angle:g}°",
                        form,
                        "pdf",
                        lambda f=form, d=dpi, a=angle: _scan(f, d, (a, -a), "pdf"),
                    )
                )
            for turn in (90, 180):
                found.append(
                    Scan(
                        f"{form}-pdf-{dpi}dpi-turn{turn}",
                        f"{dpi} dpi, {turn}°",
                        form,
                        "pdf",
                        lambda f=form, d=dpi, t=turn: _scan(f, d, (0.5, -0.5), "pdf", turn=t),
                    )
                )
    return found


def expected(scan: Scan) -> dict[str, Any]:
    version, kind, _, fields = FORMS[scan.form]
    return {
        "note": scan.note,
        "kind": kind,
        "source": "ocr",
        "form_version": version,
        "must_read": scan.must_read,
        "first_page_only": scan.first_page_only,
        "fields": fields,
    }


def write(scans: list[Scan], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for scan in scans:
        data = scan.make()
        (out / f"{scan.name}.{scan.ext}").write_bytes(data)
        (out / f"{scan.name}.expected.json").write_text(
            json.dumps(expected(scan), indent=2, ensure_ascii=False) + "\n"
        )
        print(f"wrote {scan.name}.{scan.ext} ({len(data) // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--all", metavar="OUT", type=Path, help="write every variant to OUT")
    args = parser.parse_args()
    if args.all:
        write(every_variant(), args.all)
    else:
        write(committed(), OUT)


if __name__ == "__main__":
    main()
