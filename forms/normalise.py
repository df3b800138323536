"""Normalise and validate the values people write: ODS codes, email addresses, names."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

# NHS ODS code forms by organisation type (domain.md). Optical contractor numbers
# have no single public format, so any short run of letters and digits is accepted.
ODS_PATTERNS: dict[str, re.Pattern[str]] = {
    "gp_practice": re.compile(r"^[A-Z][0-9]{5}$"),
    "pcn": re.compile(r"^U[0-9]{5}$"),
    "icb": re.compile(r"^Q[A-Z0-9]{2}$"),
    "pharmacy": re.compile(r"^F[A-Z0-9]{4}$"),
    "optical": re.compile(r"^[A-Z0-9]{3,10}$"),
}

ORG_TYPE_WORDS = {
    "gp_practice": "GP practice code (a letter then five digits, like A81001)",
    "pcn": "PCN code (U then five digits, like U12345)",
    "icb": "ICB code (Q then two letters or digits, like QHM)",
    "pharmacy": "pharmacy code (F then four letters or digits, like FW844)",
    "optical": "optical contractor number",
}


def clean_ods(raw: str) -> str:
    """Upper-case and remove every space, dot and dash people put in codes."""
    return re.sub(r"[\s.\-]", "", raw or "").upper()


def is_valid_ods(code: str, org_type: str) -> bool:
    pattern = ODS_PATTERNS.get(org_type)
    if pattern is None:
        raise ValueError(f"unknown organisation type {org_type!r}")
    return bool(pattern.match(code))


def guess_org_type(code: str) -> str | None:
    """The organisation type a cleaned code's shape implies, when it implies one."""
    for org_type in ("pcn", "icb", "pharmacy", "gp_practice"):
        if ODS_PATTERNS[org_type].match(code):
            return org_type
    return None


def normalise_email(raw: str) -> str | None:
    """The address lower-cased, or None when it is not a valid address (no DNS look-up)."""
    candidate = (raw or "").strip().strip("<>").strip()
    if not candidate:
        return None
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.normalized.lower()


def tidy_name(raw: str) -> str:
    """Collapse spaces; title-case names typed all in upper or lower case."""
    name = " ".join((raw or "").split()).strip(" ,;")
    if name and (name.isupper() or name.islower()):
        name = " ".join(_title_word(w) for w in name.split(" "))
    return name


def _title_word(word: str) -> str:
    # Keep O'Brien, Smith-Jones, McDonald readable.
    parts = re.split(r"([-'])", word.lower())
    titled = [p.capitalize() if p not in "-'" else p for p in parts]
    out = "".join(titled)
    if out.startswith("Mc") and len(out) > 2:
        out = "Mc" + out[2].upper() + out[3:]
    return out
