"""Who is leaving and who is coming in, when an email hands a role from one person to another.

"Change our main contact from Tom Baker (tom@…) to Lisa Moore (lisa@…)" names both people;
the one to set up is Lisa. Each person the reader found is looked for in the writer's own
text, and the words right before and right after each mention say which side they are on:
"from", "replace", "instead of", "remove", "old main contact:" or "… is leaving", "… has
retired" mark the person going; "to", "with", "add", "new main contact:" or "… instead of",
"… (replacing" mark the one coming. Only the words next to a mention, within its sentence,
count; a person marked both ways is not guessed at: the caller leaves the choice to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from forms.email_people import EMAIL, Person

# A sentence ends at a full stop, question or exclamation mark followed by a space, or at a
# line break; a dot inside an address is not an end.
_SENTENCE_END = re.compile(r"[.!?;](?=\s)|\n")
# How far either side of a mention its cue words are looked for.
WINDOW = 80

_MAIN_CONTACT = r"(?:main\s+contact|contact|admin(?:istrator)?)"
_FILLER = (
    r"(?:(?:the|our|my|as)\s+)?(?:(?:current|existing|old|present)\s+)?"
    rf"(?:{_MAIN_CONTACT}\s*,?\s*)?"
)
# Words just before a person that mark them as the one going.
_GOING_BEFORE = re.compile(
    rf"(?:\bfrom|\breplac(?:e|es|ing)|\binstead\s+of|\bin\s+place\s+of|\bremov(?:e|ing)|"
    rf"\btak(?:e|es|ing)\s+over\s+from|\bsucceed(?:s|ing)?|\bdelete|\bswap|"
    rf"\b(?:retirement|departure|resignation)\s+of|\b{_MAIN_CONTACT}\s+(?:was|used\s+to\s+be)|"
    rf"\b(?:old|current|previous|outgoing|existing|former|present)\s*(?:{_MAIN_CONTACT})?\s*(?:is|was|:|-|–)?)"
    rf"\s*[:\-–]?\s*{_FILLER}\s*$",
    re.I,
)
# Words just after a person that mark them as the one going.
_GOING_AFTER = re.compile(
    r"^\s*[,\-–]?\s*(?:who\s+)?(?:is\s+leaving|has\s+left|left\b|is\s+retiring|has\s+retired|"
    r"retires|retired|will\s+be\s+leaving|leaves\b|is\s+moving\s+on|has\s+moved\s+on|"
    r"is\s+stepping\s+down|has\s+stepped\s+down|steps\s+down|no\s+longer|will\s+no\s+longer|"
    r"is\s+no\s+longer|(?:is|will\s+be|to\s+be|should\s+be|needs\s+to\s+be)\s+(?:removed|replaced)|"
    r"->|→|=>)",
    re.I,
)
# Words just before a person that mark them as the one coming in.
_COMING_BEFORE = re.compile(
    r"(?:\bto|\bwith|\badd|\band\s+add|\bmake|\bappoint|\bset\s+up|->|→|=>|\bis\s+now|"
    r"\breplaced\s+(?:(?:him|her|them)\s+)?(?:by|with)|"
    rf"\bnew\s*{_MAIN_CONTACT}?\s*(?:is|will\s+be|should\s+be|:|-|–)?|"
    rf"\b{_MAIN_CONTACT}\s+(?:is\s+now|will\s+be|should\s+be|is\s+to\s+be))"
    r"\s*[:\-–]?\s*(?:(?:my|our)\s+(?:colleague|practice\s+manager|manager)\s*,?\s*)?$",
    re.I,
)
# Words just after a person that mark them as the one coming in.
_COMING_AFTER = re.compile(
    r"^\s*[,\-–]?\s*\(?\s*(?:who\s+)?(?:is\s+replacing|replacing|will\s+replace|replaces|"
    r"instead\s+of|in\s+place\s+of|is\s+taking\s+over|will\s+take\s+over|takes\s+over|"
    r"taking\s+over|(?:is|will\s+be|as)\s+(?:the\s+|our\s+)?new\b|will\s+become)",
    re.I,
)


class Side(Enum):
    COMING = "coming"
    GOING = "going"
    BOTH = "both"  # marked both ways: a person must say
    UNMARKED = "unmarked"


@dataclass(frozen=True)
class Handover:
    """The people read, each with the side the text puts them on."""

    sides: tuple[tuple[Person, Side], ...]

    @property
    def going(self) -> list[Person]:
        return [p for p, side in self.sides if side is Side.GOING]

    @property
    def staying(self) -> list[Person]:
        """Everyone not marked as going, in the order read (the candidates for the role)."""
        return [p for p, side in self.sides if side is not Side.GOING]

    @property
    def unclear(self) -> list[Person]:
        return [p for p, side in self.sides if side is Side.BOTH]

    @property
    def marked(self) -> bool:
        return any(side is not Side.UNMARKED for _, side in self.sides)


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    low = max(0, start - WINDOW)
    ends = [m.end() for m in _SENTENCE_END.finditer(text, low, start)]
    left = ends[-1] if ends else low
    high = min(len(text), end + WINDOW)
    after = _SENTENCE_END.search(text, end, high)
    return left, after.start() if after else high


def _mentions(text: str, person: Person) -> list[tuple[int, int]]:
    """Where the person is named or their address written, joined into one span when the
    name and the address stand together ("Tom Baker (tom@…)")."""
    spans: list[tuple[int, int]] = []
    if person.name:
        words = [re.escape(w) for w in person.name.split()]
        pattern = re.compile(r"(?<![\w'’-])" + r"[ \t]+".join(words) + r"(?![\w'’-])", re.I)
        spans += [(m.start(), m.end()) for m in pattern.finditer(text)]
    address = person.email or person.written_email
    if address:
        spans += [
            (m.start(), m.end())
            for m in EMAIL.finditer(text)
            if m.group(0).rstrip(".").lower() == address.lower()
        ]
    spans.sort()
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        gap = text[joined[-1][1] : start] if joined else ""
        if joined and start >= joined[-1][1] and re.fullmatch(r"[\s,:;(<\[\-–]{0,4}", gap):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _side_of(text: str, person: Person) -> Side:
    going = coming = False
    for start, end in _mentions(text, person):
        left, right = _sentence_bounds(text, start, end)
        before = text[left:start]
        after = re.sub(r"^\s*[)>\]]", "", text[end:right])
        going = going or bool(_GOING_BEFORE.search(before) or _GOING_AFTER.match(after))
        coming = coming or bool(_COMING_BEFORE.search(before) or _COMING_AFTER.match(after))
    if going and coming:
        return Side.BOTH
    if going:
        return Side.GOING
    return Side.COMING if coming else Side.UNMARKED


def read_handover(text: str, people: list[Person]) -> Handover:
    """Each person's side, read from the writer's own text."""
    return Handover(tuple((person, _side_of(text, person)) for person in people))
