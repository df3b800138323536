"""Row ids in web addresses and forms: numbers the database can take.

The ids are INTEGER columns: PostgreSQL refuses a larger number ("integer out of range")
and SQLite one past 64 bits (an OverflowError), either way a 500. A number past
PostgreSQL's range is no row of ours, and is answered as one missing.
"""

from __future__ import annotations

from starlette.convertors import IntegerConvertor, register_url_convertor

MAX_ROW_ID = 2**31 - 1  # PostgreSQL's INTEGER


def is_row_id(value: str) -> bool:
    """Could `value` be a row's id: digits only, within the database's range?"""
    digits = value.isascii() and value.isdigit()
    return digits and len(value) <= len(str(MAX_ROW_ID)) and int(value) <= MAX_ROW_ID


def at_most(limit: int) -> str:
    """A regular expression for the decimal numbers 0 to `limit`, so that a route does not
    match a larger one (Starlette would answer a convertor's error with a 500)."""
    top = str(limit)
    choices = [f"[0-9]{{1,{len(top) - 1}}}"] if len(top) > 1 else []
    for i, digit in enumerate(top):
        if digit != "0":
            rest = len(top) - i - 1
            choices.append(f"{top[:i]}[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(top)
    return "|".join(f"(?:{c})" for c in choices)


class RowIdConvertor(IntegerConvertor):
    """`{name:id}`: as `int`, but a number past MAX_ROW_ID does not match the route (404)."""

    regex = f"(?:{at_most(MAX_ROW_ID)})"


ROW_ID = "id"  # the convertor's name in route paths
register_url_convertor(ROW_ID, RowIdConvertor())
