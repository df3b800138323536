"""Oversized parts taken out before parsing: the quick reading gives what a whole parse
gives, and a message built to mislead the scan is read whole instead.

The attachment limit is set low (64 KB) so that each case is small; the rule is the same
at 20 MB.
"""

from __future__ import annotations

import base64
import dataclasses
import email
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake import mailparse, oversize
from intake.mailparse import parse_mail

LIMIT = 64 * 1024
BIG = base64.encodebytes(b"%PDF-1.4\n" + b"\x00\x01 scan " * 20_000).replace(b"\n", b"\r\n")
HEAD = b"From: Practice <manager@example.nhs.uk>\r\nTo: pcse@example.nhs.uk\r\nSubject: Form\r\n"


def whole(raw: bytes) -> mailparse.ParsedMail:
    """The reading without the scan: every byte through the email package."""
    mail = mailparse._parse(raw, LIMIT)
    mail.header_break = mail.header_break or mailparse.line_ending_break(raw)
    return mail


def fields(mail: mailparse.ParsedMail) -> dict[str, Any]:
    return dataclasses.asdict(mail)


def mixed(*parts: bytes, boundary: bytes = b"B1", preamble: bytes = b"") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        HEAD
        + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="
        + boundary
        + b"\r\n\r\n"
        + preamble
        + body
        + b"--"
        + boundary
        + b"--\r\n"
    )


TEXT = b"Content-Type: text/plain\r\n\r\nPlease set up Jane Smith as an admin."
PDF = b'Content-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'


def test_an_attachment_over_the_limit_is_taken_out_and_reported_as_before() -> None:
    raw = mixed(TEXT, PDF + BIG)
    prepared, elisions = oversize.elide(raw, LIMIT)
    assert elisions is not None and len(prepared) < len(raw) // 10
    quick = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert fields(quick) == fields(whole(raw))
    assert quick.skipped_attachments[0].filename == "scan.pdf"
    assert "over the limit" in quick.skipped_attachments[0].problem
    assert quick.text.strip() == "Please set up Jane Smith as an admin."


def test_a_message_that_is_one_large_attachment() -> None:
    raw = HEAD + b"MIME-Version: 1.0\r\n" + PDF + BIG
    assert oversize.elide(raw, LIMIT)[1] is not None
    quick = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert fields(quick) == fields(whole(raw))
    assert quick.skipped_attachments and "x-pcse" not in str(quick.headers).lower()


def test_a_marker_a_sender_writes_is_an_ordinary_header() -> None:
    forged = b"X-Pcse-Elided-0000000000000000: 0000000000000000.0\r\n"
    small = base64.encodebytes(b"%PDF-1.4 small form").replace(b"\n", b"\r\n")
    raw = mixed(TEXT, forged + PDF + small, PDF + BIG)
    quick = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert [a.filename for a in quick.attachments] == ["scan.pdf"]
    assert quick.attachments[0].data == b"%PDF-1.4 small form"
    assert fields(quick) == fields(whole(raw))


def test_large_preambles_and_epilogues_are_dropped_unread() -> None:
    raw = mixed(TEXT, preamble=b"padding line\r\n" * 10_000) + b"epilogue\r\n" * 10_000
    prepared, elisions = oversize.elide(raw, 1024)
    assert elisions is not None and len(prepared) < 2_000
    # The quick reading holds: the markers are where they were put.
    oversize.verify(email.message_from_bytes(prepared), elisions)
    quick = parse_mail(raw, attachment_max_bytes=1024)
    assert quick.text.strip() == "Please set up Jane Smith as an admin."
    assert quick.problems == whole(raw).problems


def test_a_huge_text_part_is_cut_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oversize, "TEXT_KEEP_BYTES", 50_000)
    lines = b"".join(b"line %06d of the letter\r\n" % n for n in range(20_000))
    raw = mixed(b"Content-Type: text/plain\r\n\r\n" + lines)
    mail = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert mail.text.startswith("line 000000 of the letter\nline 000001")
    assert 40_000 < len(mail.text) <= 50_000
    assert any("too long to read whole" in problem for problem in mail.problems)


def test_a_text_attachment_cut_short_is_still_skipped_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oversize, "TEXT_KEEP_BYTES", 50_000)
    lines = b"".join(b"row %06d,value\r\n" % n for n in range(20_000))
    attachment = (
        b'Content-Type: text/csv; name="list.csv"\r\nContent-Disposition: attachment\r\n\r\n'
    )
    raw = mixed(TEXT, attachment + lines)
    mail = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert not mail.attachments and mail.skipped_attachments[0].filename == "list.csv"
    assert mail.skipped_attachments[0].size == whole(raw).skipped_attachments[0].size


# Messages built so that a scan of the raw bytes would see parts the email package does
# not: each must read exactly as a whole parse reads it.
MISLEADING = {
    # A boundary the scan cannot see (RFC 2231 form): no split, or a refuted one.
    "rfc2231-boundary": HEAD
    + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary*=''B9\r\n\r\n--B9\r\n"
    + TEXT
    + b"\r\n--B9\r\n"
    + PDF
    + BIG
    + b"--B9--\r\n",
    # A folded Content-Type: the scan reads the part as text, the parser as a PDF.
    "folded-type": mixed(TEXT, b"Content-Type:\r\n application/pdf\r\n\r\n" + BIG),
    # Inside a text part, a line naming another multipart's boundary and a fake part.
    "fake-part-in-text": mixed(
        b"Content-Type: text/plain\r\n\r\nI approve\r\n--OTHER\r\n" + PDF + BIG + b"not really",
        b"Content-Type: multipart/alternative; boundary=OTHER\r\n\r\n--OTHER\r\n"
        + TEXT
        + b"\r\n--OTHER--",
    ),
    # Line ends of a bare CR, which the email package splits on and the scan does not.
    "bare-cr": mixed(TEXT, PDF + BIG).replace(b"\r\n--B1\r\n", b"\r--B1\r"),
    # Two Content-Transfer-Encoding headers: sizes judged differently would be refuted.
    "two-encodings": mixed(
        TEXT, PDF.replace(b"base64", b"base64\r\nContent-Transfer-Encoding: 7bit") + BIG
    ),
}


@pytest.mark.parametrize("name", sorted(MISLEADING))
def test_a_message_built_to_mislead_the_scan_reads_as_a_whole_parse(name: str) -> None:
    raw = MISLEADING[name]
    assert fields(parse_mail(raw, attachment_max_bytes=LIMIT)) == fields(whole(raw))


def test_the_fake_part_in_a_text_keeps_every_word_of_the_text() -> None:
    mail = parse_mail(MISLEADING["fake-part-in-text"], attachment_max_bytes=LIMIT)
    assert "not really" in mail.text and "I approve" in mail.text


def test_a_refuted_scan_leaves_no_marker_anywhere() -> None:
    for raw in MISLEADING.values():
        mail = parse_mail(raw, attachment_max_bytes=LIMIT)
        assert "x-pcse-elided" not in (mail.text + str(mail.headers)).lower()


def test_messages_under_the_limit_are_not_scanned() -> None:
    raw = mixed(TEXT, PDF + base64.encodebytes(b"%PDF small"))
    assert oversize.elide(raw, LIMIT) == (raw, None)
    assert email.message_from_bytes(raw).is_multipart()


def test_an_html_only_body_is_read_from_its_first_half_megabyte() -> None:
    paragraph = "<p>Please set up Jane Smith as an admin for A81001.</p>\n"
    html = ("<html><body><p>Start of the request.</p>\n" + paragraph * 60_000).encode()
    raw = HEAD + b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html
    mail = parse_mail(raw)
    assert mail.text_from_html and mail.text.startswith("Start of the request.")
    assert len(mail.text) < len(html) // 2
    assert any("its text was read from the first 500,000" in p for p in mail.problems)


# Parts a hostile sender might combine: each is (headers, body) with the body over or
# under the limit, headers in the shapes that may mislead a scan of raw bytes.
_TYPES = [
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n",
    b"Content-Type: text/plain\r\n",
    b"Content-Type: text/html\r\nContent-Disposition: attachment\r\n",
    b"Content-Type:\r\n application/octet-stream\r\n",
    b"content-type: APPLICATION/PDF\r\ncontent-transfer-encoding: BASE64\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"",
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n",
]
_NOISE = [b"", b"--B1\r\n", b"--B2\r\n", b"--B1--\r\n", b"\r--B1\r", b"x\r\n\r\n", b"--B1 \r\n"]


@st.composite
def hostile_multipart(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        headers = draw(st.sampled_from(_TYPES))
        size = draw(st.sampled_from([10, LIMIT // 2, LIMIT * 2]))
        line = draw(st.sampled_from([b"QUJD" * 19 + b"\r\n", b"plain words here\r\n"]))
        body = line * (size // len(line) + 1)
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.sampled_from(_NOISE)) + body[cut:]
        parts.append(headers + b"\r\n" + body)
    inner = draw(st.booleans())
    if inner:
        nested = (
            b"Content-Type: multipart/alternative; boundary=B2\r\n\r\n"
            + b"".join(b"--B2\r\n" + p + b"\r\n" for p in parts[:2])
            + b"--B2--\r\n"
            + draw(st.sampled_from([b"", b"epilogue\r\n" * 9000]))
        )
        parts = [nested, *parts[2:]]
    preamble = draw(st.sampled_from([b"", b"preamble\r\n" * 9000]))
    return mixed(*parts, preamble=preamble)


@settings(max_examples=60, deadline=None)
@given(hostile_multipart())
def test_any_combination_reads_as_a_whole_parse(raw: bytes) -> None:
    assert fields(parse_mail(raw, attachment_max_bytes=LIMIT)) == fields(whole(raw))


def test_an_unclosed_multiparts_last_part_is_sized_as_the_parser_sizes_it() -> None:
    # The email package drops a subpart's last line end at the message's end too: a body
    # sized to sit on the limit must be read, not reported as over it.
    threshold = oversize._skip_threshold(LIMIT)
    n = next(n for n in range(threshold, 2 * threshold) if n * 3 // 4 == threshold)
    pdf = base64.encodebytes(b"%PDF-1.4 signed form").replace(b"\n", b"\r\n")
    raw = mixed(TEXT)[: -len(b"--B1--\r\n")] + b"--B1\r\n" + PDF + pdf + b" " * (n - len(pdf))
    raw += b"\r\n"  # and no closing boundary
    quick = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert fields(quick) == fields(whole(raw))
    assert [a.filename for a in quick.attachments] == ["scan.pdf"]


def test_a_text_with_no_line_end_to_cut_at_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oversize, "TEXT_KEEP_BYTES", 50_000)
    plain = b"PLAIN: please remove Dr Evil. " + b"a" * 200_000
    html = b"Content-Type: text/html\r\n\r\n<p>HTML: please add Dr Evil.</p>"
    raw = mixed(b"Content-Type: text/plain\r\n\r\n" + plain, html)
    raw = raw.replace(b"multipart/mixed", b"multipart/alternative")
    mail = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert mail.text.startswith("PLAIN: please remove Dr Evil.") and not mail.text_from_html


def test_a_cut_that_would_not_be_a_prefix_is_refuted(monkeypatch: pytest.MonkeyPatch) -> None:
    # A line naming a boundary that only a mention elsewhere declares ends the scan's
    # segment, not the part: the text after it is still the same part's.
    monkeypatch.setattr(oversize, "TEXT_KEEP_BYTES", 50_000)
    padding = b"\x00" * 60_000
    text = (
        b"Intro.\r\n" + padding + b"\r\nMIDDLE: do NOT add.\r\n" + padding + b"\r\n--OTHER\r\nTAIL"
    )
    note = b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="n.txt"\r\n\r\n'
    raw = mixed(b"Content-Type: text/plain\r\n\r\n" + text, note + b"multipart/x; boundary=OTHER")
    mail = parse_mail(raw, attachment_max_bytes=LIMIT)
    assert "MIDDLE: do NOT add." in mail.text and "TAIL" in mail.text
    assert fields(mail) == fields(whole(raw))


def test_a_message_mentioning_multiparts_too_often_is_not_scanned() -> None:
    raw = mixed(TEXT, PDF + BIG) + b"multipart/" * (oversize.MAX_MULTIPART_MENTIONS + 1)
    assert oversize.elide(raw, LIMIT) == (raw, None)
