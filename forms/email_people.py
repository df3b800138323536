"""The people an email puts forward for a role: their names and email addresses.

The nominee is told apart from the sender (unless the sender asks for the role themselves),
from addresses in the signature and disclaimer (the caller passes only the writer's own
text), from quoted earlier mail (likewise), and from addresses given for replies or copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forms.label_lines import LabelLine
from forms.normalise import email_candidate, normalise_email, tidy_name

# Anchored at the start of a run of address characters, with bounded parts, so that long
# runs of letters cannot make the search quadratic.
EMAIL = re.compile(r"(?<![\w.+'’-])[\w.+'’-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}")
_TITLE = r"(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Professor)\.?"
# One word of a name (Jane, McDonald, O'Brien, Smith-Jones, A.), starting at a word boundary
# and with bounded parts so that long runs of letters cannot make the search slow.
_TOKEN = (
    r"(?<![\w'’-])(?:[A-Z]\.|[A-Z][a-z]{0,30}(?:[A-Z][a-z]{1,30})?(?:[-'’][A-Z][a-z]{1,30}){0,3})"
    r"(?![\w'’-])"
)
NAME = rf"(?:{_TITLE}[ \t]+)?{_TOKEN}(?:[ \t]+{_TOKEN}){{1,3}}"
_NAME = re.compile(NAME)
MAX_NAME_WORDS = 6
# How far either side of an address a name is looked for, and how many addresses are read.
CONTEXT_CHARS = 200
MAX_ADDRESSES = 40
_COURTESY = re.compile(r"^(?:Mr|Mrs|Ms|Miss|Mx)\.?\s+")
# Possessive runs: the spaces either side of the punctuation cannot be shared out again.
_LEFT_NAME = re.compile(rf"(?P<name>{NAME})[ \t]*+[,:\-–]?+[ \t]*+[(<\[]?+[ \t]*+$")
_RIGHT_NAME = re.compile(rf"^[ \t]*+[)>\]]?+[ \t]*+[(,\-–][ \t]*+(?P<name>{NAME})")
_NAME_ONLY = re.compile(
    rf"\b(?:set[ \t]+up|add|make|give|appoint|nominate|assign|set)[ \t]+"
    rf"(?:(?:my|our)[ \t]+(?:colleague|practice[ \t]+manager|manager)[ \t]+)?"
    rf"(?P<name>{NAME})[ \t]+(?:as|to|with|the)\b"
)
_NOT_NOMINEE_CONTEXT = re.compile(
    r"\b(reply|replies|respond|cc|copy|copied|generic|shared|inbox|queries|contact\s+(?:me|us)|"
    r"my\s+(?:e-?mail|address)|reach\s+(?:me|us))\b[^@]{0,40}$",
    re.I,
)
_MY_ADDRESS = re.compile(
    r"\bmy\s+(?:e-?mail(?:\s+address)?|address)\s+is\s+(?P<address>\S+@\S+)", re.I
)
_SELF = re.compile(
    r"\b(?:could|can|may)\s+I\s+(?:please\s+)?(?:be|have|become|get)\b|"
    r"\bI\s+(?:would|'d|’d)\s+like\s+to\s+(?:be|become|have|take)\b|"
    r"\bwould\s+like\s+to\s+be(?:come)?\s+(?:set\s+up|added|made|given|the)\b|"
    r"\b(?:set|add|make|give|assign|register)\s+me\b|\bfor\s+myself\b|\bmyself\s+as\b|"
    r"\bI\s+(?:am|'m|’m)\s+the\s+new\s+main\s+contact\b",
    re.I,
)
# Words that are never part of a person's name in these emails.
_NOT_NAME_TEXT = """
practice manager surgery medical centre center health pcn organisation organization
administrator administrators admin user users management main contact email e-mail address
dear hi hello please thanks thank regards kind best nhs nhsmail pcse online performers
performer list lists gp gpp pl oph partner payments pensions ophthalmic team director pharmacy
opticians optician optometrists eyecare role roles sir madam yes no both and the our my his her
their could can would we i new following also many good morning afternoon evening supplies
records business operations reception service services access request form care network icb
ltd limited sorry monday tuesday wednesday thursday friday saturday sunday re fw fwd
statements claims
"""
_NOT_NAME_WORDS = frozenset(_NOT_NAME_TEXT.split())
_LEADING_TEXT = """
both please can could yes no and also the our my his her their hi hello dear thanks sorry
following so but if it this that we i as for to from with is are
"""
_LEADING_COMMON = frozenset(_LEADING_TEXT.split())


@dataclass
class Person:
    name: str | None
    email: str | None  # normalised; None when missing or not valid
    written_email: str | None = None  # as written, kept when it is not a valid address
    source: str = "text"  # label, text, sender, name_only


def _is_name_word(word: str) -> bool:
    return word.lower().strip(".,'’") not in _NOT_NAME_WORDS


def clean_person_name(raw: str) -> str | None:
    """A tidy name without courtesy titles, or None when the words are not a person's name.

    Words that cannot be part of a name are trimmed from either end ("Peter Lang. His");
    one inside the run means it is not a name ("Harbour View Medical Practice").
    """
    words = raw.strip(" .,;:").split()
    while words and (
        words[0].lower().rstrip(".") in _LEADING_COMMON or not _is_name_word(words[0])
    ):
        words = words[1:]
    while words and not _is_name_word(words[-1]):
        words = words[:-1]
    if not words or not all(_is_name_word(w) for w in words):
        return None
    name = _COURTESY.sub("", tidy_name(" ".join(words).strip(" .,")))
    name = re.sub(r"^(Dr|Prof)\.\s", r"\1 ", name)
    bare = [w for w in name.split() if not re.fullmatch(_TITLE, w)]
    if len(bare) < 2 and not (bare and name != bare[0]):
        return None
    return name


def name_from_address(address: str) -> str | None:
    """Jane Smith from jane.smith@nhs.net (first and last name joined by . _ or -)."""
    local = address.split("@")[0]
    parts = [re.sub(r"\d+", "", p) for p in re.split(r"[._-]", local)]
    parts = [p for p in parts if p]
    if len(parts) != 2 or not all(len(p) >= 2 and p.isalpha() for p in parts):
        return None
    return " ".join(p.capitalize() for p in parts)


def _letters(word: str) -> str:
    return re.sub(r"[^a-z]", "", word.lower())


def spells(address: str, name: str) -> bool:
    """Whether an address's local part is built from the name: jane.smith, jsmith,
    j.smith, janesmith, tom.obrien for Tom O'Brien (digits ignored)."""
    parts = [p for p in (_letters(x) for x in re.split(r"[._-]", address.split("@")[0])) if p]
    words = [_letters(w) for w in name.split() if not re.fullmatch(_TITLE, w)]
    words = [w for w in words if w]
    if not parts or len(words) < 2:
        return False
    first, last = words[0], words[-1]
    joined = "".join(parts)
    return (
        all(p in words for p in parts if len(p) > 1) and any(len(p) > 1 for p in parts)
    ) or joined in {first + last, first[0] + last, last + first, "".join(words)}


def _paragraph_of(text: str, position: int) -> tuple[str, int]:
    start = text.rfind("\n\n", 0, position)
    start = 0 if start < 0 else start + 2
    end = text.find("\n\n", position)
    return text[start : len(text) if end < 0 else end], start


def _name_near(text: str, match: re.Match[str], excluded_names: set[str]) -> str | None:
    """The name that goes with the address at `match`: written beside it on its line, else
    the name in its paragraph that the address spells, else the nearest before it."""
    line_start = max(text.rfind("\n", 0, match.start()) + 1, match.start() - CONTEXT_CHARS)
    line_end = text.find("\n", match.end())
    line_end = min(len(text) if line_end < 0 else line_end, match.end() + CONTEXT_CHARS)
    before = text[line_start : match.start()]
    after = text[match.end() : line_end]
    for found in (_LEFT_NAME.search(before), _RIGHT_NAME.match(after)):
        name = clean_person_name(found.group("name")) if found else None
        if name and name.lower() not in excluded_names:
            return name
    paragraph, offset = _paragraph_of(text, match.start())
    if len(paragraph) > CONTEXT_CHARS * 10:  # a wall of text: look only near the address
        low = max(0, match.start() - offset - CONTEXT_CHARS * 5)
        paragraph, offset = paragraph[low : low + CONTEXT_CHARS * 10], offset + low
    candidates = []
    for found in _NAME.finditer(paragraph):
        name = clean_person_name(found.group(0))
        if name and name.lower() not in excluded_names:
            candidates.append((offset + found.start(), name))
    for _, name in candidates:
        if spells(match.group(0), name):
            return name
    earlier = [name for position, name in candidates if position < match.start()]
    return earlier[-1] if earlier else None


# "New main contact: Lisa Moore (replacing Tom Baker)": the aside names someone else.
_ASIDE = re.compile(
    r"[(\[,;–-]?\s*\b(?:replacing|instead\s+of|in\s+place\s+of|taking\s+over\s+from|"
    r"who\s+replaces|replaces|was|previously|formerly)(?=\s)",
    re.I,
)


def _without_aside(value: str) -> str:
    head = _ASIDE.split(value, maxsplit=1)[0]
    if EMAIL.search(head) or not _ASIDE.search(value):
        return head
    # "Lisa Moore (was Lisa Smith) lisa@…": the bracketed aside goes, the address stays.
    return re.sub(r"\([^()]*\)", " ", value) if re.search(r"\([^()]*\)", value) else head


def _split_value(value: str) -> tuple[str | None, str | None]:
    """A labelled value may hold a name, an address, or both ("Lisa Moore (lisa@x)"); an
    aside about someone else ("(replacing Tom Baker)") is not part of it."""
    value = _without_aside(value)
    found = EMAIL.search(value)
    address = found.group(0) if found else None
    rest = EMAIL.sub(" ", value) if found else value
    rest = re.sub(r"[()<>\[\],;:]", " ", rest).strip(" -–")
    return (rest or None), address


def _person(name: str | None, written: str | None, source: str) -> Person:
    email = normalise_email(email_candidate(written)) if written else None
    return Person(name, email, written if written and email is None else None, source)


def from_labels(labels: list[LabelLine]) -> list[Person]:
    """People given in labelled lines: a name joins the current person unless they already
    have one, and so does an address, so "Name 1 / Email 1 / Name 2 / Email 2" and "Email /
    Name" both pair up."""
    people: list[Person] = []
    for line in labels:
        if line.topic not in ("name", "email"):
            continue
        if len(people) > MAX_ADDRESSES:  # a list, not a request: the rest are not read
            break
        name, address = _split_value(line.value)
        if line.topic == "email" or (name and len(name.split()) > MAX_NAME_WORDS):
            name = None
        if name:
            if not people or people[-1].name:
                people.append(Person(None, None, None, "label"))
            people[-1].name = clean_person_name(name) or tidy_name(name)
        if address:
            if not people or people[-1].email or people[-1].written_email:
                people.append(Person(None, None, None, "label"))
            found = _person(people[-1].name, address, "label")
            people[-1].email, people[-1].written_email = found.email, found.written_email
    return people


def from_text(
    text: str, *, skip: set[str], excluded_names: set[str], sender_email: str | None = None
) -> list[Person]:
    """People whose addresses appear in the running text, each with the name beside it.

    The sender's own name is not taken for someone else's address (it is for their own).
    """
    people: list[Person] = []
    for count, match in enumerate(EMAIL.finditer(text)):
        if count >= MAX_ADDRESSES:
            break
        written = match.group(0).rstrip(".")
        if written.lower() in skip or normalise_email(written) in skip:
            continue
        line_start = max(text.rfind("\n", 0, match.start()) + 1, match.start() - CONTEXT_CHARS)
        if _NOT_NOMINEE_CONTEXT.search(text[line_start : match.start()]):
            continue
        own_address = sender_email is not None and normalise_email(written) == sender_email
        name = _name_near(text, match, set() if own_address else excluded_names)
        person = _person(name, written, "text")
        if person.name is None and person.email:
            person.name = name_from_address(person.email)
        people.append(person)
    return people


def name_for_address(text: str, address: str, excluded_names: set[str]) -> str | None:
    """The name written near an address in the text ("Her email: …" under a sentence that
    names her), else the name the address spells."""
    for match in EMAIL.finditer(text):
        if normalise_email(match.group(0).rstrip(".")) == address:
            return _name_near(text, match, excluded_names) or name_from_address(address)
    return name_from_address(address)


def asks_for_self(text: str) -> bool:
    return bool(_SELF.search(text))


def own_address_given(text: str) -> str | None:
    """The address a writer gives as theirs ("my email is …"), when it is valid."""
    match = _MY_ADDRESS.search(text)
    return normalise_email(email_candidate(match.group("address"))) if match else None


def named_without_address(text: str, excluded_names: set[str]) -> Person | None:
    """ "Please set up Gemma Hart as …" with no address anywhere."""
    for match in _NAME_ONLY.finditer(text):
        name = clean_person_name(match.group("name"))
        if name and name.lower() not in excluded_names:
            return Person(name, None, None, "name_only")
    return None


def dedupe(people: list[Person]) -> list[Person]:
    seen: set[str] = set()
    kept = []
    for person in people:
        key = person.email or person.written_email or f"name:{person.name}"
        if key in seen:
            continue
        seen.add(key)
        kept.append(person)
    return kept
