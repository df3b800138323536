"""Safe reading of email: whatever arrives, a ParsedMail comes out, with attachments made safe."""

from __future__ import annotations

import random
import resource
import struct
from email.message import EmailMessage

import pytest

from intake.charsets import decode_bytes
from intake.classify import bounce_reason
from intake.ledger import header_facts
from intake.mailparse import parse_mail, safe_filename
from intake.tnef import unpack_tnef


def with_attachments(*files: tuple[str, str, bytes], body: str = "See attached.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Practice <pm@a81001.nhs.uk>"
    msg["To"] = "pcse.portalenquiries@nhs.net"
    msg["Subject"] = "Forms"
    msg["Message-ID"] = "<forms@a81001.nhs.uk>"
    msg.set_content(body)
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def tnef(body: str, files: list[tuple[str, bytes]]) -> bytes:
    """A minimal winmail.dat as Outlook writes one: version, codepage, body, attachments."""

    def attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
        return (
            struct.pack("<BHHI", level, name, kind, len(data))
            + data
            + struct.pack("<H", sum(data) & 0xFFFF)
        )

    out = struct.pack("<IH", 0x223E9F78, 1)
    out += attribute(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    out += attribute(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    out += attribute(1, 0x800C, 0x0002, body.encode("cp1252"))
    for name, data in files:
        out += attribute(2, 0x9002, 0x0006, b"\x01\x00" + b"\xff" * 12)
        out += attribute(2, 0x8010, 0x0001, name.encode("cp1252") + b"\x00")
        out += attribute(2, 0x800F, 0x0006, data)
    return out


def test_a_25_mb_attachment_is_skipped_with_the_reason_and_the_rest_is_read() -> None:
    big = b"%PDF-1.4\n" + b"0" * (25 * 1024 * 1024)
    raw = with_attachments(
        ("huge scan.pdf", "application/pdf", big),
        ("form.pdf", "application/pdf", b"%PDF-1.4 small"),
    )
    assert len(raw) > 25 * 1024 * 1024

    mail = parse_mail(raw, attachment_max_bytes=20 * 1024 * 1024)

    assert [a.filename for a in mail.attachments] == ["form.pdf"]
    assert [s.filename for s in mail.skipped_attachments] == ["huge scan.pdf"]
    skipped = mail.skipped_attachments[0]
    assert skipped.size > 20 * 1024 * 1024
    assert "over the limit of 20 MB" in skipped.problem
    assert mail.text.strip() == "See attached."


def test_the_attachment_limit_is_the_configured_one() -> None:
    raw = with_attachments(("a.pdf", "application/pdf", b"x" * 5000))
    assert parse_mail(raw, attachment_max_bytes=10_000).attachments
    assert not parse_mail(raw, attachment_max_bytes=1000).attachments


def test_winmail_dat_is_unpacked() -> None:
    dat = tnef(
        "Please find the form attached.",
        [("Admin form.pdf", b"%PDF-1.4 form"), ("notes.txt", b"hello")],
    )
    raw = with_attachments(("winmail.dat", "application/ms-tnef", dat), body="")

    mail = parse_mail(raw)

    assert [(a.filename, a.data) for a in mail.attachments] == [
        ("Admin form.pdf", b"%PDF-1.4 form"),
        ("notes.txt", b"hello"),
    ]
    assert mail.attachments[0].content_type == "application/pdf"
    assert "Please find the form attached." in mail.text


def _claiming(mapi: bytes) -> bytes:
    """A winmail.dat whose one MAPI attribute holds `mapi`, as a hostile sender writes it."""
    attribute = struct.pack("<BHHI", 1, 0x9003, 0x0006, len(mapi)) + mapi
    return struct.pack("<IH", 0x223E9F78, 1) + attribute + struct.pack("<H", sum(mapi) & 0xFFFF)


@pytest.mark.parametrize(
    "mapi",
    [
        struct.pack("<IHHI", 1, 0x1002, 0x0001, 0xFFFFFFFF),  # four billion short values
        struct.pack("<I", 0xFFFFFFFF),  # four billion properties
    ],
    ids=["values", "properties"],
)
def test_a_winmail_dat_claiming_billions_costs_its_reader_not_the_service(mapi: bytes) -> None:
    """tnefparse believes the counts: read in the service, the first of these took 3.5 GB."""
    raw = with_attachments(("winmail.dat", "application/ms-tnef", _claiming(mapi)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mail = parse_mail(raw)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb
    assert [a.filename for a in mail.attachments] == ["winmail.dat"]  # kept as it came
    assert any(p.startswith("winmail.dat:") and "kept as it is" in p for p in mail.problems)
    # The reader is replaced after such a file: the next winmail.dat is read.
    good = tnef("Form attached.", [("form.pdf", b"%PDF-1.4 form")])
    assert unpack_tnef(good).files == [("form.pdf", b"%PDF-1.4 form")]


def test_the_winmail_dat_files_of_one_message_share_one_time_limit() -> None:
    """Waiting for the reader is no CPU of the service's, which a message's budget counts:
    a message of many slow winmail.dat files would otherwise hold a worker for minutes."""
    slow = _claiming(struct.pack("<I", 0xFFFFFFFF))  # four billion properties, no memory
    parts = [(f"winmail{n}.dat", "application/ms-tnef", slow) for n in range(4)]
    mail = parse_mail(with_attachments(*parts))
    assert len(mail.attachments) == 4  # each kept as it came
    assert sum("not unpacked" in p for p in mail.problems) == 3, mail.problems


def test_a_damaged_winmail_dat_is_kept_as_it_is() -> None:
    raw = with_attachments(("winmail.dat", "application/ms-tnef", b"not tnef at all"))
    mail = parse_mail(raw)
    assert [a.filename for a in mail.attachments] == ["winmail.dat"]
    assert any("winmail.dat" in p for p in mail.problems)
    with pytest.raises(ValueError):
        unpack_tnef(b"\x78\x9f\x3e\x22\x01\x00\x01")


def test_a_winmail_dat_damaged_anywhere_is_unpacked_or_kept() -> None:
    """tnefparse meets damage with whatever exception its code hits first; each is read as
    damage, never as a part that could not be read (which dropped the file)."""
    dat = tnef("Form attached.", [("Admin form.pdf", b"%PDF-1.4 form")])
    generator = random.Random(1)
    for _ in range(400):
        damaged = bytearray(dat)
        for _ in range(generator.randint(1, 8)):
            damaged[generator.randrange(len(damaged))] = generator.randrange(256)
        if generator.random() < 0.3:
            damaged = damaged[: generator.randrange(len(damaged))]
        try:
            unpack_tnef(bytes(damaged))
        except ValueError:
            mail = parse_mail(with_attachments(("winmail.dat", "application/ms-tnef", damaged)))
            assert [a.filename for a in mail.attachments] == ["winmail.dat"]


def nested(levels: int, *, forwarded: bool = False) -> bytes:
    """A form `levels` multiparts deep, or forwarded as an attachment `levels` times."""
    inner = (
        b'Content-Type: application/pdf; name="form.pdf"\r\n'
        b'Content-Disposition: attachment; filename="form.pdf"\r\n\r\n%PDF-1.4 form\r\n'
    )
    for level in range(levels):
        boundary = b"b%d" % level
        wrapper = b"From: pm@a81001.nhs.uk\r\nSubject: Fw\r\n" if forwarded else b""
        enclosed = b"Content-Type: message/rfc822\r\n\r\n" if forwarded and level else b""
        inner = (
            wrapper + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n"
            b"--" + boundary + b"\r\n" + enclosed + inner + b"\r\n--" + boundary + b"--\r\n"
        )
    return b"From: pm@a81001.nhs.uk\r\nSubject: Form\r\nMIME-Version: 1.0\r\n" + inner


@pytest.mark.parametrize("forwarded", [False, True])
def test_a_form_nested_too_deep_is_not_read_and_a_person_is_told(forwarded: bool) -> None:
    shallow, deep = (
        parse_mail(nested(6, forwarded=forwarded)),
        parse_mail(nested(16, forwarded=forwarded)),
    )
    assert [a.filename for a in shallow.attachments] == ["form.pdf"] and not shallow.problems
    assert deep.attachments == []
    assert "parts nested more than 12 levels deep were not read" in deep.problems


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\pm\\Desktop\\form.pdf", "form.pdf"),
        ("  .hidden.pdf ", "hidden.pdf"),
        ("con.pdf", "_con.pdf"),
        ('bad<>:"|?*name.pdf', "bad_______name.pdf"),
        ("tab\there\x00.pdf", "tab_here_.pdf"),
        ("", "attachment-3.pdf"),
        (None, "attachment-3.pdf"),
        ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),
        # A right-to-left override shows "Invoice-\u202efdp.exe" as "Invoice-exe.pdf".
        ("Invoice-\u202efdp.exe", "Invoice-fdp.exe"),
        ("a\u2066b\u200bc\u00adpdf.pdf", "abcpdf.pdf"),
        ("c1\x85control\x9b.pdf", "c1_control_.pdf"),
        ("\u0645\u0644\u0641\u200c.pdf", "\u0645\u0644\u0641\u200c.pdf"),  # a joiner stays
    ],
)
def test_safe_filenames(given: str | None, safe: str) -> None:
    assert safe_filename(given, "application/pdf", 3) == safe


def test_same_names_are_made_unique() -> None:
    raw = with_attachments(
        ("form.pdf", "application/pdf", b"1"), ("form.pdf", "application/pdf", b"2")
    )
    assert [a.filename for a in parse_mail(raw).attachments] == ["form.pdf", "form-2.pdf"]


def test_charsets_fall_back_in_order() -> None:
    assert decode_bytes("café".encode("iso-8859-1"), "iso-8859-1") == ("café", None)
    assert decode_bytes("café".encode(), "x-unknown-thing")[0] == "café"
    assert "unknown charset" in decode_bytes(b"x", "x-unknown-thing")[1]
    assert decode_bytes("café".encode("cp1252"), None) == ("café", None)
    assert decode_bytes("café".encode("cp1252"), "us-ascii")[0] == "café"
    assert decode_bytes(b"ok", "iso-8859-8-i") == ("ok", None)


def test_garbage_never_raises() -> None:
    for raw in (
        b"",
        b"\x00\xff\xfe",
        b"Subject: x\r\n",
        b"\r\n\r\n\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b--',
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
        b"From: =?utf-8?q?=FF=FE?= <a@b.c>\r\nSubject: =?bogus?x?y?=\r\n\r\nhi",
        b"Content-Type: message/rfc822\r\n\r\nnot a message",
    ):
        mail = parse_mail(raw)
        assert isinstance(mail.text, str)


def test_deep_nesting_is_bounded() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for depth in range(1, 40):
        raw += (
            f'--b{depth - 1}\r\nContent-Type: multipart/mixed; boundary="b{depth}"\r\n\r\n'
        ).encode()
    raw += b"--b39\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
    mail = parse_mail(raw)
    assert "deep" not in mail.text


def test_header_facts_for_the_ledger() -> None:
    raw = (
        b"From: =?utf-8?q?Ren=C3=A9e?= <Renee@Example.NHS.uk>\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9?=\r\nMessage-ID: <abc@x>\r\n\r\nbody"
    )
    facts = header_facts(raw)
    assert facts.message_id == "<abc@x>"
    assert facts.from_address == "renee@example.nhs.uk"
    assert facts.subject == "Café"
    assert header_facts(b"\xff\xfe garbage").message_id is None


def delivery_report(recipient: str) -> bytes:
    return (
        b"From: MAILER-DAEMON@example.org\r\nSubject: Undeliverable\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; "
        + recipient.encode()
        + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n--r--\r\n"
    )


def test_a_bounce_forwarded_inside_a_request_does_not_make_it_a_bounce() -> None:
    """What was forwarded is the other message's report; this one asks for something."""
    raw = (
        b"From: Practice Manager <pm@nhs.net>\r\nSubject: Please set up Jane\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nPlease make Jane Doe a GPP admin; our "
        b"earlier email bounced (attached).\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\n"
        + delivery_report("old@nhs.net")
        + b"\r\n--m--\r\n"
    )
    mail = parse_mail(raw)
    assert not mail.delivery_status and bounce_reason(mail) is None
    assert "GPP admin" in mail.text
    report = parse_mail(delivery_report("pm@nhs.net"))  # the report itself still is one
    assert report.delivery_status and bounce_reason(report) is not None


HEADERS = (
    b"From: =?utf-8?q?Zo=C3=AB_Practice?= <zoe@a81001.nhs.uk>\r\n"
    b"To: pcse.portalenquiries@nhs.net\r\n"
    b"Subject: =?utf-8?b?UEwgYWRtaW4gZm9yIFpvw6s=?=\r\n"
    b"Received: from relay1.example (relay1.example [192.0.2.1])\r\n"
    b"\tby mx.nhs.net; Mon, 2 Feb 2026 09:30:00 +0000\r\n"
    b"Received: from relay2.example\r\n by relay1.example\r\n"
    b"X-Note: =?iso-8859-1?q?caf=E9?= and\x00 a NUL\r\n"
    b"X-Note: second\r\n"
    b"Message-ID: <headers@a81001.nhs.uk>\r\n"
    b"\r\n"
    b"Please set up Zoe.\r\n"
)


def test_header_values_read_as_decoded_text_whenever_asked_for() -> None:
    mail = parse_mail(HEADERS)
    assert mail.header("Subject") == mail.subject == "PL admin for Zoë"
    assert mail.headers["x-note"] == ["café and  a NUL", "second"]  # NUL: a space
    assert mail.headers["received"][0] == (
        "from relay1.example (relay1.example [192.0.2.1]) by mx.nhs.net; "
        "Mon, 2 Feb 2026 09:30:00 +0000"
    )
    assert mail.headers.get("from") == ["Zoë Practice <zoe@a81001.nhs.uk>"]
    assert "received" in mail.headers and "x-absent" not in mail.headers
    assert mail.headers.get("x-absent") is None and mail.header("x-absent") is None
    with pytest.raises(KeyError):
        mail.headers["x-absent"]
    assert list(mail.headers) == ["from", "to", "subject", "received", "x-note", "message-id"]
    assert len(mail.headers) == 6
    # Asked for again, or all at once, the same values.
    assert dict(mail.headers) == {name: mail.headers[name] for name in mail.headers}
    assert "caf\\xe9" not in repr(mail.headers) and "café" in repr(mail.headers)


def _with_rtf_body(data: bytes, rtf: bytes) -> bytes:
    """A winmail.dat with a rich-text body (PR_RTF_COMPRESSED, stored uncompressed)."""
    body = struct.pack("<IIII", len(rtf) + 12, len(rtf), 0x414C454D, 0) + rtf
    mapi = struct.pack("<I", 1) + struct.pack("<HHII", 0x0102, 0x1009, 1, len(body))
    mapi += body + b"\0" * (-len(body) % 4)
    return data + struct.pack("<BHHI", 1, 0x9003, 0x0006, len(mapi)) + mapi + b"\0\0"


def test_a_winmail_dat_whose_body_is_only_rich_text_says_so() -> None:
    dat = _with_rtf_body(tnef("", [("form.pdf", b"%PDF-1.4 x")]), b"{\\rtf1 NOT Jane}")
    mail = parse_mail(with_attachments(("winmail.dat", "application/ms-tnef", dat), body=""))
    assert [a.filename for a in mail.attachments] == ["form.pdf"]
    assert mail.unread_parts == ["winmail.dat: its rich-text (RTF) body was not read"]
    # Beside a text body, the rich text is the same body again.
    both = _with_rtf_body(tnef("Approved", [("form.pdf", b"%PDF-1.4 x")]), b"{\\rtf1 x}")
    read = parse_mail(with_attachments(("winmail.dat", "application/ms-tnef", both)))
    assert read.unread_parts == [] and "Approved" in read.text
