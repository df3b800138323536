"""Latin letters read as their base letters: "Tŷ" as "Ty", "Siân" as "Sian", "NÓT" as "NOT".

Readers that know only ASCII words would otherwise split an accented word into pieces
("Noémie" into "no" and "mie", a refusal) or not see it at all. Letters with no accent to
take off are spelt as they are commonly written in ASCII ("ł" as "l", "ß" as "ss"); any
other script is left as it is, for the reader to refuse.
"""

from __future__ import annotations

import unicodedata

_SPELT = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)


def latin_folded(text: str) -> str:
    """`text` with every Latin letter's accents taken off (and the letters above spelt in
    ASCII); other scripts, digits and punctuation as they are."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPELT))
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
