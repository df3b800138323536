"""Messages built to make a parser slow: padded and repeated header values, long runs of the
characters parsers treat specially, deep MIME nesting, thousands of headers and parts, and
bodies aimed at the patterns that read requests.

`hostile_messages(size)` gives each kind at about `size` bytes of hostile content, so that
tests and bench/hostile.py can check that reading time grows with the size and no faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

HEAD = (
    b"From: Practice Manager <manager@example.nhs.uk>\r\n"
    b"To: pcse.portalenquiries@nhs.net\r\n"
    b"Date: Mon, 02 Feb 2026 09:30:00 +0000\r\n"
)
SUBJECT = b"Subject: hostile\r\n"
MESSAGE_ID = b"Message-ID: <hostile@example.nhs.uk>\r\n"


def message(
    headers: bytes = b"",
    body: bytes = b"Please set up an admin.\r\n",
    *,
    subject: bool = True,
    message_id: bool = True,
) -> bytes:
    return (
        HEAD
        + (SUBJECT if subject else b"")
        + (MESSAGE_ID if message_id else b"")
        + headers
        + b"\r\n"
        + body
    )


def header(name: bytes, value: bytes) -> bytes:
    return name + b": " + value + b"\r\n"


def nested(levels: int, *, closed: bool = True) -> bytes:
    """Multiparts inside multiparts, `levels` deep, a text part at the bottom."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels))) if closed else b""
    return (
        HEAD
        + SUBJECT
        + MESSAGE_ID
        + b"MIME-Version: 1.0\r\n"
        + opening
        + b"Content-Type: text/plain\r\n\r\nPlease set up an admin.\r\n"
        + closing
    )


def nested_rfc822(levels: int) -> bytes:
    """Messages forwarded inside messages, `levels` deep, with no boundaries at all."""
    return (
        HEAD
        + SUBJECT
        + MESSAGE_ID
        + b"Content-Type: message/rfc822\r\n\r\n" * levels
        + b"Subject: inside\r\n\r\nPlease set up an admin.\r\n"
    )


def many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count)
    )
    return message(
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="p"\r\n',
        parts + b"--p--\r\n",
    )


def _repeat(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def _text(body: str) -> bytes:
    return message(b"Content-Type: text/plain; charset=utf-8\r\n", body.encode() + b"\r\n")


def _subject_run(unit: bytes, size: int) -> bytes:
    return message(header(b"Subject", _repeat(unit, size)), subject=False)


def _body_run(unit: bytes, size: int) -> bytes:
    return _text(_repeat(unit, size).decode())


Builder = Callable[[int], bytes]

# Each takes the size of the hostile part in bytes.
BUILDERS: dict[str, Builder] = {
    "subject-whitespace": lambda n: message(header(b"Subject", _repeat(b" ", n)), subject=False),
    "subject-padded": lambda n: message(
        header(b"Subject", b"a" + _repeat(b" ", n) + b"b"), subject=False
    ),
    "subject-encoded-words": lambda n: message(
        header(b"Subject", _repeat(b"=?utf-8?q?caf=C3=A9?= ", n)), subject=False
    ),
    "subject-unclosed-encoded-words": lambda n: message(
        header(b"Subject", _repeat(b"=?a?q?x", n)), subject=False
    ),
    "subject-folded": lambda n: message(
        header(b"Subject", b"a" + _repeat(b"\r\n b", n)), subject=False
    ),
    "content-type-padded": lambda n: message(
        header(b"Content-Type", b"text/plain; charset=" + _repeat(b" ", n) + b"utf-8")
    ),
    "content-type-params": lambda n: message(
        header(b"Content-Type", b"text/plain" + _repeat(b"; a=b", n))
    ),
    "content-type-rfc2231": lambda n: message(
        header(
            b"Content-Type",
            b"text/plain" + b"".join(b"; name*%d*=a" % i for i in range(max(1, n // 14))),
        )
    ),
    "multipart-params": lambda n: message(
        header(b"Content-Type", b"multipart/mixed" + _repeat(b"; a=b", n) + b'; boundary="x"'),
        b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n",
    ),
    "disposition-padded": lambda n: message(
        header(b"Content-Disposition", b"attachment; filename=" + _repeat(b" ", n) + b"x.pdf")
    ),
    "message-id-whitespace": lambda n: message(
        header(b"Message-ID", b"<" + _repeat(b" ", n) + b">"), message_id=False
    ),
    "in-reply-to-angles": lambda n: message(header(b"In-Reply-To", _repeat(b"<", n))),
    "references-many": lambda n: message(header(b"References", _repeat(b"<a@b> ", n))),
    "references-angles": lambda n: message(header(b"References", _repeat(b"<", n))),
    "references-whitespace": lambda n: message(header(b"References", _repeat(b" ", n))),
    "date-junk": lambda n: message(header(b"X-Date", b"x") + header(b"Date", _repeat(b"1 ", n))),
    **{
        f"subject-run-{name}": partial(_subject_run, unit)
        for name, unit in (("lt", b"<"), ("quote", b'"'), ("at", b"@"), ("encoded", b"=?"))
    },
    **{
        f"body-run-{name}": partial(_body_run, unit)
        for name, unit in (
            ("lt", b"<"),
            ("quote", b'"'),
            ("at", b"@"),
            ("encoded", b"=?"),
            ("letters", b"a"),
            ("dots", b"a."),
        )
    },
    "many-headers": lambda n: message(b"".join(b"X-H%d: v\r\n" % i for i in range(n // 10))),
    "many-parts": lambda n: many_parts(max(1, n // 40)),
    "nested-multipart": lambda n: nested(max(1, n // 60)),
    "nested-unclosed": lambda n: nested(max(1, n // 60), closed=False),
    "nested-rfc822": lambda n: nested_rfc822(max(1, n // 32)),
    # Bodies aimed at the patterns that read a request written in an email.
    "body-sign-off-padded": lambda n: _text("Hello\n\nRegards" + " " * n + "x"),
    "body-label-padded": lambda n: _text("Name: a" + " " * n + "b"),
    "body-blank-lines": lambda n: _text("\n \n" * (n // 3) + "x"),
    "body-dash-lines": lambda n: _text("--\n" * (n // 3)),
    "body-code-padded": lambda n: _text("practice code" + " " * n + "!"),
    "body-html-angles": lambda n: message(
        b"Content-Type: text/html\r\n", _repeat(b"<a", n) + b"\r\n"
    ),
}


def hostile_messages(size: int) -> dict[str, bytes]:
    """Every kind, with about `size` bytes of hostile content each."""
    return {name: build(size) for name, build in BUILDERS.items()}


def nesting_messages(levels: tuple[int, ...] = (10, 100, 1000, 5000)) -> dict[str, bytes]:
    return {
        **{f"nested-{n}": nested(n) for n in levels},
        **{f"nested-rfc822-{n}": nested_rfc822(n) for n in levels},
    }


def reading_seconds(raw: bytes) -> tuple[float, float]:
    """(CPU seconds parse_mail takes, CPU seconds the request reader then takes on its
    text), on this thread's clock: what a message costs a worker, whatever else the
    machine is doing (the time budget of intake/budget.py counts the same clock)."""
    from forms import read_email_request
    from intake.mailparse import parse_mail

    started = time.thread_time()
    mail = parse_mail(raw)
    parsed = time.thread_time()
    read_email_request(mail.subject, mail.text, "manager@example.nhs.uk")
    return parsed - started, time.thread_time() - parsed
