"""Words an approver wrote inside the quoted copy of our email.

The verdict is read from the text above the quote (workflow.replies). People also write
inside it: "NO - not Jane, she has left" beside a nominee's line, often in red, under an
APPROVE at the top. Nobody reading that reply would set Jane up, so an approval whose quote
holds words that are not ours, where they stand, goes to a person.

The reply is read as its own text followed by one of our emails to the approver on the
case (its text, or its HTML read as text), word by word: words the reply has that the
email does not have at that place are the approver's, however the client rewrapped the
lines, and even when the same words stand elsewhere in the email ("REJECT", say, which its
instructions spell). Passed over: the quote's own header (From, Sent, To, Subject, "On …
wrote:"), the banners mail systems put on what they deliver ("You don't often get email
from …"), a disclaimer the approver's server adds at the end, links and digits, which each
client writes in its own way, and whatever the client left out of the quote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher

from core.htmltext import MARK, html_to_text
from workflow.replies import is_disclaimer_opening

# A link, or a piece of one where a client broke it across lines ("ct=APPROVE%20%5B…").
_LINK = re.compile(
    r"<?(?:mailto:|https?://|www\.)[^\s>]*>?|\S*(?:%[0-9A-Fa-f]{2}|=)\S*", re.IGNORECASE
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_DIGIT = re.compile(r"[0-9]")
# Where a client may break a line: at white space and after a hyphen ("APV-" / "c8af…").
_CHUNK_BREAK = re.compile(r"[\s\-\u2010-\u2015]+")
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u00b4`", "'"))
# A line of the header a mail client writes above what it quotes.
_HEADER_LINE = re.compile(
    r"\s*(?:from|sent|to|cc|bcc|subject|date|reply-to|importance)\s*:"
    r"|\s*on\b.{0,300}\bwrote\s*:?\s*$"
    r"|\s*-+\s*original message\s*-+\s*$",
    re.IGNORECASE,
)
# The notices mail systems add to what they deliver, which a reply's quote keeps.
_BANNER = re.compile(
    r"\s*\[?(?:external|caution|warning)\b.{0,40}\b(?:outside|external|sender)\b"
    r"|\s*you don'?t often get email from\b"
    r"|\s*learn why this is important\s*$",
    re.IGNORECASE,
)
# Beyond this many words the comparison is not made, and the reply goes to a person.
MAX_WORDS = 5_000


def _words(text: str) -> list[str]:
    """The words of `text` that every client writes alike: links and anything holding a
    digit (dates, times, references, codes, in whatever pieces a client broke them) left out."""
    kept = [
        chunk
        for chunk in _CHUNK_BREAK.split(_LINK.sub(" ", text.translate(_APOSTROPHES)).lower())
        if not _DIGIT.search(chunk)
    ]
    return _WORD.findall(" ".join(kept))


def reply_lines(text: str | None, html: str | None, *, text_from_html: bool) -> list[list[str]]:
    """The reply's versions, each as lines, quote and all: its plain text (unless that was
    made from the HTML) and its HTML read with the quotes kept and struck text marked."""
    versions = [] if text_from_html else [(text or "").splitlines()]
    if html:
        versions.append(html_to_text(html, quotes=MARK, struck=True).splitlines())
    return [lines for lines in versions if lines]


def as_text(body_text: str, body_html: str | None) -> list[str]:
    """One email of ours as the texts a reply may quote it from (its Subject is quoted in
    the quote's header, which is passed over)."""
    return [body_text, html_to_text(body_html, quotes=MARK) if body_html else ""]


def words_not_ours(lines: Sequence[str], ours: Iterable[str], *, own: str) -> list[str]:
    """The lines of the reply (one version, `lines`) holding words that neither its own text
    (`own`, above the quote) nor the best matching of `ours` has at their place; each line
    once, in order. Everything, when the reply is too long to compare."""
    stream: list[tuple[str, int]] = []
    for number, line in enumerate(lines):
        shown = line.lstrip("> \t")
        if _HEADER_LINE.match(shown) or _BANNER.match(shown):
            continue
        stream += [(word, number) for word in _words(shown)]
    if len(stream) > MAX_WORDS:
        return ["(the reply is too long to compare with the request)"]
    words = [word for word, _ in stream]
    head = _words(own)
    candidates = [head + _words(text) for text in ours]
    fewest = min(
        (_inserted(words, expected) for expected in candidates if len(expected) <= MAX_WORDS),
        key=len,
        default=_inserted(words, head),
    )
    numbers = sorted({stream[index][1] for index in _without_disclaimer(fewest, stream, lines)})
    return [lines[number].lstrip("> \t").strip() for number in numbers]


def _inserted(reply: list[str], expected: list[str]) -> list[int]:
    """The positions of `reply`'s words that `expected` does not have at that place."""
    matcher = SequenceMatcher(None, expected, reply, autojunk=False)
    return [
        index
        for tag, _, _, start, end in matcher.get_opcodes()
        if tag in ("insert", "replace")
        for index in range(start, end)
    ]


def _without_disclaimer(
    extra: list[int], stream: list[tuple[str, int]], lines: Sequence[str]
) -> list[int]:
    """`extra` without a disclaimer the approver's server put after the quote: the run of
    extra words that ends the reply, when its first line opens a disclaimer."""
    end = len(stream)
    start = end
    found = set(extra)
    while start > 0 and (start - 1) in found:
        start -= 1
    if start == end or not is_disclaimer_opening(lines[stream[start][1]].lstrip("> \t")):
        return extra
    return [index for index in extra if index < start]
