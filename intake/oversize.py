"""Parts too big to read, cut out of a message before the email package parses it.

The email package reads a message line by line: a 40 MB message holding a 30 MB
attachment costs it more than a second, though that attachment is over the reading limit
and is never read. So when a message is larger than the attachment limit, its raw bytes
are first split at the boundary lines its multiparts declare, and

- the body of a part that would be skipped as too large is taken out (`ELIDED`),
- the body of a text part over twice TEXT_KEEP_BYTES is cut to its first TEXT_KEEP_BYTES
  (`CUT`): the one way the quick reading differs from a whole parse, noted as a problem,
- a long preamble or epilogue of a multipart is taken out (`GAP`),

each leaving a marker that carries a per-message nonce (so a sender cannot write one) and
the body's encoded length. This reading is optimistic: `verify` checks the parsed tree
against what was done, and any disagreement (a boundary this scan did not see, a marker
that did not land where it was put, a body left behind it) sends the caller back to
parsing the original bytes whole. Apart from a cut text, bytes are never dropped that a
whole parse would read.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from email.message import Message

ELIDED = "elided"
CUT = "cut"
GAP = "gap"

# A text part's body over twice this many encoded bytes is cut to this many: in UTF-8 or
# Latin-1, more than the MAX_TEXT_CHARS that the reader keeps of a message's text.
TEXT_KEEP_BYTES = 12 * 1024 * 1024
# Preambles and epilogues (text outside a multipart's parts, never read) over this go.
GAP_BYTES = 64 * 1024
# Beyond this many boundary lines, or mentions of a multipart, the scan would cost more
# than it saves.
MAX_DELIMITERS = 10_000
MAX_MULTIPART_MENTIONS = 1_000
# A part's headers are looked for in this many bytes from its start.
MAX_HEADER_BYTES = 256 * 1024

_BOUNDARY_PARAM = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_HEADER_VALUE = re.compile(rb"(?im)^(content-type|content-transfer-encoding):[ \t]*([^;\s]*)")


@dataclass(frozen=True)
class Mark:
    kind: str  # ELIDED, CUT or GAP
    encoded_bytes: int  # the body's length before it was taken out or cut
    kept_bytes: int = 0  # of a CUT body, how much is left


@dataclass
class Elisions:
    """What was done to the raw bytes, and the nonce that names its markers."""

    nonce: str
    names: set[bytes]  # the boundaries the scan split at
    limit: int  # the attachment limit the scan judged sizes by
    marks: dict[str, Mark] = field(default_factory=dict)  # marker id -> what it stands for

    @property
    def header(self) -> str:
        return f"X-Pcse-Elided-{self.nonce}"

    def add(self, kind: str, encoded_bytes: int, kept_bytes: int = 0) -> str:
        ident = f"{self.nonce}.{len(self.marks)}"
        self.marks[ident] = Mark(kind, encoded_bytes, kept_bytes)
        return ident


@dataclass(frozen=True)
class _Segment:
    start: int  # first byte of the part (its headers)
    end: int  # first byte of the next boundary line
    after_close: bool  # follows a closing boundary: an epilogue, not a part


def elide(raw: bytes, attachment_limit: int) -> tuple[bytes, Elisions | None]:
    """`raw` with oversized bodies taken out, and what was taken; (raw, None) when nothing
    was or the message is beyond this scan (bare CR line ends, too many boundary lines or
    mentions of a multipart)."""
    if len(raw) <= _skip_threshold(attachment_limit) or raw.count(b"\r") != raw.count(b"\r\n"):
        return raw, None
    names = _boundary_names(raw)
    if names is None:
        return raw, None
    segments = _segments(raw, names)
    if segments is None:
        return raw, None
    elisions = Elisions(secrets.token_hex(8), names, attachment_limit)
    pieces = [_rewrite(raw, segment, elisions) for segment in segments]
    if not elisions.marks:
        return raw, None
    return b"".join(pieces), elisions


def _skip_threshold(attachment_limit: int) -> int:
    """The decoded size over which the reader skips an attachment unread."""
    return int(attachment_limit * 1.01) + 4096


def _boundary_names(raw: bytes) -> set[bytes] | None:
    """Every boundary a multipart in `raw` may declare (a superset: a mention in a body
    counts too, which only splits the message finer); None when multiparts are mentioned
    too often for the scan to be worth it."""
    low = raw.lower()
    if low.count(b"multipart/") > MAX_MULTIPART_MENTIONS:
        return None
    names: set[bytes] = set()
    at = low.find(b"multipart/")
    while at >= 0:
        found = _BOUNDARY_PARAM.search(low, at, at + 1200)
        if found:
            start, end = found.span(1) if found.group(1) is not None else found.span(2)
            names.add(raw[start:end])  # boundaries are case-sensitive
        at = low.find(b"multipart/", at + 10)
    return names


def _segments(raw: bytes, names: set[bytes]) -> list[_Segment] | None:
    """`raw` split at each line that is a boundary line of a declared name."""
    segments: list[_Segment] = []
    start, after_close, seen = 0, False, 0
    at = raw.find(b"\n--")
    while at >= 0:
        seen += 1
        if seen > MAX_DELIMITERS:
            return None
        line_end = raw.find(b"\n", at + 1)
        line_end = len(raw) if line_end < 0 else line_end
        line = raw[at + 3 : line_end].rstrip(b" \t\r")
        closing = line.endswith(b"--") and line[:-2] in names
        if closing or line in names:
            segments.append(_Segment(start, at + 1, after_close))
            # The boundary line stays with the next segment, which is written unchanged
            # up to the end of that line.
            start, after_close = at + 1, closing
        at = raw.find(b"\n--", line_end)
    segments.append(_Segment(start, len(raw), after_close))
    return segments


def _rewrite(raw: bytes, segment: _Segment, elisions: Elisions) -> bytes:
    start = segment.start
    lead = b""
    if raw.startswith(b"--", start):  # a boundary line opens every segment but the first
        line_end = raw.find(b"\n", start, segment.end)
        if line_end < 0:
            return raw[start : segment.end]
        lead, start = raw[start : line_end + 1], line_end + 1
    if segment.after_close:
        return lead + _gap(raw, start, segment.end, elisions)
    head_end = _header_end(raw, start, segment.end)
    if head_end is None:
        return lead + raw[start : segment.end]
    headers = raw[start:head_end]
    body_start = head_end + (2 if raw.startswith(b"\r\n", head_end) else 1)
    blank = raw[head_end:body_start]
    ctype, encoding = _type_and_encoding(headers)
    body_len = _body_length(raw, body_start, segment.end, subpart=bool(lead))
    if ctype.startswith(b"multipart/"):
        return lead + headers + blank + _gap(raw, body_start, segment.end, elisions)
    decoded = body_len * 3 // 4 if encoding == b"base64" else body_len
    if ctype.startswith(b"message/") or decoded <= _skip_threshold(elisions.limit):
        return lead + raw[start : segment.end]
    if not ctype.startswith(b"text/"):
        return lead + _marked(headers, elisions, ELIDED, body_len) + blank
    kept = raw.rfind(b"\n", body_start, body_start + TEXT_KEEP_BYTES) + 1
    if body_len > 2 * TEXT_KEEP_BYTES and kept > body_start:  # cut only at a line's end
        body = raw[body_start:kept]
        return lead + _marked(headers, elisions, CUT, body_len, len(body)) + blank + body
    return lead + raw[start : segment.end]


def _body_length(raw: bytes, start: int, end: int, *, subpart: bool) -> int:
    """A part's length as the email package holds it: the line end before a boundary line
    belongs to the boundary, and a part of a multipart loses its last line end at the
    message's end too."""
    if end < len(raw) or subpart:
        if raw.startswith(b"\r\n", end - 2):
            end -= 2
        elif raw.startswith(b"\n", end - 1):
            end -= 1
    return max(end - start, 0)


def _header_end(raw: bytes, start: int, end: int) -> int | None:
    """Where the blank line that ends the headers at `start` begins (`start` itself for a
    part with no headers); None when there is none near."""
    if raw.startswith((b"\r\n", b"\n"), start):
        return start
    limit = min(end, start + MAX_HEADER_BYTES)
    ends = (raw.find(b"\n\r\n", start, limit), raw.find(b"\n\n", start, limit))
    found = [at for at in ends if at >= 0]
    return min(found) + 1 if found else None  # the headers keep their last line end


def _type_and_encoding(headers: bytes) -> tuple[bytes, bytes]:
    ctype, encoding = b"", b""
    for match in _HEADER_VALUE.finditer(headers):
        name, value = match.group(1).lower(), match.group(2).strip().lower()
        if name == b"content-type" and not ctype:
            ctype = value
        elif name == b"content-transfer-encoding" and not encoding:
            encoding = value
    return ctype or b"text/plain", encoding


def _marked(headers: bytes, elisions: Elisions, kind: str, body_len: int, kept: int = 0) -> bytes:
    ident = elisions.add(kind, body_len, kept)
    return headers + f"{elisions.header}: {ident}\r\n".encode()


def _gap(raw: bytes, start: int, end: int, elisions: Elisions) -> bytes:
    """A preamble or epilogue: kept when short, else replaced by a marker line."""
    if end - start <= GAP_BYTES:
        return raw[start:end]
    ident = elisions.add(GAP, end - start)
    return f"{elisions.header}: {ident}\r\n".encode()


# --------------------------------------------------------------------------- verifying


class Refuted(Exception):
    """The parsed tree does not bear out the elisions: parse the original bytes."""


def verify(root: Message, elisions: Elisions) -> dict[int, Mark]:
    """Check that every marker landed where it was put and nothing else moved; return the
    marks of the parts that carry one (by id of the part), their markers removed."""
    by_part: dict[int, Mark] = {}
    seen: set[str] = set()
    for part in root.walk():
        _check_boundary(part, elisions.names)
        for gap_text in (part.preamble, part.epilogue):
            if gap_text and elisions.nonce in gap_text:
                seen.update(_gap_idents(gap_text, elisions))
        values = part.get_all(elisions.header) or []
        if len(values) > 1:
            raise Refuted("a part carries two markers")
        payload = part.get_payload()
        if isinstance(payload, str) and elisions.nonce in payload:
            raise Refuted("a marker landed in a body")
        if values:
            ident = str(values[0]).strip()
            mark = elisions.marks.get(ident)
            if mark is None or mark.kind == GAP or ident in seen:
                raise Refuted("a marker is not one that was written")
            _check_part(part, mark, payload, elisions.limit)
            seen.add(ident)
            by_part[id(part)] = mark
            del part[elisions.header]
    if seen != set(elisions.marks):
        raise Refuted("a marker went missing")
    return by_part


def _check_boundary(part: Message, names: set[bytes]) -> None:
    if not part.is_multipart() or part.get_content_maintype() == "message":
        return
    boundary = part.get_boundary()
    if boundary is None or boundary.encode("utf-8", "surrogateescape") not in names:
        raise Refuted("a multipart's boundary was not seen by the scan")


def _gap_idents(text: str, elisions: Elisions) -> list[str]:
    found = re.findall(rf"{re.escape(elisions.header)}: ({re.escape(elisions.nonce)}\.\d+)", text)
    if text.count(elisions.nonce) != 2 * len(found):  # the header's name and the id
        raise Refuted("a gap marker is not whole")
    for ident in found:
        if elisions.marks.get(ident, Mark("", 0)).kind != GAP:
            raise Refuted("a gap marker is not one that was written")
    return found


def _check_part(part: Message, mark: Mark, payload: object, limit: int) -> None:
    """A marked part must be read as the scan judged it: too large to read whole."""
    ctype = part.get_content_type()
    if not isinstance(payload, str):
        raise Refuted("a marked part is not a leaf")
    if encoded_size(part, mark) <= _skip_threshold(limit):
        raise Refuted("a marked part is not over the limit as the parser reads it")
    if mark.kind == ELIDED:
        if ctype.startswith(("text/", "message/", "multipart/")) or payload.strip():
            raise Refuted("an elided part is not a bare attachment")
    elif mark.kind == CUT and not ctype.startswith("text/"):
        raise Refuted("a cut part is not text")
    elif mark.kind == CUT and len(payload) > mark.kept_bytes:
        # The part ran on past the line the scan took for its end: the cut is not a prefix.
        raise Refuted("a cut part holds more than was kept")


def encoded_size(part: Message, mark: Mark) -> int:
    """The decoded size of the body that was taken out, as the reader estimates it."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    return mark.encoded_bytes * 3 // 4 if encoding == "base64" else mark.encoded_bytes
