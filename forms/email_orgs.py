"""The organisation an email is about: its ODS code (or contractor number) and its name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from forms.label_lines import LabelLine
from forms.normalise import ODS_PATTERNS, clean_ods

# A run of letters and digits that could be a code: A81001, d82044, TP7011, FQ560, U12345.
_CODE_TOKEN = re.compile(r"(?<![\w@./-])([A-Za-z]{1,3} ?\d[A-Za-z0-9]{1,6})(?![\w@-])")
# A value introduced as a code: "practice code is d82044", "contractor no. 12345".
_INTRODUCED = re.compile(
    r"\b(?:ods(?:\s+code)?|(?:practice|organi[sz]ation|org|pcn|pharmacy|branch|site)\s+"
    r"(?:code|number|no\.?)|contractor\s+(?:number|no\.?|code)|code)\s*+(?:is|was|:|=|-|–)?"
    r"\s*+\(?\s*+(?P<v>[A-Za-z0-9]{1,3} ?[A-Za-z0-9]{2,7})(?![\w@-])",
    re.I,
)
_BARE_PHARMACY = re.compile(r"^F(?=[A-Z0-9]*\d)[A-Z0-9]{4}$")

ORG_WORDS = (
    r"Surgery|Medical\s+Centre|Medical\s+Center|Health\s+Centre|Healthcare\s+Centre|"
    r"Medical\s+Practice|Family\s+Practice|Group\s+Practice|Practice|Opticians?|Optometrists|"
    r"Optical|Eyecare|Eye\s+Care|Pharmacy|Chemists?|Primary\s+Care\s+Network|PCN|"
    r"Dental\s+Care|Dental\s+Practice|Dental\s+Surgery|Clinic"
)
_CAP_WORD = r"(?:[A-Z][\w'’&.-]{0,30}|&)"
_ORG_NAME = re.compile(
    rf"(?<![\w'’&.-])(?P<name>(?:{_CAP_WORD}[ \t]+){{1,4}}(?:{ORG_WORDS})"
    r"(?:[ \t]+(?:Ltd|Limited|LLP|Plc))?)\b"
)
# Capitalised words that start sentences or name roles, not organisations.
_NOT_ORG_START = frozenset(
    {
        "the",
        "our",
        "your",
        "their",
        "my",
        "we",
        "i",
        "a",
        "an",
        "at",
        "for",
        "from",
        "of",
        "in",
        "to",
        "dear",
        "hi",
        "hello",
        "please",
        "new",
        "this",
        "that",
        "pl",
        "gpp",
        "oph",
        "nhs",
        "pcse",
        "main",
        "user",
        "and",
        "with",
        "by",
        "on",
        "as",
        "is",
        "are",
        "community",
        "local",
        "general",
        "gp",
        "ophthalmic",
        "dental",
        "performers",
        "pensions",
        "payments",
        "supplies",
        "records",
        "medical",
    }
)
_NOT_ORG_AT_ALL = re.compile(r"\b(Manager|Administrator|Partner|Director|Lead|Team)\b")


@dataclass(frozen=True)
class CodeFound:
    raw: str  # as written
    code: str  # cleaned
    labelled: bool  # given under a label or beside the word "code": taken even if malformed


def _matches_known_kind(code: str, allow_optical: bool) -> bool:
    kinds = ("gp_practice", "pcn") + (("optical",) if allow_optical else ())
    if any(ODS_PATTERNS[kind].match(code) for kind in kinds):
        return True
    return bool(_BARE_PHARMACY.match(code))


def _from_labels(labels: list[LabelLine]) -> CodeFound | None:
    for line in labels:
        if line.topic == "organisation_code":
            token = line.value.split("(")[0].strip(" .,;")
            if token:
                return CodeFound(token, clean_ods(token), True)
    return None


def _from_text(text: str, allow_optical: bool) -> CodeFound | None:
    """The best code-like token: one introduced as a code first, then one shaped like a
    practice, PCN or pharmacy code."""
    for match in _INTRODUCED.finditer(text):
        raw = match.group("v")
        if re.search(r"post\s*$", text[max(0, match.start() - 6) : match.start()], re.I):
            continue  # a postcode
        if any(ch.isdigit() for ch in raw):
            return CodeFound(raw, clean_ods(raw), True)
    shaped = None
    for match in _CODE_TOKEN.finditer(text):
        raw = match.group(1)
        code = clean_ods(raw)
        # Pharmacy codes are taken bare only as written in capitals (F + 4, with a digit).
        bare_ok = _matches_known_kind(code, allow_optical=False) and (
            not code.startswith("F") or raw.isupper() or ODS_PATTERNS["gp_practice"].match(code)
        )
        if shaped is None and bare_ok:
            shaped = CodeFound(raw, code, False)
    return shaped


def find_code(labels: list[LabelLine], texts: list[str], allow_optical: bool) -> CodeFound | None:
    """The organisation code from labelled lines, else from each text in turn."""
    labelled = _from_labels(labels)
    if labelled:
        return labelled
    for text in texts:
        found = _from_text(text, allow_optical)
        if found:
            return found
    return None


def _clean_org_name(name: str) -> str | None:
    words = name.split()
    while words and words[0].lower().strip("'’") in _NOT_ORG_START:
        words = words[1:]
    if len(words) < 2 or _NOT_ORG_AT_ALL.search(" ".join(words)):
        return None
    return " ".join(words)


def find_name(labels: list[LabelLine], texts: list[str]) -> str | None:
    """The organisation's name: a labelled line, else capitalised words ending in a word
    such as Surgery, Medical Centre, Opticians or Pharmacy, in each text in turn."""
    for line in labels:
        if line.topic == "organisation_name":
            value = re.split(r"(?<!\s)\s+\(|,", line.value)[0].strip(" .;")
            if value:
                return value
    for text in texts:
        for text_line in text.split("\n"):
            for match in _ORG_NAME.finditer(text_line):
                name = _clean_org_name(match.group("name"))
                if name:
                    return name
    return None
