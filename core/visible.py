"""Text as it is drawn: without the characters that draw nothing or move what follows.

A right-to-left override at the end of a name shows the address printed after it
backwards ("ten.shn@gmail.com" as "moc.liamg@nhs.net"), and one inside a file name shows
"report\u202efdp.exe" as "reportexe.pdf"; soft hyphens and zero-width spaces split words
unseen. Everything shown to a person, or read as what a person wrote, goes through here.
"""

from __future__ import annotations

import re
import unicodedata

# Format characters kept: the joiners some scripts spell words with.
_JOINERS = frozenset("\u200c\u200d")

# Control characters other than tab and line breaks, the C1 controls included: NUL above
# all, which PostgreSQL will not store (a form's name field holding one failed its message).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def without_format(text: str) -> str:
    """`text` without Unicode format characters (category Cf) other than the joiners."""
    if text.isascii():
        return text
    return "".join(c for c in text if c in _JOINERS or unicodedata.category(c) != "Cf")


def visible(text: str) -> str:
    """`text` without format characters (but the joiners), and with control characters
    other than tab and line breaks made spaces."""
    if _CONTROLS.search(text):
        text = _CONTROLS.sub(" ", text)
    return without_format(text)
