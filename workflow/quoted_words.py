"""Words an approver wrote inside the quoted copy of our email.

The verdict is read from the text above the quote (workflow.replies). People also write
inside it: "NO - not Jane, she has left" beside a nominee's line, often in red, under an
APPROVE at the top. Nobody reading that reply would set Jane up, so an approval whose quote
holds words that are not ours, where they stand, goes to a person.

The reply is read as its own text followed by one of our emails to the approver on the
case (its text, or its HTML read as text), word by word: words the reply has that the
email does not have at that place are the approver's, however the client rewrapped the
lines, and even when the same words stand elsewhere in the email ("REJECT", say, which its
instructions spell). An address is one word, so a digit added to one counts; so does a
symbol ("❌"). Passed over, only where each belongs: between the approver's own text and
the start of our email, the quote's header (From, Sent, To, Subject, "On … wrote:") and the
banners mail systems put on what they deliver ("You don't often get email from …"); after
the end of our email, a disclaimer the approver's server adds. Links are left out, as each
client writes them its own way, and so is whatever the client cut from the end of the
quote; an address cut from inside it is not passed over.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from core.htmltext import MARK, html_to_text
from workflow.replies import is_disclaimer_opening

# A link, or a piece of one where a client broke it across lines ("ct=APPROVE%20%5B…").
_LINK = re.compile(
    r"<?(?:mailto:|https?://|www\.|cid:)[^\s>\]]*[>\]]?|\S*(?:%[0-9a-f]{2}|=)\S*",
    re.IGNORECASE,
)
# An address (one word), a word of letters and digits, or a symbol people answer with.
_TOKEN = re.compile(
    r"[a-z0-9._%+'-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"
    r"|[a-z0-9]+(?:'[a-z]+)*"
    r"|[\u2190-\u2bff\U0001f000-\U0001faff]"
)
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u00b4`", "'"))
# The header a mail client writes above what it quotes, line by line.
_HEADER_LINE = re.compile(
    r"\s*(?:from|sent|to|cc|bcc|subject|date|reply-to|importance)\s*:"
    r"|\s*-+\s*(?:original message|forwarded message)\s*-+\s*$",
    re.IGNORECASE,
)
# "On Mon, 2 Mar 2026 at 09:00, PCSE <…> wrote:", which Gmail breaks over lines.
_ATTRIBUTION_START = re.compile(r"\s*on\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r".*\bwrote\s*:\s*$", re.IGNORECASE)
_ATTRIBUTION_LINES = 3
# The notices mail systems put on what they deliver, which a reply's quote keeps.
_BANNER = re.compile(
    r"\s*\[?\s*(?:external(?: email| sender)?\s*\]?\s*$"
    r"|(?:caution|warning|external)\b.{0,60}\b(?:outside|external)\b"
    r"|this (?:e-?mail|message) (?:originated|came) from outside\b"
    r"|do not click links or open attachments\b"
    r"|you don'?t often get email from\b"
    r"|learn why this is important\b)",
    re.IGNORECASE,
)
# The most words a quote's header and banners take.
_MOST_HEADER_WORDS = 150
# The fewest words a server's disclaimer says.
_FEWEST_DISCLAIMER_WORDS = 15
# Beyond this many words the comparison is not made, and the reply goes to a person.
MAX_WORDS = 5_000
TOO_LONG = "(the reply is too long to compare with the request)"
CUT_ADDRESS = "(the quote leaves out an address our email gave)"


def _words(text: str) -> list[str]:
    return _TOKEN.findall(_LINK.sub(" ", text.translate(_APOSTROPHES).lower()))


def reply_lines(text: str | None, html: str | None, *, text_from_html: bool) -> list[list[str]]:
    """The reply's versions, each as lines, quote and all: its plain text (unless that was
    made from the HTML) and its HTML read with the quotes kept and struck text marked."""
    versions = [] if text_from_html else [(text or "").splitlines()]
    if html:
        versions.append(html_to_text(html, quotes=MARK, struck=True).splitlines())
    return [lines for lines in versions if lines]


def as_text(subject: str, body_text: str, body_html: str | None) -> list[str]:
    """One email of ours as the texts a reply may quote it from."""
    texts = [body_text, html_to_text(body_html, quotes=MARK) if body_html else ""]
    return [f"{subject}\n{text}" for text in texts if text]


# What mail clients and servers put before a reply's subject: "RE:", "FW:", "[EXTERNAL]".
_SUBJECT_PREFIX = frozenset({"re", "fw", "fwd", "aw", "sv", "wg", "tr", "external", "email"})


def subject_not_ours(subject: str, ours: Iterable[str]) -> str | None:
    """The reply's subject when it says more than one of ours, after the prefixes clients
    and servers add ("RE: … - NOT Jane, she has left"); None when it says no more."""
    words = _words(subject)
    while words and words[0] in _SUBJECT_PREFIX:
        words = words[1:]
    for our in ours:
        expected = _words(our)
        matcher = SequenceMatcher(None, expected, words, autojunk=False)
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
        found = _words(line.lstrip("> \t"))
        words += found
        line_of += [number] * len(found)
    return _Reply(lines, words, line_of)


def _quote_header(lines: Sequence[str], head: list[str]) -> set[int]:
    """The lines of the quote's header and the banners under it: the run of such lines (and
    empty ones) right after the approver's own text, and nowhere else."""
    reply = _read(lines)
    matcher = SequenceMatcher(None, head, reply.words, autojunk=False)
    ends = [block.b + block.size for block in matcher.get_matching_blocks() if block.size]
    first = reply.line_of[max(ends) - 1] + 1 if ends else 0
    found: set[int] = set()
    for number in range(first, len(lines)):
        if _words(lines[number].lstrip("> \t")) and not _is_header(lines, number):
            break
        found.add(number)
    return found


def words_not_ours(lines: Sequence[str], ours: Iterable[str], *, own: str) -> list[str]:
    """The lines of the reply (one version, `lines`) holding words that neither its own text
    (`own`, above the quote) nor the best matching of `ours` has at their place; each line
    once, in order. Everything, when the reply is too long to compare."""
    if sum(len(line) for line in lines) > MAX_WORDS * 20:
        return [TOO_LONG]
    head = _words(own)
    reply = _read(lines, _quote_header(lines, head))
    if len(reply.words) > MAX_WORDS:
        return [TOO_LONG]
    bodies = [body for text in ours if len(head) + len(body := _words(text)) <= MAX_WORDS]
    return min((_not_ours(reply, head, body) for body in bodies or [[]]), key=len)


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
    extra = _without_disclaimer(extra, reply, body_end)
    numbers = sorted({reply.line_of[index] for index in extra})
    shown = [reply.lines[number].lstrip("> \t").strip() for number in numbers]
    return shown + ([CUT_ADDRESS] if cut_address else [])


def _is_header(lines: Sequence[str], number: int) -> bool:
    line = lines[number].lstrip("> \t").translate(_APOSTROPHES)
    if _HEADER_LINE.match(line) or _BANNER.match(line):
        return True
    # A line of an attribution: from a line opening "On " to the one ending "wrote:".
    for first in range(max(0, number - _ATTRIBUTION_LINES + 1), number + 1):
        if not _ATTRIBUTION_START.match(lines[first].lstrip("> \t")):
            continue
        for last in range(number, min(len(lines), first + _ATTRIBUTION_LINES)):
            if _ATTRIBUTION_END.match(lines[last].lstrip("> \t")):
                return True
    return False


def _without_disclaimer(extra: list[int], reply: _Reply, body_end: int) -> list[int]:
    """`extra` without a disclaimer the approver's server put after our email: the run of
    extra words that ends the reply, when it opens as one and is as long as one."""
    tail = [index for index in extra if index >= body_end]
    if (
        len(tail) < _FEWEST_DISCLAIMER_WORDS
        or tail != list(range(body_end, len(reply.words)))
        or not is_disclaimer_opening(reply.lines[reply.line_of[tail[0]]].lstrip("> \t"))
    ):
        return extra
    return [index for index in extra if index < body_end]
