"""A strict reader of Authentication-Results headers (RFC 8601), with or without authserv-id.

Exchange Online writes its verdict without an authserv-id (`spf=pass (sender IP is …)
smtp.mailfrom=…; dkim=pass …; dmarc=pass action=none header.from=…`), which general
parsers refuse; this reader takes both shapes. Comments are removed by a linear scan
before the header is split; a value that cannot be read raises AuthResultsError, and
callers fail the check rather than skip the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEADER_CHARS = 8000

_TOKEN = re.compile(r"[A-Za-z0-9._+/-]++")
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9._/-]++)=(?P<value>.*+)", re.S)
# A word: runs of plain characters and "quoted strings" (which may hold spaces).
_WORD = re.compile(r'(?:[^\s"]|"[^"]*+")++')


class AuthResultsError(ValueError):
    pass


@dataclass(frozen=True)
class Result:
    method: str  # lower-cased: spf, dkim, dmarc, compauth, ...
    result: str  # lower-cased: pass, fail, none, ...
    properties: dict[str, str] = field(default_factory=dict)  # "header.from" -> value

    def prop(self, name: str) -> str | None:
        return self.properties.get(name.lower())


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str | None  # lower-cased; None for Exchange Online's shape
    results: tuple[Result, ...]

    def of(self, method: str) -> list[Result]:
        return [r for r in self.results if r.method == method]


def parse(raw: str) -> AuthResults:
    """Read one header value (the part after the colon, folding allowed)."""
    if len(raw) > MAX_HEADER_CHARS:
        raise AuthResultsError(f"the header is {len(raw)} characters long")
    value = _strip_comments(" ".join(raw.split()))
    if value.lower().startswith("authentication-results:"):
        value = value.split(":", 1)[1]
    pieces = [p.strip() for p in value.split(";")]
    head = pieces[0]
    if "=" in head.split(" ", 1)[0]:
        authserv_id = None  # no authserv-id: the first piece is already a result
    else:
        words = head.split()
        if not words or not _TOKEN.fullmatch(words[0]) or len(words) > 2:
            raise AuthResultsError(f"the authserv-id {head[:60]!r} is not readable")
        authserv_id = words[0].lower()
        pieces = pieces[1:]
    results = tuple(_result(p) for p in pieces if p and p.lower() != "none")
    return AuthResults(authserv_id, results)


def _result(piece: str) -> Result:
    words = _WORD.findall(piece)
    if not words:
        raise AuthResultsError("an empty result")
    first = _KEY_VALUE.fullmatch(words[0])
    if first is None:
        raise AuthResultsError(f"the result {piece[:60]!r} is not method=result")
    method = first.group("key").split("/", 1)[0].lower()
    properties: dict[str, str] = {}
    for word in words[1:]:
        pair = _KEY_VALUE.fullmatch(word)
        if pair is None:
            raise AuthResultsError(f"{word[:60]!r} in the {method} result is not name=value")
        key = pair.group("key").lower()
        if key in properties:  # which one would count is anyone's guess: refuse both
            raise AuthResultsError(f"{key} appears twice in the {method} result")
        properties[key] = pair.group("value").strip('"')
    return Result(method, first.group("value").lower(), properties)


def _strip_comments(value: str) -> str:
    """The value without (comments) and with quoted strings kept whole; linear."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(char)
            continue
        if quoted:
            out.append(char)
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth:
            continue
        else:
            out.append(char)
            quoted = char == '"'
    if depth or quoted:
        raise AuthResultsError("an unclosed comment or quoted string")
    return "".join(out)
