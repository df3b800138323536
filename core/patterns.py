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
