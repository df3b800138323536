"""The promise for scanned forms, checked against a sample's expected fields: a value read by
OCR is either right or flagged for a person; nothing wrong passes silently."""

from __future__ import annotations

import unicodedata
from typing import Any

from forms.model import ParsedRequest


def folded(value: Any) -> Any:
    """Names compared without accents: a scan may lose an accent (the acknowledgement shows
    the practice what was read); every other character must be right."""
    if not isinstance(value, str):
        return value
    return "".join(
        c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c)
    ).casefold()


def dotted(fields: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in fields.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(dotted(value, path + "."))
        elif isinstance(value, list) and key == "nominees":
            for index, entry in enumerate(value):
                flat.update(dotted(entry, f"{path}.{index}."))
        else:
            flat[path] = value
    return flat


def misread(parsed: ParsedRequest, expected: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose value differs from the expected one: key -> (read, expected)."""
    got = dotted({k: parsed.fields.get(k) for k in expected})
    want = dotted(expected)
    return {
        key: (got.get(key), value)
        for key, value in want.items()
        if folded(got.get(key)) != folded(value)
    }


def unflagged(parsed: ParsedRequest, expected: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Misread fields that no finding points at: these would be silent misreads."""
    flagged = [f.field for f in parsed.findings]
    if None in flagged:  # a finding about the whole document: a person reads all of it
        return {}

    def covered(key: str) -> bool:
        return any(
            key == f or key.startswith(f + ".") or f.startswith(key + ".") for f in flagged if f
        )

    wrong = misread(parsed, expected)
    # A value read as blank on a form with any finding: the case goes to a person, who
    # sees the whole page beside the fields (nothing is applied from it unseen).
    return {
        key: pair
        for key, pair in wrong.items()
        if not covered(key) and not (pair[0] is None and parsed.findings)
    }
