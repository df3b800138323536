"""`Label: value` lines in email bodies, and what each label is about.

People write "Practice code: A81001", "Email - jane@nhs.net", "Name 1: Ruth Kelly", and
HTML tables arrive as "Name<TAB>Grace Liu"; each becomes a LabelLine with its topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The value runs to the end of the line (its trailing spaces are stripped after): a lazy
# value followed by \s*$ would try every space of a padded line against every later one.
_LINE = re.compile(
    r"^\s*(?:[-*•·>]\s*)?(?P<label>[A-Za-z][A-Za-z0-9 ()'’/&.#-]{0,40}?)\s*"
    r"(?::|\t|\s[-–|]\s)\s*+(?P<value>\S.*)"
)

# Topics, tried in order; the first whose pattern matches the label wins.
_TOPICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ignore",
        re.compile(
            r"\b(your|my|requester|requested|sender|from|sent|to|cc|subject|date|tel|telephone|"
            r"phone|mobile|fax|role|job|title|position|postcode|post code|reason|address line|"
            r"website|web|reference|ref|service|services|access)\b",
            re.I,
        ),
    ),
    (
        "organisation_code",
        re.compile(
            r"\b(ods|code|contractor\s*(number|no)|practice\s*(number|no)|organi[sz]ation\s*"
            r"(number|no|id)|account\s*(number|no))\b",
            re.I,
        ),
    ),
    (
        "organisation_name",
        re.compile(
            r"^(the\s+)?(practice|organi[sz]ation|org|surgery|pharmacy|pcn|company|business|"
            r"optical\s+practice|opticians?|site|branch)(\s+name)?$",
            re.I,
        ),
    ),
    ("email", re.compile(r"\be-?mail\b", re.I)),
    (
        "name",
        re.compile(
            r"\b(name|nominee|main\s+contact|colleague|person|user|admin|administrator|staff|"
            r"member)\b",
            re.I,
        ),
    ),
)

_MAX_LABEL_WORDS = 5
# A "label" holding one of these words is a sentence with a colon in it, not a label.
_SENTENCE_WORDS = re.compile(
    r"\b(has|have|had|is|are|was|were|will|would|could|can|please|left|need|needs|want|"
    r"like|we|i|you)\b",
    re.I,
)


@dataclass(frozen=True)
class LabelLine:
    topic: str  # organisation_code, organisation_name, email, name (or ignore)
    label: str
    value: str
    line: int  # index of the line in the text it came from


def topic_of(label: str) -> str | None:
    for topic, pattern in _TOPICS:
        if pattern.search(label):
            return topic
    return None


def label_lines(text: str) -> list[LabelLine]:
    """Every line of `text` that reads as a label and a value, with the label's topic."""
    found = []
    for number, line in enumerate(text.split("\n")):
        match = _LINE.match(line)
        if not match:
            continue
        label = " ".join(match.group("label").split())
        if len(label.split()) > _MAX_LABEL_WORDS or _SENTENCE_WORDS.search(label):
            continue
        topic = topic_of(label)
        if topic:
            found.append(LabelLine(topic, label, match.group("value").strip(), number))
    return found
