"""read_scan: a scanned form (a PDF of page images, or a JPEG, PNG or TIFF) read by OCR.

The worker (forms/scan_worker.py) turns the pages upright and reads each field from the
zone beside its label; here its readings are checked like any other form's values
(forms/form_fields.py), then judged as OCR: a value read with little confidence, or one that
reads cleanly but looks wrong in a way OCR makes things look wrong, is never guessed at.
It becomes a finding, and a scanned form with any finding goes to a person.

Every value read this way is kept with its confidence, page and place on the page under
fields["readings"][key] = {"value", "confidence", "source": "ocr", "page", "box"}, so the
case page can show it beside the page image and a correction can replace it.
"""

from __future__ import annotations

from typing import Any

from forms.definitions import FieldDef, FormDefinition, by_version
from forms.form_fields import build_request
from forms.model import Finding, ParsedRequest
from forms.normalise import normalise_email
from forms.sandbox import POOL, PdfLimits, WorkerFailure

SOURCE = "ocr"
# Nominees and signers are NHS staff: an address read from a scan that ends elsewhere is
# more likely a misread (nhs.net read as nhs.nel) than a real address.
KNOWN_DOMAINS = ("nhs.net", "nhs.uk")

PROBLEMS = {
    "scan_unrecognised": "The form is a scan (a picture of the pages) and we could not "
    "recognise which PCSE form it is; a member of our team will read it.",
    "image_too_large": "The image is too large for a scanned form ({detail}). Please scan "
    "the form again at an ordinary resolution (150 to 300 dpi).",
    "image_unreadable": "The image file is damaged, so we cannot read it. Please scan or "
    "photograph the form again.",
    "image_unsupported": "The photo is in HEIC format, which we cannot read. Please send it "
    "as a JPEG or PDF (on an iPhone: Settings, Camera, Formats, Most Compatible).",
    "not_a_page": "The image is too small to be a scanned form ({detail}).",
    "ocr_unavailable": "We could not read the scanned form automatically; a member of our "
    "team will read it.",
    "pdf_unreadable": "The scanned PDF is damaged, so we cannot read it. Please scan the "
    "form again and send it as a new attachment.",
    "pdf_too_large": "The scan has more pages than a form can have ({detail}). Please send "
    "only the completed form.",
    "pdf_timeout": "The scanned form took too long to read, so we stopped. Please scan it "
    "again at an ordinary resolution (150 to 300 dpi) and send it again.",
}


def _failed(code: str, message: str, detail: str | None = None) -> ParsedRequest:
    fields: dict[str, Any] = {
        "nominees": [],
        "main_contact": None,
        "signer": None,
        "organisation_code": None,
        "organisation_name": None,
    }
    if detail:
        fields["problem_detail"] = detail
    return ParsedRequest(kind=None, fields=fields, findings=[Finding(code, message)], source="scan")


def _known_domain(email: str) -> bool:
    domain = email.rsplit("@", 1)[-1]
    return any(domain == d or domain.endswith("." + d) for d in KNOWN_DOMAINS)


def _doubts(
    definition: FormDefinition,
    readings: dict[str, dict[str, Any]],
    request: ParsedRequest,
    min_confidence: float,
) -> list[Finding]:
    """Findings for values OCR may have misread; fields already found wrong are left alone."""
    flagged = {f.field for f in request.findings}
    doubts = []
    for f in definition.fields:
        reading = readings.get(f.key)
        if reading is None or f.key in flagged:
            continue
        where = definition.part(f.part).title
        if reading.get("value") in (None, ""):
            if float(reading["confidence"]) < min_confidence:
                # The label was not found (or the box not seen): blank or not, we cannot say.
                doubts.append(
                    Finding(
                        "ocr_not_read",
                        f"{where}: {f.noun} could not be read from the scan; a member of our "
                        "team will check it.",
                        f.key,
                    )
                )
            continue
        shown = (
            reading["value"] if f.type != "checkbox" else "ticked" if reading["value"] else "empty"
        )
        if float(reading["confidence"]) < min_confidence:
            doubts.append(
                Finding(
                    "ocr_low_confidence",
                    f"{where}: {f.noun} was read from the scan as '{shown}', but not clearly "
                    f"({float(reading['confidence']):.0f}% sure); a member of our team will "
                    "check it.",
                    f.key,
                )
            )
        elif f.type == "email" and not _domain_ok(f, readings, min_confidence):
            doubts.append(
                Finding(
                    "ocr_unexpected_domain",
                    f"{where}: {f.noun} was read from the scan as '{shown}', which is not an "
                    "NHS address; a member of our team will check it.",
                    f.key,
                )
            )
    return doubts


def _domain_ok(f: FieldDef, readings: dict[str, dict[str, Any]], min_confidence: float) -> bool:
    """An address not at a known domain is doubted when the person's name beside it reads
    clearly (so the form was readable, and the address is the odd one out)."""
    email = normalise_email(str(readings[f.key]["value"]))
    if email is None or _known_domain(email):
        return True
    name = readings.get(f.key.rsplit(".", 1)[0] + ".name")
    return not (name and name.get("value") and float(name["confidence"]) >= min_confidence)


def interpret_scan(ocr: dict[str, Any], min_confidence: float) -> ParsedRequest:
    """The request the worker's OCR readings hold."""
    definition = by_version(str(ocr.get("form_version") or ""))
    if definition is None:
        return _failed("scanned_form", PROBLEMS["scan_unrecognised"])
    readings: dict[str, dict[str, Any]] = ocr.get("readings") or {}
    values = {key: reading.get("value") for key, reading in readings.items()}
    request = build_request(definition, values, set(ocr.get("parts") or []), SOURCE)
    request.findings.extend(_doubts(definition, readings, request, min_confidence))
    labels = {f.key: f.label for f in definition.fields}
    request.fields["readings"] = {
        key: {**reading, "source": SOURCE, "label": labels.get(key, key)}
        for key, reading in readings.items()
    }
    request.fields["scan"] = {
        "pages": ocr.get("pages"),
        "turned": ocr.get("turned"),
        "skew": ocr.get("skew"),
        "min_confidence": min_confidence,
    }
    return request


def read_scan(data: bytes, limits: PdfLimits | None = None) -> ParsedRequest:
    """Read a scanned form by OCR in the sandboxed worker; every problem is a finding."""
    limits = limits or PdfLimits()
    job = {
        "op": "ocr",
        "max_pages": limits.ocr_max_pages,
        "timeout": limits.ocr_timeout_seconds,
    }
    result = POOL.run(data, limits, [], job)
    if isinstance(result, WorkerFailure):
        return _problem(result.code, result.detail)
    if not result.get("ok"):
        return _problem(str(result.get("code")), str(result.get("detail", "")))
    return interpret_scan(result["ocr"], limits.ocr_min_confidence)


def _problem(code: str, detail: str) -> ParsedRequest:
    if code in PROBLEMS:
        return _failed(code, PROBLEMS[code].format(detail=detail), detail)
    return _failed("ocr_unavailable", PROBLEMS["ocr_unavailable"], detail)
