"""What was read by OCR from a scanned form, for the emails that must show it: the
acknowledgement (so the practice can say if anything was misread) and the approval request
(so the approver approves the values that will be applied)."""

from __future__ import annotations

from typing import Any

from workflow.models import Case

# Read by OCR but not shown: the organisation's name is free text, checked against nothing
# (the organisation is known by its code, and the emails give the directory's name), and
# a line of instructions written there would read as ours.
NOT_SHOWN = frozenset({"organisation_name"})


def scan_values(case: Case) -> list[dict[str, Any]]:
    """Each value read by OCR, in form order: its label, the value, and whether it was
    read with less confidence than the threshold. Empty when nothing came from OCR."""
    fields = case.fields or {}
    readings = fields.get("readings") or {}
    threshold = float((fields.get("scan") or {}).get("min_confidence", 0))
    shown = []
    for path, reading in readings.items():
        if not isinstance(reading, dict) or reading.get("source") != "ocr" or path in NOT_SHOWN:
            continue
        value = reading.get("value")
        if value in (None, "", False):
            continue
        shown.append(
            {
                "label": reading.get("label") or "",
                "value": "ticked" if value is True else str(value),
                "doubtful": float(reading.get("confidence") or 0) < threshold,
            }
        )
    return shown
