"""Hostile mail at volume: the malformed corpus, Hypothesis mutations of good mail, hostile PDFs.

`generate(count, seed)` runs a Hypothesis strategy `count` times (generation only, no
shrinking) and keeps what it drew: well-formed requests, forms, replies and forwards,
each put through one to three mutations of the kinds real inboxes see: broken MIME
boundaries, lying or unknown charsets and transfer encodings, raw 8-bit and NUL bytes in
headers, huge headers, message/rfc822 nested far down, zero-byte attachments, truncation,
flipped bytes and odd line ends. Every message gets a Message-ID of its own first, so
that it reaches the workflow instead of stopping as a duplicate.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
MALFORMED = ROOT / "tests" / "corpus" / "malformed"
FORMS = ROOT / "tests" / "corpus" / "forms"
INBOX = "pcse.portalenquiries@nhs.net"
MIB = 1024 * 1024

_MESSAGE_ID = re.compile(rb"(?im)^message-id:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n")
_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.I)
_CHARSET = re.compile(rb'charset="?([^";\r\n]*)"?', re.I)
_CTE = re.compile(rb"(?im)^content-transfer-encoding:[^\r\n]*")


# --------------------------------------------------------------------------- good mail to spoil


def _good(
    subject: str, text: str, *, html: str | None = None, pdf: tuple[str, bytes] | None = None
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Practice Manager <manager@example.nhs.uk>"
    msg["To"] = INBOX
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Feb 2026 09:30:00 +0000"
    msg["Message-ID"] = "<seed@example.nhs.uk>"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if pdf:
        msg.add_attachment(pdf[1], maintype="application", subtype="pdf", filename=pdf[0])
    if msg.is_multipart():
        msg.set_boundary("seed-boundary-1")  # fixed, so that the same seed gives the same mail
    return msg.as_bytes()


def _forwarded(inner: bytes) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Forwarder <fwd@example.nhs.uk>"
    msg["To"] = INBOX
    msg["Subject"] = "Fwd: request"
    msg["Message-ID"] = "<seed-fwd@example.nhs.uk>"
    msg.set_content("Forwarding this on, see below.")
    msg.add_attachment(inner, maintype="message", subtype="rfc822")
    msg.set_boundary("seed-boundary-fwd")
    return msg.as_bytes()


@functools.cache
def seeds() -> list[bytes]:
    """Well-formed messages of every kind the inbox gets, and the malformed corpus."""
    form = (FORMS / "gpp-acroform.pdf").read_bytes()
    request = _good(
        "PL Organisation Administrator request - A81001",
        "Please set up Hannah Lee (hannah.lee@nhs.net) as PL Organisation "
        "Administrator for Riverside Medical Centre, practice code A81001.\nThanks",
    )
    found = [
        request,
        _good("GPP form", "Our completed form is attached.", pdf=("GPP form.pdf", form)),
        _good(
            "RE: [PCSE-2026-000001] Your request",
            "APPROVE\n\nFine by me.\n\n> quoted",
            html="<p>APPROVE</p><blockquote>quoted</blockquote>",
        ),
        _good(
            "Change of main contact - A81002",
            "Organisation code: A81002\nNew main contact: Lisa Moore\n"
            "Email address: lisa.moore@nhs.net",
            html="<p>Change of main contact</p>",
        ),
        _forwarded(request),
    ]
    found += [p.read_bytes() for p in sorted(MALFORMED.glob("*.eml")) if p.stat().st_size]
    return found


def with_message_id(raw: bytes, number: int) -> bytes:
    """The message with its Message-ID replaced by one of its own (added if it had none)."""
    head_end = raw.find(b"\r\n\r\n")
    head_end = len(raw) if head_end < 0 else head_end
    head = _MESSAGE_ID.sub(b"", raw[:head_end])
    return b"Message-ID: <hostile-%d@proof.invalid>\r\n" % number + head + raw[head_end:]


# --------------------------------------------------------------------------- mutations

Draw = Callable[[st.SearchStrategy], object]
CHARSETS = [
    b"x-unknown",
    b"utf-7",
    b"utf-16",
    b"utf-32",
    b"iso-2022-jp",
    b"",
    b"utf-8\x00",
    b"gb18030",
    b"punycode",
    b"cp1252",
    b"latin-1'--",
    b"\xff\xfe",
]
ENCODINGS = [b"base64", b"quoted-printable", b"8bit", b"binary", b"x-uuencode", b"b\xe4se64"]


def break_boundary(draw: Draw, raw: bytes) -> bytes:
    found = _BOUNDARY.search(raw)
    if not found:
        return raw.replace(b"Content-Type: text/plain", b"Content-Type: multipart/mixed", 1)
    boundary = found.group(1)
    how = draw(st.sampled_from(["rename", "drop_close", "garble", "empty", "nest_same"]))
    if how == "rename":
        return raw[: found.start(1)] + boundary[::-1] + raw[found.end(1) :]
    if how == "drop_close":
        return raw.replace(b"--" + boundary + b"--", b"")
    if how == "garble":
        return raw.replace(b"--" + boundary, b"--" + boundary[:-1] + b"\x00", 1)
    if how == "empty":
        return raw[: found.start(1)] + raw[found.end(1) :]
    return raw.replace(
        b"Content-Type: text/plain",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
        1,
    )


def bad_charset(draw: Draw, raw: bytes) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    if _CHARSET.search(raw):
        return _CHARSET.sub(b'charset="' + charset + b'"', raw, count=2)
    return raw.replace(b"Content-Type: text/plain", b"Content-Type: text/plain; charset=" + charset)


def bad_transfer_encoding(draw: Draw, raw: bytes) -> bytes:
    encoding = draw(st.sampled_from(ENCODINGS))
    return _CTE.sub(b"Content-Transfer-Encoding: " + encoding, raw, count=2)


def raw_bytes_in_body(draw: Draw, raw: bytes) -> bytes:
    junk = draw(st.binary(min_size=1, max_size=400))
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + junk + raw[at:]


def encoded_word_junk(draw: Draw, raw: bytes) -> bytes:
    charset = draw(st.sampled_from([b"utf-8", b"x-bogus", b"utf-7", b"iso-8859-1", b""]))
    kind = draw(st.sampled_from([b"B", b"Q", b"X"]))
    payload = draw(st.binary(max_size=120))
    if kind == b"B" and draw(st.booleans()):
        payload = base64.b64encode(payload)
    word = (
        b"=?"
        + charset
        + b"?"
        + kind
        + b"?"
        + payload.replace(b"\r", b"").replace(b"\n", b"")
        + b"?="
    )
    name = draw(st.sampled_from([b"Subject", b"From", b"To", b"Reply-To", b"In-Reply-To"]))
    return name + b": " + word + b"\r\n" + raw


def eight_bit_header(draw: Draw, raw: bytes) -> bytes:
    junk = draw(st.binary(min_size=1, max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
    name = draw(st.sampled_from([b"Subject", b"From", b"Content-Type", b"Date", b"References"]))
    return name + b": " + junk + b"\r\n" + raw


def huge_header(draw: Draw, raw: bytes) -> bytes:
    if draw(st.booleans()):
        size = draw(st.sampled_from([10_000, 200_000, 2 * MIB]))
        folded = draw(st.booleans())
        value = (
            (b"word " * (size // 5)) if not folded else b"\r\n\t".join([b"x" * 70] * (size // 72))
        )
        name = draw(st.sampled_from([b"Subject", b"X-Long", b"References", b"From"]))
        return name + b": " + value + b"\r\n" + raw
    count = draw(st.sampled_from([500, 5000, 20_000]))
    return b"".join(b"X-Many-%d: v\r\n" % i for i in range(count)) + raw


def nest_rfc822(draw: Draw, raw: bytes) -> bytes:
    depth = draw(st.integers(1, 60))
    for level in range(depth):
        raw = (
            b"From: fwd%d@example.nhs.uk\r\nTo: " % level
            + INBOX.encode()
            + b"\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n'
            b"Content-Type: message/rfc822\r\n\r\n"
            % (level, level)
            + raw
            + b"\r\n--L%d--\r\n" % level
        )
    return raw


def zero_byte_attachment(draw: Draw, raw: bytes) -> bytes:
    ctype = draw(
        st.sampled_from(
            [
                b"application/pdf",
                b"application/octet-stream",
                b"text/plain",
                b"message/rfc822",
                b"application/ms-tnef",
            ]
        )
    )
    name = draw(st.sampled_from([b"form.pdf", b"winmail.dat", b"", b"..\\..\\x.pdf"]))
    return (
        b"From: a@example.nhs.uk\r\nTo: " + INBOX.encode() + b"\r\nSubject: empty file\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n"
        b"--Z\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--Z\r\nContent-Type: "
        + ctype
        + b'; name="'
        + name
        + b'"\r\nContent-Transfer-Encoding: base64\r\n'
        b"Content-Disposition: attachment\r\n\r\n\r\n--Z--\r\n" + raw[:0]
    )


def truncate(draw: Draw, raw: bytes) -> bytes:
    return raw[: draw(st.integers(0, len(raw)))]


def flip_bytes(draw: Draw, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 20))):
        if data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


def line_ends(draw: Draw, raw: bytes) -> bytes:
    style = draw(st.sampled_from([b"\n", b"\r", b"\n\r", b"\r\r\n"]))
    return raw.replace(b"\r\n", style)


def drop_header(draw: Draw, raw: bytes) -> bytes:
    name = draw(st.sampled_from([b"From", b"Content-Type", b"MIME-Version", b"Subject"]))
    return re.sub(rb"(?im)^" + name + rb":[^\r\n]*\r?\n", b"", raw, count=1)


def no_header_break(draw: Draw, raw: bytes) -> bytes:
    return raw.replace(b"\r\n\r\n", b"\r\n", 1)


MUTATIONS = [
    break_boundary,
    bad_charset,
    bad_transfer_encoding,
    raw_bytes_in_body,
    encoded_word_junk,
    eight_bit_header,
    huge_header,
    nest_rfc822,
    zero_byte_attachment,
    truncate,
    flip_bytes,
    line_ends,
    drop_header,
    no_header_break,
]


@st.composite
def hostile_message(draw: Draw, bases: list[bytes]) -> bytes:
    raw = draw(st.sampled_from(bases))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        raw = mutation(draw, raw)
    return raw


def generate(count: int, seed_value: int = 9) -> list[bytes]:
    """`count` mutated messages, the same ones for the same seed."""
    bases = list(seeds())
    found: list[bytes] = []

    @seed(seed_value)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_message(bases))
    def collect(raw: bytes) -> None:
        found.append(raw)

    collect()
    return [with_message_id(raw, number) for number, raw in enumerate(found)]


# --------------------------------------------------------------------------- large and PDF


def big_attachment(megabytes: int = 30, *, as_pdf: bool = True) -> bytes:
    """A message carrying one attachment of `megabytes` MB (over the 20 MB reading limit)."""
    data = (b"%PDF-1.4\n" if as_pdf else b"") + b"\x00\x01 large scan " * (megabytes * MIB // 14)
    encoded = base64.encodebytes(data)
    ctype = b"application/pdf" if as_pdf else b"application/octet-stream"
    return (
        b"From: Scanner <scanner@example.nhs.uk>\r\nTo: "
        + INBOX.encode()
        + b"\r\nSubject: Scanned form\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=BIG\r\n\r\n--BIG\r\n"
        b"Content-Type: text/plain\r\n\r\nScan attached.\r\n--BIG\r\nContent-Type: "
        + ctype
        + b'; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + encoded.replace(b"\n", b"\r\n")
        + b"--BIG--\r\n"
    )


def big_text(megabytes: int = 40) -> bytes:
    """A message whose one text part runs to `megabytes` MB (far more than is read)."""
    line = b"Please set up the new admin for our practice; details follow below.\r\n"
    return (
        b"From: Practice <manager@example.nhs.uk>\r\nTo: "
        + INBOX.encode()
        + b"\r\nSubject: Long letter\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=LONG\r\n\r\n--LONG\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + line * (megabytes * MIB // len(line))
        + b"--LONG--\r\n"
    )


def big_html(megabytes: int = 8) -> bytes:
    """An HTML-only message of `megabytes` MB (text is read from its first half megabyte)."""
    row = b"<tr><td>Practice code</td><td>A81001</td></tr><tr><td><b>Name</b></td></tr>\r\n"
    return (
        b"From: Practice <manager@example.nhs.uk>\r\nTo: "
        + INBOX.encode()
        + b"\r\nSubject: Big table\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>"
        + row * (megabytes * MIB // len(row))
        + b"</table></body></html>\r\n"
    )


def pdf_message(name: str, data: bytes) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Practice Manager <manager@example.nhs.uk>"
    msg["To"] = INBOX
    msg["Subject"] = f"Completed form ({name})"
    msg.set_content("Our form is attached.")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=f"{name}.pdf")
    return msg.as_bytes()


def hostile_pdf_messages(names: list[str] | None = None) -> list[bytes]:
    """The forms tests' hostile PDFs (bomb, endless, encrypted …), each attached to a request."""
    from bench.hostile_pdfs import HOSTILE

    chosen = names or sorted(HOSTILE)
    return [pdf_message(name, HOSTILE[name][0]()) for name in chosen]
