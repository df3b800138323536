"""HTML made safe for html.parser to read in linear time.

Python 3.11's HTMLParser rescans to the end of the document for every construct it cannot
close: 32 KB of "<a " took it 22 s, and a few hundred kilobytes would hold a worker for
hours. `tame_markup` keeps every tag, comment and declaration that closes, and turns every
other "<" into "&lt;" (which the parser shows as the "<" it would have shown), so that the
parser never looks beyond the construct in hand. It runs in one pass: a search that finds
no closing text is not repeated.
"""

from __future__ import annotations

import re

_TAG_START = re.compile(r"[A-Za-z/?]")


class _Closers:
    """Where each closing text next occurs, remembering the searches that found none."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.none_after: dict[str, int] = {}

    def find(self, closing: str, start: int) -> int:
        if self.none_after.get(closing, len(self.text) + 1) <= start:
            return -1
        found = self.text.find(closing, start)
        if found < 0:
            self.none_after[closing] = start
        return found


def _construct_end(html: str, start: int, closers: _Closers) -> int:
    """The end of the markup construct at `start` (a "<"), or -1 when it is not one that
    closes."""
    if html.startswith("<!--", start):
        close = closers.find("-->", start + 4)
        return close + 3 if close >= 0 else -1
    close = closers.find(">", start + 1)
    if close < 0:
        return -1
    if html.startswith("<!", start):
        body = html[start + 2 : close]
        if body.startswith("[") and not body.rstrip().endswith("]"):
            return -1  # a marked section the parser would search on for its "]>"
        return close + 1
    if not _TAG_START.match(html, start + 1):
        return -1
    return close + 1


def _tag(text: str) -> str:
    """A tag whose quotes do not pair up within it loses them: the parser would otherwise
    read the attribute on past the tag's end."""
    if text.count('"') % 2 or text.count("'") % 2:
        return text.replace('"', "").replace("'", "")
    return text


def tame_markup(html: str) -> str:
    out: list[str] = []
    closers = _Closers(html)
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            out.append(html[position:])
            return "".join(out)
        out.append(html[position:start])
        end = _construct_end(html, start, closers)
        if end < 0:
            out.append("&lt;")
            position = start + 1
            continue
        out.append(_tag(html[start:end]))
        position = end
