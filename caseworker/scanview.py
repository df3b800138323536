"""A scanned form on the case page: each page as an image (drawn in the PDF sandbox) beside
the values read from it by OCR, the doubtful ones marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import forms
from caseworker.mailview import TooSlowToRead, opening_bytes, read_mail
from workflow.cases import get_case
from workflow.models import Case, CaseEvent

THUMBNAIL_WIDTH = 640
FULL_WIDTH = 1600


def scan_view(case: Case) -> dict[str, Any] | None:
    """The pages and, for each, the values read from it; None when nothing came from OCR."""
    fields = case.fields or {}
    scan = fields.get("scan")
    readings = fields.get("readings")
    if not isinstance(scan, dict) or not isinstance(readings, dict):
        return None
    threshold = float(scan.get("min_confidence") or 0)
    flagged = {f.get("field") for f in case.findings or [] if isinstance(f, dict)}
    pages: list[dict[str, Any]] = [
        {"number": n + 1, "values": []} for n in range(int(scan.get("pages") or 0))
    ]
    unplaced: list[dict[str, Any]] = []
    for key, reading in readings.items():
        if not isinstance(reading, dict):
            continue
        value = reading.get("value")
        confidence = float(reading.get("confidence") or 0)
        item = {
            "key": key,
            "label": reading.get("label") or key,
            "value": "ticked" if value is True else "not ticked" if value is False else value,
            "confidence": round(confidence),
            "source": reading.get("source", "ocr"),
            # A caseworker's correction (source "caseworker") is no longer in doubt.
            "doubtful": reading.get("source", "ocr") == "ocr"
            and (confidence < threshold or key in flagged),
        }
        page = reading.get("page")
        if isinstance(page, int) and 0 <= page < len(pages):
            pages[page]["values"].append(item)
        else:
            unplaced.append(item)
    return {
        "pages": pages,
        "unplaced": unplaced,
        "threshold": threshold,
        "turned": scan.get("turned"),
        "skew": scan.get("skew"),
    }


def _attachment_name(session: Session, case: Case) -> str | None:
    """The attachment the case's form was read from, as the history recorded it."""
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.event == "read")
    ).all()
    for event in events:
        name = (event.data or {}).get("attachment")
        if name:
            return str(name)
    return None


def form_file(session: Session, raw_dir: Path, ref: str, seconds: float) -> bytes | None:
    """The bytes of the attached form a case was read from (or its first form attachment);
    None also when reading its email takes more than `seconds` of CPU."""
    case = get_case(session, ref)
    raw = opening_bytes(session, raw_dir, case)
    if raw is None:
        return None
    try:
        attachments = read_mail(raw, seconds).attachments
    except TooSlowToRead:
        return None
    candidates = [a for a in attachments if forms.is_form_file(a.content_type, a.filename, a.data)]
    wanted = _attachment_name(session, case)
    chosen = next((a for a in candidates if a.filename == wanted), None)
    chosen = chosen or (candidates[0] if candidates else None)
    return chosen.data if chosen is not None else None
