"""The case reference and approval token as they appear in subjects and bodies: one spelling."""

from __future__ import annotations

import re

# "[PCSE-2026-000123]"; mail clients and people sometimes add spaces inside the brackets.
CASE_REF_RE = re.compile(r"\[[ \t]*+(PCSE-\d{4}-\d{6})[ \t]*+\]", re.IGNORECASE)
# "APV-" and 20 hex digits: a single-use approval token.
TOKEN_RE = re.compile(r"\bAPV-([0-9a-f]{20})\b", re.IGNORECASE)


# A token wherever it stands when masking, inside a link too ("…%0AAPV-…", "=3DAPV-…":
# no boundary is asked for; masking what only looks like a token costs nothing).
_ANY_TOKEN = re.compile(r"APV-([0-9a-f]{20})", re.IGNORECASE)


def mask_tokens(text: str) -> str:
    """Text with every approval token cut to its first characters: a token is a key, and
    the history and pages show it only as a label."""
    return _ANY_TOKEN.sub(lambda m: f"APV-{m.group(1)[:6].lower()}…", text)


# A character reference to a letter, digit or hyphen ("&#65;", "&#x2d;"): what a browser
# shows as a code, though the markup does not spell one.
_PLAIN_REFERENCE = re.compile(r"&#(?:[xX]0*([0-9a-fA-F]{1,6})|0*([0-9]{1,7}));?")


def _spelt(match: re.Match[str]) -> str:
    hexadecimal, decimal = match.groups()
    code = int(hexadecimal, 16) if hexadecimal else int(decimal)
    char = chr(code) if code < 0x80 else ""
    return char if char.isalnum() or char == "-" else match.group()


def mask_tokens_in_markup(markup: str) -> str:
    """mask_tokens for HTML: references to plain characters are written out first, so that
    a code spelt "&#65;PV-…" is cut as the browser would show it."""
    if "&#" in markup:
        markup = _PLAIN_REFERENCE.sub(_spelt, markup)
    return mask_tokens(markup)
