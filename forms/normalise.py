"""Normalise and validate the values people write: ODS codes, email addresses, names."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from core.visible import visible

# NHS ODS code forms by organisation type. Optical contractor numbers
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


# An address of the plain shape nearly every address has: ASCII dot-atom words before the
# @, letters, digits and inner hyphens in two or more labels after it, ending in a TLD of
# letters. email_validator accepts each such address as it is (tests hold the two to the
# same answer); reading the rest takes it about 70 µs, on every request.
_PLAIN_LOCAL = r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*"
_PLAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
PLAIN_ADDRESS = re.compile(rf"{_PLAIN_LOCAL}@((?:{_PLAIN_LABEL}\.)+([A-Za-z]{{2,63}}))")
# A label with hyphens in its third and fourth places is Punycode or reserved (RFC 5891):
# email_validator decides those.
_RESERVED_LABEL = re.compile(r"(?:^|\.)..--")
_SPECIAL_USE_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def plain_address(candidate: str) -> str | None:
    """`candidate` lower-cased when it has the plain shape email_validator accepts as it
    is, else None (and email_validator reads it)."""
    if len(candidate) > 254:
        return None
    shape = PLAIN_ADDRESS.fullmatch(candidate)
    if shape is None:
        return None
    domain, tld = shape.groups()
    if tld.lower() in _SPECIAL_USE_TLDS or _RESERVED_LABEL.search(domain):
        return None
    return candidate.lower()


@lru_cache(maxsize=4096)  # one message checks the same few addresses several times
def normalise_email(raw: str) -> str | None:
    """The address lower-cased, or None when it is not a valid address (no DNS look-up).

    Only ASCII addresses: an internationalised one ("jane.smith@nhѕ.net", with a Cyrillic
    "ѕ") looks like another to an approver, and the outbox sends to ASCII addresses only."""
    candidate = (raw or "").strip().strip("<>").strip()
    if not candidate:
        return None
    found = plain_address(candidate) or validated_email(candidate)
    return found if found is not None and found.isascii() else None


def validated_email(candidate: str) -> str | None:
    """What email_validator makes of `candidate`, lower-cased; None when it refuses it."""
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.normalized.lower()


def tidy_name(raw: str) -> str:
    """Collapse spaces; title-case names typed all in upper or lower case."""
    name = " ".join(visible(raw or "").split()).strip(" ,;")
    if name and (name.isupper() or name.islower()):
        return " ".join(_title_word(w) for w in name.split(" "))
    # A name typed partly in capitals ("jane SMITH"): fix the words typed all one case,
    # keep the mixed ones (McDonald, DeVito) as written.
    return " ".join(
        _title_word(w)
        if len(w) > 1 and (w.isupper() or w.islower()) and w not in NAME_PARTICLES
        else w
        for w in name.split(" ")
    )


# How long, and how many words, a person's name read from a form or an email may be: it is
# shown to an approver beside the person's address, and must read as nothing but a name.
PERSON_NAME_LIMIT = 100
PERSON_NAME_WORDS = 8
# Besides letters and the marks on them: what names are written with (O'Brien, O’Neill,
# Smith-Jones, Smith – Jones, Dr. A. Patel, Jane Smith (Locum), Robert "Bob" Smith,
# Gal·la), and the joiners some scripts spell names with.
_NAME_PUNCTUATION = frozenset(" .'’‘`‐-–(),\"“”·\u200c\u200d")
# Words an instruction or a link is made of, which no one's name is: "PCSE has verified
# this, reply APPROVE" passes every other test of a name.
_NOT_IN_A_NAME = frozenset(
    {
        "approve",
        "approved",
        "approval",
        "reject",
        "rejected",
        "verified",
        "verify",
        "confirm",
        "confirmed",
        "reply",
        "click",
        "password",
        "login",
        "www",
        "http",
        "https",
    }
)
# A word holding a dot between two letters, other than initials (J.R.R.) and the titles and
# prefixes written with one (Dr.Patel, St.Clair, Mc.Gregor): a web address or the local
# part of an email address ("jane.smith at nhs.net", "www.reset.example").
_DOTTED = re.compile(r"[^\W\d_]{2,}\.[^\W\d_]|[^\W\d_]\.[^\W\d_]{2,}")
_DOTTED_PREFIX = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Prof|St|Mc|Mac)\.(?=[^\W\d_])")
# Commas: "Smith, Jane", "Dr Jane Smith, MBBS, MRCGP"; more is a sentence.
PERSON_NAME_COMMAS = 3
# Alphabets whose letters look alike: a word of one mixed with another is a disguise
# ("АPPROVE" with a Cyrillic А), never a name.
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def name_problem(name: str) -> str | None:
    """Why a tidied `name` is not a person's name, in words for the sender; None when it is.

    What a form or an email calls a name reaches the approver's screen: a name holding an
    address ("Jane Smith (jane.smith@nhs.net)" beside the address the role goes to), a
    sentence of instructions, or a link must not read there as one."""
    if "@" in name:
        return "it holds an email address"
    if not re.search(r"[^\W\d_]", name):
        return "it holds no letters"
    if len(name) > PERSON_NAME_LIMIT:
        return f"it is longer than {PERSON_NAME_LIMIT} characters"
    if len(name.split()) > PERSON_NAME_WORDS:
        return f"it runs to more than {PERSON_NAME_WORDS} words"
    odd = next((c for c in name if not _in_a_name(c)), None)
    if odd is not None:
        return f"it holds '{odd}', which a name does not"
    if unicodedata.normalize("NFKC", name) != unicodedata.normalize("NFC", name):
        return "it holds letters written in another form (fullwidth, say)"
    if any(len(_scripts(word)) > 1 for word in name.split()):
        return "it mixes the letters of different alphabets in one word"
    if name.count(",") > PERSON_NAME_COMMAS:
        return f"it holds more than {PERSON_NAME_COMMAS} commas"
    if _DOTTED.search(_DOTTED_PREFIX.sub("", name)):
        return "it holds what reads as a web or email address"
    instruction = next(
        (w for w in re.findall(r"[^\W\d_]+", name) if w.lower() in _NOT_IN_A_NAME), None
    )
    if instruction is not None:
        return f"it holds '{instruction}', which reads as an instruction, not a name"
    return None


def _scripts(word: str) -> set[str]:
    """The look-alike alphabets a word's letters come from."""
    found = set()
    for char in word:
        if char.isalpha():
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in _LOOKALIKE_SCRIPTS:
                found.add(script)
    return found


def _in_a_name(char: str) -> bool:
    return char.isalpha() or char in _NAME_PUNCTUATION or unicodedata.category(char) in ("Mn", "Mc")


# Lower-case words that belong inside surnames (de la Cruz, van der Berg).
NAME_PARTICLES = frozenset(
    {
        "de",
        "la",
        "le",
        "du",
        "da",
        "di",
        "van",
        "der",
        "den",
        "von",
        "bin",
        "binti",
        "al",
        "el",
        "dos",
        "das",
    }
)


def _title_word(word: str) -> str:
    # Keep O'Brien, Smith-Jones, McDonald readable.
    parts = re.split(r"([-'])", word.lower())
    titled = [p.capitalize() if p not in "-'" else p for p in parts]
    out = "".join(titled)
    if out.startswith("Mc") and len(out) > 2:
        out = "Mc" + out[2].upper() + out[3:]
    return out


# --------------------------------------------------------------------------- text


def tidy_text(raw: str | None) -> str:
    """Collapse runs of spaces and line breaks; strip stray punctuation at the ends."""
    return " ".join(visible(raw or "").split()).strip(" ,;")


def email_candidate(raw: str | None) -> str:
    """What someone typed as an address, with the spaces PDFs and people put beside its "@"
    and dots removed ("Chloe.Evans @NHS.net"). Any other space is kept, so that the address
    is refused: a run of spaces may push the rest of a form's box out of sight
    ("jane@nhs.net" shown, "jane@nhs.net      .evil.example" saved)."""
    text = _LOOSE_SPACE.sub("", (raw or "").strip())
    return text.strip("<>()[]'\",;:.").replace("mailto:", "")


# One space beside an "@" or a dot, as PDFs' text and people's typing leave them.
_LOOSE_SPACE = re.compile(r"(?<=[@.])[^\S\n](?=\S)|(?<=\S)[^\S\n](?=[@.])")


# --------------------------------------------------------------------------- dates

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*,?\s+"
_DATE_FORMS = (
    # 2026-11-20, 2026/11/20
    (re.compile(r"^(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})$"), "ymd"),
    # 20/11/2026, 20-11-26, 20.11.26 (day first, as written in England)
    (re.compile(r"^(?P<d>\d{1,2})\s*[-/.]\s*(?P<m>\d{1,2})\s*[-/.]\s*(?P<y>\d{2}|\d{4})$"), "dmy"),
    # 20 Nov 2026, 20th November 2026, Friday 20 November 2026, 20-Nov-26
    (
        re.compile(
            rf"^(?:{_WEEKDAY})?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?[\s\-/.]*(?:of\s+)?"
            rf"(?P<mon>{_MONTH})\.?,?[\s\-/.]*(?P<y>\d{{4}}|\d{{2}})$",
            re.I,
        ),
        "dmony",
    ),
    # November 20, 2026
    (
        re.compile(
            rf"^(?:{_WEEKDAY})?(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?"
            rf"\s+(?P<y>\d{{4}})$",
            re.I,
        ),
        "mondy",
    ),
)


def parse_date(raw: str | None) -> date | None:
    """The date in the ways people write one (day first), or None when it is not a date."""
    text = " ".join((raw or "").split()).strip(" ,.")
    for pattern, _ in _DATE_FORMS:
        match = pattern.match(text)
        if not match:
            continue
        parts = match.groupdict()
        month = MONTHS[parts["mon"].lower()] if parts.get("mon") else int(parts["m"])
        year = int(parts["y"])
        if year < 100:
            year += 2000
        try:
            return date(year, month, int(parts["d"]))
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- signers

# The capacities a signer may sign in (core.catalogue.SIGNER_CAPACITIES plus the ICB),
# recognised from the words people write in the capacity box.
CAPACITY_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("caldicott_guardian", re.compile(r"caldicot", re.I)),
    ("company_director", re.compile(r"\bdirector\b", re.I)),
    ("gp_partner", re.compile(r"\bpartner\b", re.I)),
    (
        "icb",
        re.compile(r"\bicb\b|integrated\s+care\s+board|authori[sz]ed\s+email\s+list|\bael\b", re.I),
    ),
)


def normalise_capacity(raw: str | None) -> str | None:
    """gp_partner, caldicott_guardian, company_director or icb; None for anything else."""
    text = tidy_text(raw).replace("_", " ")
    for capacity, pattern in CAPACITY_WORDS:
        if pattern.search(text):
            return capacity
    return None


# --------------------------------------------------------------------------- checkboxes

TICKED_WORDS = frozenset({"x", "yes", "y", "on", "true", "1", "✓", "✔", "☑", "☒", "ticked"})


def is_ticked(raw: str | bool | None) -> bool:
    if isinstance(raw, bool):
        return raw
    return tidy_text(raw).casefold() in TICKED_WORDS
