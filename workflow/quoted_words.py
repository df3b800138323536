"""Words an approver wrote inside the quoted copy of our email.

The verdict is read from the text above the quote (workflow.replies). People also write
inside it: "NO - not Jane, she has left" beside a nominee's line, often in red, under an
APPROVE at the top. Nobody reading that reply would set Jane up, so an approval whose quote
holds words that are not ours, where they stand, goes to a person.

The reply is read as its own text followed by one of our emails to the approver on the
case (its subject and text, or its subject and HTML), word by word: words the reply has
that the email does not have at that place are the approver's, however the client rewrapped
the lines, and even when the same words stand elsewhere in the email ("REJECT", say, which
its instructions spell). A word is any run of letters or digits, in any script, after
Unicode's compatibility folding (fullwidth and mathematical letters read as plain ones);
an address is one word, so a digit added to one counts; a question or exclamation mark and
a symbol ("❌", "×") count too. Passed over, only where each belongs: where the quote begins,
its header (From, Sent, To, Cc, Subject, each once, the Subject ours; "On … wrote:") and
the banners mail systems put on what they deliver ("You don't often get email from …"), in
at most _MOST_HEADER_WORDS words; after the end of our email, a disclaimer the approver's
server adds, every paragraph of it one. Links are left out, as each client writes them its
own way, and so is whatever the client cut from the end of the quote; an address cut from
inside it is not passed over.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from core.htmltext import DROP, MARK, html_to_text
from forms.mailtext import quote_start, reads_as_attribution
from workflow.replies import is_disclaimer_opening

# A link, or a piece of one where a client broke it across lines ("ct=APPROVE%20%5B…").
_LINK = re.compile(
    r"<?(?:mailto:|https?://|www\.|cid:)[^\s>\]]*[>\]]?|\S*%[0-9a-f]{2}\S*", re.IGNORECASE
)
# An address (one word), a word of letters and digits, or a mark people answer with.
_TOKEN = re.compile(
    r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+"
    r"|[^\W_]+(?:'[^\W_]+)*"
    r"|[?!\u00d7\u2190-\u2bff\U0001f000-\U0001faff]"
)
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u00b4`", "'"))
# The header a mail client writes above what it quotes, line by line ("*From:*" in bold).
_HEADER_LINE = re.compile(
    r"\s*\*?(from|sent|to|cc|subject|date)\*?\s*:\*?\s*(.*)"
    r"|\s*-+\s*(?:original message|forwarded message)\s*-+\s*$",
    re.IGNORECASE,
)
# "On Mon, 2 Mar 2026 at 09:00, PCSE <…> wrote:", which Gmail breaks over lines; Apple's
# "On 2 Mar 2026, at 09:00, …".
_ATTRIBUTION_START = re.compile(r"\s*on\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r".*\bwrote\s*:\s*$", re.IGNORECASE)
_ATTRIBUTION_LINES = 3
_WROTE = re.compile(r"\bwrote\s*:\s*$", re.IGNORECASE)
# The opening of each notice mail systems put on what they deliver, which a reply's quote
# keeps; the notice runs to the next empty line.
_BANNER = re.compile(
    r"\s*\[?\s*(?:external(?: email| sender)?\s*\]?\s*$"
    r"|(?:caution|warning)\s*:?\s*(?:this (?:e-?mail|message) (?:originated|came) from outside\b"
    r"|external (?:e-?mail|sender)\b)"
    r"|this (?:e-?mail|message) (?:originated|came) from outside\b"
    r"|you don'?t often get email from\b)",
    re.IGNORECASE,
)
# The paragraphs of NHSmail's footer after its disclaimer, which say no "intended recipient".
_FOOTER_PART = re.compile(
    r"\s*(?:nhsmail is the secure email and directory service"
    r"|for more information and to find out how you can switch)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"[0-9]")
_DATE_WORDS = 10
_NAME_WORDS = 8
_MAILBOX_SEPARATOR = re.compile(r"[;,]")
# Where a client says it cut what it quoted.
_CUT_NOTE = re.compile(r"\s*\[?message clipped\]?|\s*view entire message\s*$", re.IGNORECASE)
# The most words a quote's header and banners take.
_MOST_HEADER_WORDS = 150
# The fewest words a server's disclaimer says.
_FEWEST_DISCLAIMER_WORDS = 15
# Beyond this many words the comparison is not made, and the reply goes to a person.
MAX_WORDS = 5_000
TOO_LONG = "(the reply is too long to compare with the request)"
CUT_ADDRESS = "(the quote leaves out an address our email gave)"


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    return _TOKEN.findall(_LINK.sub(" ", folded))


def reply_lines(text: str | None, html: str | None, *, text_from_html: bool) -> list[list[str]]:
    """The reply's versions, each as lines, quote and all: its plain text (unless that was
    made from the HTML) and its HTML read with the quotes kept and struck text marked."""
    versions = [] if text_from_html else [(text or "").splitlines()]
    if html:
        # As shown: a link's address is not on the screen, and not in our own email's text.
        versions.append(html_to_text(html, quotes=MARK, struck=True, addresses=False).splitlines())
    return [lines for lines in versions if lines]


def as_text(subject: str, body_text: str, body_html: str | None) -> list[str]:
    """One email of ours as the texts a reply may quote it from. The HTML is read as shown:
    a client quoting a link writes it its own way, or leaves it out."""
    texts = [body_text, html_to_text(body_html, quotes=DROP) if body_html else ""]
    return [f"{subject}\n{text}" for text in texts if text]


# What mail clients and servers put before or after a reply's subject.
_SUBJECT_PREFIX = frozenset(
    {"re", "fw", "fwd", "aw", "sv", "wg", "tr", "external", "email", "ext", "caution", "sender"}
)
# A bracketed tag in a subject, and a numbered prefix ("RE[2]:").
_SUBJECT_TAG = re.compile(r"\[([^\]]{0,40})\]|\b(?:re|fwd?)\[\d+\]:", re.IGNORECASE)
# The tags mail gateways put in a subject to say where it came from or how it travelled,
# as words; a bracket holding anything else is the writer's own ("[NOT until 1 April]",
# "[Use Personal Email]") and is read with the rest, and so is a gateway's doubt about the
# message ("[SPAM]", "[Suspected phishing]"): the answer then goes to a person.
_GATEWAY_TAGS = frozenset(
    tuple(tag.split())
    for tag in (
        *_SUBJECT_PREFIX,
        "external email",
        "external sender",
        "external message",
        "external mail",
        "caution external email",
        "warning external email",
        "external email use caution",
        "external sender proceed with caution",
        "message from external sender",
        "secure",
        "secure email",
        "encrypt",
        "encrypted",
        "official",
        "official sensitive",
        "official sensitive personal",
        "official sensitive commercial",
    )
)


def _without_tags(subject: str) -> str:
    def drop(tag: re.Match[str]) -> str:
        words = tuple(_words(tag.group(1) or ""))  # "RE[2]:" holds none
        return " " if not words or words in _GATEWAY_TAGS else tag.group(0)

    return _SUBJECT_TAG.sub(drop, subject)


def subject_not_ours(subject: str, ours: Iterable[str]) -> str | None:
    """The reply's subject when it says more than one of ours, after the prefixes and tags
    clients and servers add ("RE: … - NOT Jane, she has left"); None when it says no more."""
    words = _words(_without_tags(subject))
    while words and words[0] in _SUBJECT_PREFIX:
        words = words[1:]
    for our in ours:
        matcher = SequenceMatcher(None, _words(our), words, autojunk=False)
        if not any(op[0] in ("insert", "replace") for op in matcher.get_opcodes()):
            return None
    return subject


@dataclass(frozen=True)
class _Reply:
    lines: Sequence[str]
    words: list[str]
    line_of: list[int]  # the line each word stands on


def _read(lines: Sequence[str], skip: Container[int] = ()) -> _Reply:
    words: list[str] = []
    line_of: list[int] = []
    for number, line in enumerate(lines):
        if number in skip:
            continue
        found = _words(_shown(line))
        words += found
        line_of += [number] * len(found)
    return _Reply(lines, words, line_of)


def _shown(line: str) -> str:
    return line.lstrip("> \t")


def words_not_ours(
    lines: Sequence[str],
    ours: Iterable[str],
    *,
    own: str,
    subjects: Iterable[str] = (),
    us: Iterable[str] = (),
) -> list[str]:
    """The lines of the reply (one version, `lines`) holding words that neither its own text
    (`own`, above the quote) nor the best matching of `ours` has at their place; each line
    once, in order. `subjects` are ours, which a quote's Subject line must repeat; `us` our
    display name and addresses, by which alone an attribution may name us ("PCSE Online
    user management wrote:"). Everything, when the reply is too long to compare."""
    if sum(len(line) for line in lines) > MAX_WORDS * 20:
        return [TOO_LONG]
    head = _words(own)
    header = _Header(list(subjects), frozenset(_words(" ".join(us))))
    skip = _quote_header(lines, head, header) | _appended(lines)
    reply = _read(lines, skip)
    if len(reply.words) > MAX_WORDS:
        return [TOO_LONG]
    bodies = [body for text in ours if len(head) + len(body := _words(text)) <= MAX_WORDS]
    return min((_not_ours(reply, head, body) for body in bodies or [[]]), key=len)


@dataclass(frozen=True)
class _Header:
    """What a quote's header of our email may say: one of our subjects, and who we are."""

    subjects: list[str]
    us: frozenset[str]  # the words of our display name and addresses


def _quote_header(lines: Sequence[str], head: list[str], header: _Header) -> set[int]:
    """The lines of the quote's header and the banners under it, where the quote begins;
    none when they say more than a header and banners do."""
    first = _quote_begins(lines, head)
    found: set[int] = set()
    names: set[str] = set()
    words = 0
    banner = False
    for number in range(first, len(lines)):
        line = _shown(lines[number]).translate(_APOSTROPHES)
        said = _words(line)
        if not said:
            banner = False
        elif banner or _BANNER.match(line):
            banner = True
        elif not _is_header(lines, number, names, header):
            break
        words += len(said)
        found.add(number)
    return found if words <= _MOST_HEADER_WORDS else set()


def _quote_begins(lines: Sequence[str], head: list[str]) -> int:
    """The line the quote begins on: where a quote header stands, else after the last word
    of the approver's own text."""
    text = "\n".join(_shown(line) for line in lines)
    start = quote_start(text)
    if start is not None:
        return text[:start].count("\n")
    reply = _read(lines)
    matcher = SequenceMatcher(None, head, reply.words, autojunk=False)
    ends = [block.b + block.size for block in matcher.get_matching_blocks() if block.size]
    return reply.line_of[max(ends) - 1] + 1 if ends else 0


def _is_header(lines: Sequence[str], number: int, names: set[str], header: _Header) -> bool:
    """Is this line one of the quote header's: each name once, the Subject one of ours, an
    attribution as a mail client writes one, or one naming us alone?"""
    line = _shown(lines[number])
    field = _HEADER_LINE.match(line)
    if field:
        name = (field.group(1) or "rule").lower()
        if name in ("from", "rule"):  # a header of its own (a reply to a forward has two)
            names.clear()
        if name in names:
            return False
        names.add(name)
        return _header_value_fits(name, field.group(2) or "", header.subjects)
    # A line of an attribution: from a line opening "On " to the one ending "wrote:", that
    # reads as a mail client writes one, naming us when we are known: "On 1 April, Jane
    # retires / PCSE wrote:" names someone else.
    for first in range(max(0, number - _ATTRIBUTION_LINES + 1), number + 1):
        if not _ATTRIBUTION_START.match(_shown(lines[first])):
            continue
        for last in range(number, min(len(lines), first + _ATTRIBUTION_LINES)):
            if _ATTRIBUTION_END.match(_shown(lines[last])) and reads_as_attribution(
                " ".join(_shown(line) for line in lines[first : last + 1]), header.us or None
            ):
                return True
    return _names_only_us(line, header.us)


def _names_only_us(line: str, us: frozenset[str]) -> bool:
    """An attribution naming us alone: "PCSE Online user management wrote:", "PCSE
    <pcse.portalenquiries@nhs.net> wrote:"; every word of who wrote is one of ours."""
    if not _ATTRIBUTION_END.match(line):
        return False
    said = _words(_WROTE.sub("", line))
    return bool(said) and set(said) <= us


def _header_value_fits(name: str, value: str, subjects: list[str]) -> bool:
    """Does the value read as that header's does? Our subject; a date; mailboxes, each an
    address or a name of a few words ("PATEL, Anil (RIVERSIDE SURGERY - A81001)")."""
    if name == "subject":
        return subject_not_ours(value, subjects) is None
    if name in ("sent", "date"):
        return bool(_DIGIT.search(value)) and len(_words(value)) <= _DATE_WORDS
    if name == "rule":
        return True
    return all(
        len([w for w in _words(entry) if "@" not in w]) <= _NAME_WORDS
        for entry in _MAILBOX_SEPARATOR.split(value)
    )


def _not_ours(reply: _Reply, head: list[str], body: list[str]) -> list[str]:
    matcher = SequenceMatcher(None, head + body, reply.words, autojunk=False)
    blocks = [block for block in matcher.get_matching_blocks() if block.size]
    own_end = max(
        (b.b + min(b.size, len(head) - b.a) for b in blocks if b.a < len(head)), default=0
    )
    in_body = [b for b in blocks if b.a + b.size > len(head)]
    body_start = min((b.b + max(0, len(head) - b.a) for b in in_body), default=len(reply.words))
    body_end = max((b.b + b.size for b in in_body), default=body_start)
    extra: list[int] = []
    cut_address = False
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            extra += range(j1, j2)
        if tag in ("delete", "replace") and body_start < j1 < body_end:
            cut_address |= any("@" in word for word in (head + body)[i1:i2])
    # The approver's own text is read from HTML as it is shown; read with its links kept,
    # it may also give a link's address.
    extra = [i for i in extra if i >= own_end or "@" not in reply.words[i]]
    numbers = sorted({reply.line_of[index] for index in extra})
    shown = [_shown(reply.lines[number]).strip() for number in numbers]
    return shown + ([CUT_ADDRESS] if cut_address else [])


def _appended(lines: Sequence[str]) -> set[int]:
    """The lines at the end of the reply that mail systems appended, from the last: a
    client's note that it cut the quote, and disclaimers, each a paragraph of
    _FEWEST_DISCLAIMER_WORDS words or more opening as one (or as a known part of one)."""
    found: set[int] = set()
    end = len(lines)
    while end > 0 and (
        not _words(_shown(lines[end - 1])) or _CUT_NOTE.match(_shown(lines[end - 1]))
    ):
        end -= 1
        found.add(end)
    while True:
        while end > 0 and not _words(_shown(lines[end - 1])):
            end -= 1
        start = end
        while start > 0 and _words(_shown(lines[start - 1])):
            start -= 1
        if start == end or not _is_disclaimer(lines, range(start, end)):
            return found
        found.update(range(start, end))
        end = start


def _is_disclaimer(lines: Sequence[str], paragraph: range) -> bool:
    opening = _shown(lines[paragraph[0]])
    if _FOOTER_PART.match(opening):
        return True
    said = sum(len(_words(_shown(lines[number]))) for number in paragraph)
    return said >= _FEWEST_DISCLAIMER_WORDS and is_disclaimer_opening(opening)
