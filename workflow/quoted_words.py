"""Words an approver wrote inside the quoted copy of our email.

The verdict is read from the text above the quote (workflow.replies). People also write
inside it: "NO - not Jane, she has left" beside a nominee's line, often in red, under an
APPROVE at the top. Nobody reading that reply would set Jane up, so an approval whose quote
holds a line that is not ours goes to a person.

A quoted line is ours when its words, in order, run somewhere in an email we sent the
approver on the case (its subject, its text, or its HTML read as text): however a client
rewraps the quote, each line stays a run of the original's words. Lines of the quote's own
header ("On … wrote:", From, Sent, To, Subject), made of dates, names and addresses, are
passed over, and so are links and digits, which each client writes in its own way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.htmltext import MARK, html_to_text

# A link as mail clients write one into a quote ("Approve<mailto:…>", "<https://…>"), or a
# piece of one where a client broke it across lines ("ct=APPROVE%20%5BPCSE-…").
_LINK = re.compile(r"<?(?:mailto:|https?://)[^\s>]*>?|\S*[%=&?/]\S*", re.IGNORECASE)
# Letters only: dates, times and codes are spelt differently by each client.
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u00b4`", "'"))
# The words of the header a mail client writes above what it quotes.
_HEADER_WORDS = frozenset(
    {
        "on",
        "wrote",
        "from",
        "sent",
        "to",
        "cc",
        "subject",
        "date",
        "original",
        "message",
        "forwarded",
        "re",
        "fw",
        "fwd",
        "aw",
        "sv",
        "am",
        "pm",
        "at",
        "utc",
        "gmt",
        "bst",
        "behalf",
        "of",
        "mailto",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)


def _words(text: str) -> list[str]:
    return _WORD.findall(_LINK.sub(" ", text.translate(_APOSTROPHES)).lower())


def _run(words: list[str]) -> str:
    return f" {' '.join(words)} "


def reply_lines(text: str | None, html: str | None, *, text_from_html: bool) -> list[str]:
    """Every line of the reply, quote and all: its plain text (unless that was made from
    the HTML) and its HTML read with the quotes kept."""
    lines = [] if text_from_html else (text or "").splitlines()
    if html:
        lines += html_to_text(html, quotes=MARK).splitlines()
    return lines


def lines_not_ours(
    lines: Iterable[str], ours: Iterable[str], *, own: str, names: Iterable[str]
) -> list[str]:
    """The lines that are neither the approver's own text above the quote (`own`), nor a
    run of the words of one of `ours` (our emails, as text), nor a quote header made of
    `names` (ours, the approver's) and dates."""
    runs = [_run(_words(text)) for text in (*ours, own)]
    header = _HEADER_WORDS | set(_words(" ".join(names)))
    found = []
    for line in lines:
        words = _words(line.lstrip("> \t"))
        if not words or set(words) <= header:
            continue
        while words[0] in _HEADER_WORDS:  # "Subject: RE: …" quotes our subject
            words = words[1:]
        if not any(_run(words) in run for run in runs):
            found.append(line.lstrip("> \t").strip())
    return found


def as_text(subject: str, body_text: str, body_html: str | None) -> list[str]:
    """One email of ours as the texts a reply may quote it from."""
    return [subject, body_text, html_to_text(body_html, quotes=MARK) if body_html else ""]
