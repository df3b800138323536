"""What of an approver's rejection reason may reach the requester: contact details replaced
where they stand, and the approver's own name and address kept out.

A contact detail is removed by itself, wherever it stands, so that the rest of the sentence
keeps its meaning ("call [number removed] for details, but her replacement should be added
instead"): any email address (also written "jo dot bloggs at nhs dot net"), any web address,
any run of seven or more digits (spaces, dashes, brackets and "+" between them; an "O" typed
for a zero counts as a digit), and extension or bleep numbers. Every pattern is bounded, so
linear on hostile input. The approver's full reply stays on the case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.latin import latin_folded

NUMBER_REMOVED = "[number removed]"
EMAIL_REMOVED = "[email address removed]"
WEB_REMOVED = "[web address removed]"
PLACEHOLDERS = (NUMBER_REMOVED, EMAIL_REMOVED, WEB_REMOVED)

_EMAIL = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_DOT = r"(?:dot|\(dot\)|\[dot\])"
_AT = r"(?:at|\(at\)|\[at\])"
_SPELT_EMAIL = re.compile(
    rf"\b[\w.+-]{{1,64}}(?: {_DOT} [\w-]{{1,63}}){{0,4}} {_AT} [\w-]{{1,63}}"
    rf"(?: {_DOT} [\w-]{{1,63}}){{1,4}}\b",
    re.IGNORECASE,
)
_WEB = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]{1,500}", re.IGNORECASE)
# A digit (or an "O" typed for a zero, not starting a word) and what may part it from the
# next: a run of these with seven or more is a telephone, pager or card number. A case
# reference ("PCSE-2026-000001") is not one.
_DIGIT = r"(?:\d|[Oo](?![A-NP-Za-np-z]))"
_RUN_START = r"(?<![\w-])(?<!PCSE-)\+?\(?\d"
_RUN_END = r"(?:,? ?(?:ext(?:ension)?|x)\.? ?\d{1,6}\b)?"
_RUN = re.compile(rf"{_RUN_START}(?:(?:[ ()-]{{1,2}}|, ?)?{_DIGIT}){{1,40}}{_RUN_END}", re.I)
# A comma parts the groups of a telephone number ("01632, 960123") but also a list of
# years or counts: without a leading 0 or +, the groups between commas are read apart.
_RUN_NO_COMMA = re.compile(rf"{_RUN_START}(?:[ ()-]{{0,2}}{_DIGIT}){{1,40}}{_RUN_END}", re.I)
_MIN_DIGITS = 7
_EXTENSION = re.compile(r"\b(?:ext(?:ension)?|bleep|pager|x)\.?:? ?(?:no\.? ?)?\d{2,6}\b", re.I)
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof"})
_NAME_WORD = re.compile(r"[a-z][a-z'-]+")


@dataclass(frozen=True)
class Signer:
    """The approver as recorded (the approval request's name and address), and the words of
    the names of the people the request names (its nominees): an answer that names one of
    them besides approving ("Jane Is A Locum" under the signature) says more."""

    name: str
    email: str
    others: frozenset[str] = frozenset()

    def name_words(self) -> list[str]:
        """The recorded name's words (name_words)."""
        return name_words(self.name)


def name_words(name: str) -> list[str]:
    """A name's words, lower-cased and with Latin letters' accents taken off (core.latin:
    "Siân" is "sian"), without titles or initials; a double-barrelled name as its parts, as
    a reply's words are read ("Smith-Jones" is "smith" and "jones")."""
    words = _NAME_WORD.findall(latin_folded(name).lower().replace("-", " "))
    return [w for w in words if w not in _TITLES]


def redact(text: str) -> str:
    """`text` with every email address, web address and long number replaced where it
    stands by a placeholder saying what was there."""
    text = _EMAIL.sub(EMAIL_REMOVED, text)
    text = _WEB.sub(WEB_REMOVED, text)
    text = _SPELT_EMAIL.sub(EMAIL_REMOVED, text)
    text = _RUN.sub(_number, text)
    return _EXTENSION.sub(NUMBER_REMOVED, text)


def _number(match: re.Match[str]) -> str:
    run = match.group()
    if "," in run and not run.lstrip("(").startswith(("0", "+")):
        return _RUN_NO_COMMA.sub(_long_number, run)
    return _long_number(match)


def _long_number(match: re.Match[str]) -> str:
    run = match.group()
    digits = sum(c.isdigit() or c in "Oo" for c in run)
    return NUMBER_REMOVED if digits >= _MIN_DIGITS else run


def has_contact(text: str) -> bool:
    """Whether `text` holds an email address, web address or long number."""
    return redact(text) != text


def names_signer(text: str, signer: Signer | None) -> bool:
    """Whether `text` names the approver: their recorded address, or every word of their
    recorded name (in any order and case, "BLOGGS, Jo" too)."""
    if signer is None:
        return False
    low = text.lower()
    if signer.email and signer.email.lower() in low:
        return True
    words = signer.name_words()
    present = set(re.findall(r"[a-z][a-z'-]*", low))
    return bool(words) and all(w in present for w in words)


def only_placeholders(text: str) -> bool:
    """Nothing but placeholders and punctuation: no reason left to send."""
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, " ")
    return not re.search(r"[^\W_]", text)
