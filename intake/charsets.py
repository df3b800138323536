"""Text from bytes whatever the sender claimed: the declared charset, else UTF-8, else cp1252."""

from __future__ import annotations

import codecs
import re

# Names seen in real mail that Python's codec registry does not know, mapped to ones it does.
ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "x-user-defined": "cp1252",
    "ansi_x3.4-1968": "ascii",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gbk",
    "x-gbk": "gbk",
    "utf8": "utf-8",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "default": "utf-8",
}

# Codecs Python counts as text encodings that no mail charset is: they read backslash
# escapes or IDNA labels, not characters, some fail with UnicodeError where a charset
# raises UnicodeDecodeError, and punycode's decoder is quadratic (1 MB: 30 s of CPU).
NOT_CHARSETS = frozenset(
    {"punycode", "idna", "undefined", "raw-unicode-escape", "unicode-escape", "charmap"}
)


def known_codec(charset: str | None) -> str | None:
    """The codec name for a declared charset, or None when it names no text charset: one
    Python does not know, a codec of bytes to bytes ("rot13", "base64") or one of
    NOT_CHARSETS."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not info._is_text_encoding or info.name in NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """(text, problem): `problem` says when the declared charset could not be used."""
    codec = known_codec(charset)
    problem = None
    if charset and codec is None:
        problem = f"unknown charset {charset[:40]!r}"
    if codec:
        try:
            return storable(data.decode(codec)), None
        except ValueError:  # UnicodeDecodeError, or the UnicodeError some codecs raise
            if codec not in ("ascii", "utf-8"):
                problem = f"text not valid in its declared charset {(charset or '')[:40]!r}"
    try:
        return data.decode("utf-8"), problem
    except UnicodeDecodeError:
        # cp1252 is what undeclared 8-bit mail from Windows senders almost always is.
        return data.decode("cp1252", errors="replace"), problem


_SURROGATE = re.compile("[\udc80-\udcff]")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` as both databases store it: any lone surrogate replaced by U+FFFD, and NUL
    left out. UTF-7 ("+2D0-") and unicode-escape decode to surrogates, which neither
    driver will write, and PostgreSQL refuses NUL: either in a header stopped every poll at
    the ledger, for that message and all after it."""
    if _ANY_SURROGATE.search(text):
        text = _ANY_SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "") if "\x00" in text else text


def unsurrogate(text: str) -> str:
    """Undo the surrogate escapes the email package leaves for raw 8-bit header bytes."""
    if not _SURROGATE.search(text):
        return text
    raw = text.encode("utf-8", errors="surrogateescape")
    return decode_bytes(raw, None)[0]
