"""Cells of the CSV files people open in a spreadsheet.

A spreadsheet runs a cell that starts with "=", "+", "-" or "@" as a formula, and some take
a leading tab or CR the same way: a nominee "named" `=HYPERLINK("https://…"&B2,"Jane Smith")`
on a form would run in the operator's spreadsheet. Such a text cell is written with a
leading apostrophe, which the spreadsheet shows as text (OWASP's advice for CSV injection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: Any) -> Any:
    """The value as a spreadsheet may show it: text that would start a formula is escaped."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def text_rows(rows: Iterable[Iterable[Any]]) -> list[list[Any]]:
    return [[as_text(value) for value in row] for row in rows]


def text_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{key: as_text(value) for key, value in record.items()} for record in records]
