"""Safe reading of an email: whatever the sender wrote, a ParsedMail comes out.

The MIME structure is read with the email package's lenient compat32 parser (raw header
strings, cheap to walk); address headers are parsed by email.policy.default's header
classes. Every header and part is read behind a fallback, because malformed headers,
unknown charsets and broken MIME are normal in a public inbox. The result satisfies
core.inbound.IncomingMail.

The cost of reading grows with the size of the message and no faster: MIME structure
nested deeper than MAX_MIME_NESTING is refused before the email package sees it (each open
multipart costs it a check on every later line, and a level of recursion), the parameters
of MIME headers are cut to MAX_MIME_HEADER_CHARS (the email package splits them in
quadratic time), encoded words are decoded a bounded piece at a time, and the bodies of
parts too large to read are taken out before parsing (intake/oversize.py).
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.parser
import email.utils
import mimetypes
import os
import re
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.policy import Compat32

from core.addresses import SenderIdentity, parse_from, recipient_addresses, unverified
from core.htmltext import html_to_text
from core.senderauth import AUTH_AS, SINGLE_HEADERS
from core.visible import without_format
from intake.charsets import decode_bytes, storable, unsurrogate
from intake.oversize import Elisions, Mark, Refuted, elide, encoded_size, verify
from intake.tnef import TNEF_SECONDS, is_tnef, unpack_tnef

DEFAULT_ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 12
MAX_PARTS = 300
MAX_TEXT_CHARS = 2_000_000
# An HTML-only body is turned into text up to this many characters: the readers read the
# top of a message, and turning markup into text costs up to a second a megabyte.
HTML_READ_CHARS = 500_000
MAX_REFERENCES = 100
# Real mail nests a few multiparts deep; a forwarded chain perhaps forty.
MAX_MIME_NESTING = 100
# Longer Content-Type, Content-Disposition and Content-Transfer-Encoding values are cut
# (at a parameter's end) before the email package splits their parameters.
MAX_MIME_HEADER_CHARS = 8_000
# Encoded words are decoded in pieces of at most this many characters, cut at a space
# (an encoded word has at most 75), or after one longer word of at most LONG_WORD_CHARS.
DECODE_PIECE_CHARS = 256
LONG_WORD_CHARS = 2_000

_MSGID = re.compile(r"<[^<>\s]{1,990}>")


@dataclass
class MailAttachment:
    filename: str  # made safe: no directories, no control characters, bounded length
    content_type: str
    data: bytes


@dataclass
class SkippedAttachment:
    """An attachment that was not read, and why (shown to caseworkers)."""

    filename: str
    content_type: str
    size: int
    problem: str


class DecodedHeaders(Mapping[str, list[str]]):
    """A message's header values by lower-case name, each name's decoded (decode_header_text)
    the first time it is asked for. Most of what a message's header section holds (relays'
    Received lines, DKIM and ARC signatures, the mail system's own headers) is read by
    nobody, and decoding it all cost a quarter of parsing a message sent by Outlook."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Mapping[str, list[str]] | None = None) -> None:
        self._raw = dict(raw or {})
        self._decoded: dict[str, list[str]] = {}

    def __getitem__(self, name: str) -> list[str]:
        values = self._decoded.get(name)
        if values is None:
            values = self._decoded[name] = [decode_header_text(v) for v in self._raw[name]]
        return values

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass
class ParsedMail:
    message_id: str | None = None
    subject: str = ""
    from_addresses: list[tuple[str, str]] = field(default_factory=list)
    to_addresses: list[str] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    authentication_results: list[str] = field(default_factory=list)
    auth_as: list[str] = field(default_factory=list)  # X-MS-Exchange-Organization-AuthAs
    on_behalf: list[str] = field(default_factory=list)  # Sender and Resent-From addresses
    repeated_headers: list[str] = field(default_factory=list)  # SINGLE_HEADERS seen twice
    header_break: str | None = None  # where the header section stops being headers, if it does
    sender_identity: SenderIdentity = field(
        default_factory=lambda: unverified("The message has no From header.")
    )
    text: str = ""
    # True when there was no text part and `text` was made from the HTML body (with any
    # quoted original still in it): an approver's answer is then read from the HTML.
    text_from_html: bool = False
    html: str | None = None
    attachments: list[MailAttachment] = field(default_factory=list)
    # Beyond IncomingMail: what classification and caseworkers need.
    headers: Mapping[str, list[str]] = field(default_factory=DecodedHeaders)
    content_type: str = "text/plain"
    report_type: str | None = None  # multipart/report; report-type=...
    delivery_status: bool = False  # a message/delivery-status part is present
    # Message-IDs of messages carried inside this one (a bounce's returned message).
    enclosed_message_ids: list[str] = field(default_factory=list)
    skipped_attachments: list[SkippedAttachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # What the message holds that was not read, one sentence each (an attachment over the
    # limit, an attached email's text, parts too deep or too many, text cut): an approver's
    # answer is then not taken as clear (workflow.answers).
    unread_parts: list[str] = field(default_factory=list)
    # Set when only the headers could be read (the structure is too deep or too large to
    # hold): why, in words for a caseworker.
    unreadable: str | None = None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def sender(self) -> str | None:
        """The From address when From holds exactly one mailbox, lower-cased."""
        return self.sender_identity.address


# --------------------------------------------------------------------------- headers


_PLAIN_HEADER = re.compile(r"[\x20-\x7e\t]*")
_FOLD = re.compile(r"\r?\n[ \t]*")


# Control characters (NUL above all, which PostgreSQL refuses in text) have no place in
# a header value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def decode_header_text(raw: str) -> str:
    """A header value as text: RFC 2047 words decoded, 8-bit bytes guessed, folding removed."""
    if _PLAIN_HEADER.fullmatch(raw) and "=?" not in raw:
        return raw.strip()
    value = _CONTROL.sub(" ", _FOLD.sub(" ", unsurrogate(raw)))
    if "=?" in value:
        value = "".join(_decode_words(piece) for piece in _pieces(value, DECODE_PIECE_CHARS))
    # A filename's RFC 2231 charset is decoded by the email package itself, UTF-7 too.
    return storable(_CONTROL.sub(" ", value)).strip()


def _pieces(value: str, size: int) -> list[str]:
    """`value` in pieces for the email package's decoder, whose time is quadratic in what it
    is given."""
    pieces = []
    start = 0
    while len(value) - start > size:
        end = _piece_end(value, start, size)
        pieces.append(value[start:end])
        start = end
    pieces.append(value[start:])
    return pieces


def _piece_end(value: str, start: int, size: int) -> int:
    """After the last space within `size`; else after one encoded word longer than that
    (malformed, but some mailers send them); else at `size`, where no word can be split
    that could be decoded in reasonable time."""
    space = value.rfind(" ", start + 1, start + size)
    if space > start:
        return space + 1
    close = value.find("?=", start, start + LONG_WORD_CHARS)
    if close > start and value.count("=?", start, close) <= 1:
        return close + 2
    return start + size


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        pieces = email.header.decode_header(value)
        return "".join(
            decode_bytes(chunk, charset)[0] if isinstance(chunk, bytes) else chunk
            for chunk, charset in pieces
        )
    except (ValueError, LookupError, AssertionError, email.errors.HeaderParseError):
        return value


def _raw_headers(msg: Message) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        found.setdefault(str(name).strip().lower(), []).append(str(value))
    return found


def message_id_of(raw: str | None) -> str | None:
    if not raw:
        return None
    value = _CONTROL.sub("", unsurrogate(raw)).strip()
    match = _MSGID.search(value)
    if match:
        return match.group(0)
    token = value.split()[0] if value.split() else ""
    return f"<{token[:990]}>" if token else None


def _date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = email.utils.parsedate_to_datetime(unsurrogate(raw).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read_headers(mail: ParsedMail, msg: Message) -> None:
    raw = _raw_headers(msg)
    mail.headers = DecodedHeaders(raw)
    first = {name: values[0] for name, values in raw.items()}
    mail.message_id = message_id_of(first.get("message-id"))
    mail.subject = mail.headers.get("subject", [""])[0][:998]
    # Addresses are split from the raw headers; encoded words only ever decode inside a
    # display name, afterwards (core.addresses).
    mail.sender_identity = parse_from([unsurrogate(v) for v in raw.get("from", [])])
    mail.from_addresses = [(m.display_name, m.address) for m in mail.sender_identity.mailboxes]
    mail.to_addresses, cut = recipient_addresses(
        unsurrogate(v) for v in [*raw.get("to", []), *raw.get("cc", [])]
    )
    mail.problems.extend(cut)
    mail.on_behalf, _ = recipient_addresses(
        unsurrogate(v) for v in [*raw.get("sender", []), *raw.get("resent-from", [])]
    )
    mail.date = _date(first.get("date"))
    mail.in_reply_to = message_id_of(first.get("in-reply-to"))
    references = " ".join(unsurrogate(v) for v in raw.get("references", []))
    mail.references = _MSGID.findall(references)[:MAX_REFERENCES]
    # The receiving server's verdicts, raw and topmost first (core.senderauth reads them).
    mail.authentication_results = [_unfold(v) for v in raw.get("authentication-results", [])]
    mail.auth_as = [_unfold(v) for v in raw.get(AUTH_AS.lower(), [])]
    mail.repeated_headers = [name for name in SINGLE_HEADERS if len(raw.get(name, ())) > 1]
    mail.header_break = header_break(msg)


# The email package ends the headers at the first line that is not a header and reads the
# rest as the body; "Subject : x" (a space before the colon, obsolete syntax) is such a
# line to it, while a verifier may read on and take what follows as headers.
_BREAKS = (
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
)


def header_break(msg: Message) -> str | None:
    """Why the message's header section is not all headers, as the email package read it;
    None when it is. The service and a verifier may then read different headers."""
    if msg.get_unixfrom() is not None:
        return "its first line is a mailbox file's 'From ' line, not a header"
    if any(isinstance(defect, _BREAKS) for defect in msg.defects):
        return "a line in its header section is not a header"
    return None


def line_ending_break(raw: bytes) -> str | None:
    """Why the header section's lines do not all end alike, or None.

    The email package ends a line at CR, LF or CRLF; a verifier of mail as it travels
    (CRLF) ends one only at CRLF. A bare CR or LF among the headers splits them differently:
    "X-Note: a<CR><CR>Approved" is one header to a verifier, and to the email package the
    end of the headers and a first line of text. Mail kept with LF endings (a Maildir file)
    reads alike either way, so long as no CR is among its headers."""
    first = raw.find(b"\n")
    crlf = first > 0 and raw[first - 1 : first] == b"\r"
    end = raw.find(b"\r\n\r\n" if crlf else b"\n\n")
    head = raw if end < 0 else raw[:end]
    pairs = head.count(b"\r\n")
    if head.count(b"\r") > pairs or (crlf and head.count(b"\n") > pairs):
        return "a line in its header section ends in a bare CR or LF"
    return None


def _unfold(raw: str) -> str:
    return " ".join(unsurrogate(raw).split())


# --------------------------------------------------------------------------- names


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A name safe to show and to save: no path, no control characters, at most 120 chars."""
    # No format characters: a right-to-left override shows "x\u202efdp.exe" as "xexe.pdf".
    value = without_format(unicodedata.normalize("NFC", name or ""))
    value = value.replace("\\", "/").rsplit("/", 1)[-1]
    value = _UNSAFE_NAME.sub("_", value).strip(" .")
    if value and value.split(".")[0].upper() in _WINDOWS_RESERVED:
        value = "_" + value
    if not value:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        value = f"attachment-{index}{extension}"
    if len(value) > 120:
        stem, extension = os.path.splitext(value)
        extension = extension[:16]
        value = stem[: 120 - len(extension)] + extension
    return value


def _unique(name: str, used: set[str]) -> str:
    candidate, number = name, 1
    while candidate.lower() in used:
        number += 1
        stem, extension = os.path.splitext(name)
        candidate = f"{stem}-{number}{extension}"
    used.add(candidate.lower())
    return candidate


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # broken RFC 2231 parameters
        name = None
    if name is None:
        try:
            param = part.get_param("name")
            name = email.utils.collapse_rfc2231_value(param) if isinstance(param, tuple) else param
        except Exception:
            name = None
    return decode_header_text(str(name)) if name else None


# --------------------------------------------------------------------------- parts


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _estimated_size(part: Message) -> int:
    """Decoded size from the encoded payload, without decoding it."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return 0
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        return len(payload) * 3 // 4
    return len(payload)


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _part_text(part: Message, mail: ParsedMail) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text, problem = decode_bytes(_payload_bytes(part), charset)
    if problem:
        mail.problems.append(f"{problem}; read as UTF-8 or Windows-1252")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Stands for the parts nested deeper than MAX_DEPTH, which are not read.
_TOO_DEEP = Message()


def _leaves(part: Message, depth: int = 0):
    """Every non-multipart part, depth first; messages inside messages are leaves. Where
    parts lie deeper than MAX_DEPTH, _TOO_DEEP instead."""
    if depth > MAX_DEPTH:
        yield _TOO_DEEP
        return
    if _content_type(part).startswith("multipart/") and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub, depth + 1)
    else:
        yield part


class _Reader:
    def __init__(self, mail: ParsedMail, limit: int, marks: dict[int, Mark]) -> None:
        self.mail = mail
        self.limit = limit
        self.marks = marks  # parts whose bodies were taken out or cut before parsing
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.used_names: set[str] = set()
        self.parts = 0
        self.root: Message | None = None
        # What winmail.dat files may still cost this message (intake.tnef): waiting for its
        # child is no CPU of this process, which the message's own budget counts.
        self.tnef_seconds = TNEF_SECONDS

    def read(self, msg: Message, depth: int = 0, enclosed: bool = False) -> None:
        if depth == 0:
            self.root = msg
        for part in _leaves(msg, depth):
            if part is _TOO_DEEP:
                self._too_deep()
                continue
            self.parts += 1
            if self.parts > MAX_PARTS:
                self.unread(f"more than {MAX_PARTS} parts; the rest were not read")
                return
            try:
                self.read_part(part, depth, enclosed)
            except Exception as exc:  # one bad part never loses the message
                self.unread(
                    f"a {_content_type(part)} part could not be read ({type(exc).__name__})"
                )

    def unread(self, problem: str) -> None:
        _unread(self.mail, problem)

    def read_part(self, part: Message, depth: int, enclosed: bool) -> None:
        ctype = _content_type(part)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            # A report inside a forwarded message is what was forwarded, not this one.
            self.mail.delivery_status = self.mail.delivery_status or not enclosed
            return
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            inner = email.message_from_bytes(_payload_bytes(part), policy=_POLICY)
            self._enclosed_id(inner.get("Message-ID"))
            return
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            forwarded = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(forwarded, Message):
                self._enclosed_id(forwarded.get("Message-ID"))
                # Its files are read below, its text never is: the message does not say
                # all of what it carries in its own words.
                self.mail.unread_parts.append("an attached email, whose text was not read")
                # A forwarded message's own files (a form forwarded as an attachment) count.
                if depth < MAX_DEPTH:
                    self.read(forwarded, depth + 1, enclosed=True)
                else:
                    self._too_deep()
            return
        filename = _filename(part)
        disposition = _disposition(part)
        # A text part is the body unless it is marked as an attachment or carries a file
        # name; a message that is a single text part is always its own body.
        is_body = (
            ctype in ("text/plain", "text/html")
            and disposition != "attachment"
            and (not filename or disposition == "inline" or part is self.root)
        )
        if is_body:
            if enclosed:
                return
            target = self.texts if ctype == "text/plain" else self.htmls
            target.append(_part_text(part, self.mail))
            if id(part) in self.marks:
                self.unread(
                    f"a {ctype} part of {self.marks[id(part)].encoded_bytes / 1048576:.0f} MB "
                    "was too long to read whole; its beginning was read"
                )
            return
        self.attachment(part, ctype, filename)

    def _too_deep(self) -> None:
        """Parts nested deeper than anyone writes are not read, and a person is told so: a
        form among them would otherwise vanish without a word."""
        problem = f"parts nested more than {MAX_DEPTH} levels deep were not read"
        if problem not in self.mail.problems:
            self.unread(problem)

    def _enclosed_id(self, raw: object) -> None:
        found = message_id_of(str(raw)) if raw else None
        if found and found not in self.mail.enclosed_message_ids:
            self.mail.enclosed_message_ids.append(found)

    def attachment(self, part: Message, ctype: str, filename: str | None) -> None:
        index = len(self.mail.attachments) + len(self.mail.skipped_attachments) + 1
        name = safe_filename(filename, ctype, index)
        mark = self.marks.get(id(part))
        estimate = encoded_size(part, mark) if mark else _estimated_size(part)
        if estimate > self.limit * 1.01 + 4096:
            self.skip(name, ctype, estimate)
            return
        data = _payload_bytes(part)
        if len(data) > self.limit:
            self.skip(name, ctype, len(data))
            return
        if is_tnef(ctype, filename):
            self.tnef(name, ctype, data)
            return
        self.keep(name, ctype, data)

    def keep(self, name: str, ctype: str, data: bytes) -> None:
        self.mail.attachments.append(MailAttachment(_unique(name, self.used_names), ctype, data))

    def skip(self, name: str, ctype: str, size: int) -> None:
        problem = (
            f"{name} is {size / 1048576:.1f} MB, over the limit of "
            f"{self.limit / 1048576:.0f} MB, and was not read"
        )
        self.mail.skipped_attachments.append(SkippedAttachment(name, ctype, size, problem))
        self.unread(problem)

    def tnef(self, name: str, ctype: str, data: bytes) -> None:
        if self.tnef_seconds <= 0:
            self.mail.problems.append(
                f"{name}: not unpacked, the message's winmail.dat files having taken the "
                f"{TNEF_SECONDS:g} s they may; kept as it is"
            )
            self.keep(name, ctype, data)
            return
        began = time.monotonic()
        try:
            content = unpack_tnef(data, self.tnef_seconds)
        except ValueError as exc:
            self.mail.problems.append(f"{name}: {exc}; kept as it is")
            self.keep(name, ctype, data)
            return
        finally:
            self.tnef_seconds -= time.monotonic() - began
        for inner_name, inner_data in content.files:
            inner_type = mimetypes.guess_type(inner_name)[0] or "application/octet-stream"
            safe = safe_filename(inner_name, inner_type, len(self.mail.attachments) + 1)
            if len(inner_data) > self.limit:
                self.skip(safe, inner_type, len(inner_data))
            else:
                self.keep(safe, inner_type, inner_data)
        if content.text.strip():
            self.texts.append(content.text)
        if content.html:
            self.htmls.append(content.html)
        if content.rtf_unread:
            self.unread(f"{name}: its rich-text (RTF) body was not read")


def _unread(mail: ParsedMail, problem: str) -> None:
    """Something the message holds was not read: a problem for a caseworker to see, and a
    part of the message nobody read."""
    if problem not in mail.problems:
        mail.problems.append(problem)
    mail.unread_parts.append(problem)


def _structure(mail: ParsedMail, msg: Message) -> None:
    mail.content_type = _content_type(msg)
    if mail.content_type == "multipart/report":
        try:
            report_type = msg.get_param("report-type")
        except Exception:
            report_type = None
        mail.report_type = str(report_type).lower() if report_type else "unknown"


# --------------------------------------------------------------------------- structure


class _BoundedCompat32(Compat32):
    """compat32, with MIME headers cut short enough for the email package's parameter
    splitting (quadratic in their length) to stay quick."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if len(value) > MAX_MIME_HEADER_CHARS and name.strip().lower() in _MIME_HEADERS:
            cut = value.rfind(";", 0, MAX_MIME_HEADER_CHARS)
            value = value[: cut if cut > 0 else MAX_MIME_HEADER_CHARS]
        return name, value


_MIME_HEADERS = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})
_POLICY = _BoundedCompat32()

# A Content-Type header opening a multipart (its value may be folded onto the next line),
# or a line that may be a boundary delimiter.
_MIME_MARK = re.compile(
    rb"^(?:(?P<open>content-type:[ \t]*(?:\r?\n[ \t]+)*multipart/)|--)", re.I | re.M
)
_HEADER_END = re.compile(rb"\n(?![ \t])")
_BOUNDARY_PARAM = re.compile(
    rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.I
)


def mime_nesting(raw: bytes) -> int:
    """How deep multiparts nest in `raw`, read without parsing it: the number of multiparts
    declared when that is within MAX_MIME_NESTING (it cannot be less), else the depth
    their boundaries open and close to."""
    declared = raw.lower().count(b"multipart/")
    if declared <= MAX_MIME_NESTING:
        return declared
    return _boundary_depth(raw)


def _boundary_depth(raw: bytes) -> int:
    """The most multiparts open at once: each declared boundary is open until its closing
    delimiter, or a delimiter of a multipart around it (as the email package reads it)."""
    stack: list[bytes] = []
    counts: dict[bytes, int] = {}
    deepest = 0
    for mark in _MIME_MARK.finditer(raw):
        start = mark.end()
        if mark.group("open"):
            end = _HEADER_END.search(raw, start, start + MAX_MIME_HEADER_CHARS)
            header = raw[start : end.start() if end else start + MAX_MIME_HEADER_CHARS]
            found = _BOUNDARY_PARAM.search(header)
            # A boundary not read here (RFC 2231 `boundary*0=`, say) is one the email
            # package may still read: its multipart counts as open, never closed.
            name = (found.group(1) or found.group(2)) if found else b"\0unread %d" % start
            stack.append(name)
            counts[name] = counts.get(name, 0) + 1
            deepest = max(deepest, len(stack))
            continue
        line_end = raw.find(b"\n", start, start + 210)
        line = raw[start : line_end if line_end >= 0 else start + 210].rstrip()
        if counts.get(line):
            _close_to(stack, counts, line, inclusive=False)
        elif line.endswith(b"--") and counts.get(line[:-2]):
            _close_to(stack, counts, line[:-2], inclusive=True)
    return deepest


def _close_to(
    stack: list[bytes], counts: dict[bytes, int], name: bytes, *, inclusive: bool
) -> None:
    """Close the multiparts inside the innermost one named `name` (and it too)."""
    while stack:
        top = stack[-1]
        if top == name and not inclusive:
            return
        stack.pop()
        counts[top] -= 1
        if top == name:
            return


def _header_block(raw: bytes) -> bytes:
    ends = [end for end in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if end >= 0]
    return raw[: min(ends) + 2] if ends else raw


def _headers_only(raw: bytes, why: str) -> ParsedMail:
    """What can be read of a message whose body cannot be: its headers, and why."""
    mail = ParsedMail(unreadable=why)
    _unread(mail, f"only the headers were read: {why}")
    try:
        msg = email.parser.BytesHeaderParser(policy=_POLICY).parsebytes(_header_block(raw))
        _read_headers(mail, msg)
        mail.content_type = _content_type(msg)
    except Exception as exc:  # even the headers are beyond reading: say so, and go on
        mail.problems.append(f"the headers could not be read either ({type(exc).__name__})")
    return mail


def parse_mail(
    raw: bytes, *, attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES
) -> ParsedMail:
    """Read `raw` into a ParsedMail; never raises, whatever the bytes.

    A message the email package cannot hold (structure nested too deep, recursion or
    memory exhausted, or a failure of its own) comes back with its headers only and
    `unreadable` saying why.
    """
    mail = _read(raw, attachment_max_bytes)
    mail.header_break = mail.header_break or line_ending_break(raw)
    return mail


def _read(raw: bytes, attachment_max_bytes: int) -> ParsedMail:
    depth = mime_nesting(raw)
    if depth > MAX_MIME_NESTING:
        return _headers_only(
            raw,
            f"its MIME structure is nested {depth} levels deep, more "
            f"than the {MAX_MIME_NESTING} this service reads",
        )
    try:
        prepared, elisions = elide(raw, attachment_max_bytes)
        if elisions is not None:
            try:
                return _parse(prepared, attachment_max_bytes, elisions)
            except Refuted:
                pass  # the quick reading did not hold: read every byte
        return _parse(raw, attachment_max_bytes)
    except RecursionError:
        return _headers_only(raw, "its MIME structure is nested too deep to read")
    except MemoryError:
        return _headers_only(raw, "it is too large to read in the memory available")
    except Exception as exc:  # a failure inside the email package; the message is kept
        return _headers_only(raw, f"the email package could not read it ({type(exc).__name__})")


def _parse(raw: bytes, attachment_max_bytes: int, elisions: Elisions | None = None) -> ParsedMail:
    mail = ParsedMail()
    msg = email.message_from_bytes(raw, policy=_POLICY)
    marks = verify(msg, elisions) if elisions is not None else {}
    if msg.defects:
        mail.problems.extend(f"defect: {type(d).__name__}" for d in msg.defects[:5])
    try:
        _read_headers(mail, msg)
    except Exception as exc:
        mail.problems.append(f"headers could not be read fully ({type(exc).__name__})")
    _structure(mail, msg)
    reader = _Reader(mail, attachment_max_bytes, marks)
    reader.read(msg)
    texts = [t for t in reader.texts if t.strip()]
    mail.html = "\n".join(reader.htmls) if reader.htmls else None
    if texts:
        mail.text = "\n\n".join(texts)
    elif mail.html:
        mail.text = html_to_text(mail.html[:HTML_READ_CHARS])
        mail.text_from_html = True
        if len(mail.html) > HTML_READ_CHARS:
            _unread(
                mail,
                f"the HTML body runs to {len(mail.html):,} characters; its text was read "
                f"from the first {HTML_READ_CHARS:,}",
            )
    mail.text = mail.text.replace("\x00", "")
    mail.html = mail.html.replace("\x00", "") if mail.html else mail.html
    if len(mail.text) > MAX_TEXT_CHARS:
        _unread(mail, f"the text was cut at {MAX_TEXT_CHARS} characters")
        mail.text = mail.text[:MAX_TEXT_CHARS]
    return mail
