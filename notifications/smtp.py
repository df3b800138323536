"""One SMTP connection for a batch: TLS as configured, sign-in with a password or XOAUTH2."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Callable

from core.errors import PcseError
from notifications.headers import is_dot_atom_address
from notifications.settings import SmtpConfig

TokenProvider = Callable[[], str]


class SmtpSetupError(PcseError):
    """The [smtp] settings cannot be used as they are; the message says what to fix."""


def check_settings(config: SmtpConfig, token_provider: TokenProvider | None) -> None:
    """Refuse, before anything is claimed, settings that can never sign in."""
    if config.auth == "password" and not config.secret():
        raise SmtpSetupError(
            '[smtp] auth is "password" but no password is set (password or password_env).'
        )
    if config.auth == "oauth2" and token_provider is None:
        raise SmtpSetupError('[smtp] auth is "oauth2" but no OAuth2 token provider is configured.')
    if config.ssl and config.starttls:
        raise SmtpSetupError("[smtp] ssl and starttls cannot both be on; choose one.")


def xoauth2_response(user: str, token: str) -> Callable[..., str]:
    """The SASL XOAUTH2 initial response; an empty answer to any error challenge."""
    answers = iter([f"user={user}\x01auth=Bearer {token}\x01\x01"])

    def respond(challenge: bytes | None = None) -> str:
        return next(answers, "")

    return respond


def connect(config: SmtpConfig, token_provider: TokenProvider | None) -> smtplib.SMTP:
    """An open, signed-in connection. Raises OSError / smtplib errors when that fails."""
    context = ssl.create_default_context()
    # The host's own name, not a DNS lookup that may hang.
    local_name = socket.gethostname() or "localhost"
    if config.ssl:
        conn: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host,
            config.port,
            local_hostname=local_name,
            timeout=config.timeout_seconds,
            context=context,
        )
    else:
        conn = smtplib.SMTP(
            config.host, config.port, local_hostname=local_name, timeout=config.timeout_seconds
        )
    try:
        conn.ehlo()
        if config.starttls:
            conn.starttls(context=context)
            conn.ehlo()
        user = config.username or config.from_address
        if config.auth == "password":
            conn.login(user, config.secret() or "")
        elif config.auth == "oauth2" and token_provider is not None:
            conn.auth("XOAUTH2", xoauth2_response(user, token_provider()), initial_response_ok=True)
    except BaseException:
        close(conn)
        raise
    # The end-of-data line goes in a write of its own (see hand_over): without this,
    # Nagle's algorithm would hold it back until the server acknowledged the message.
    with contextlib.suppress(OSError, AttributeError):
        assert conn.sock is not None  # connected above
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _refused(conn: smtplib.SMTP, code: int) -> None:
    """After a refusal: a 421 means the server is closing; otherwise reset for the next
    one. A reset that is not answered 250 closes the connection: the next message's MAIL
    would be refused for the transaction left open ("503 nested MAIL"), and failed for it."""
    if code == 421:
        conn.close()
        return
    try:
        reset, _answer = conn.rset()
    except (OSError, smtplib.SMTPException):
        reset = 0
    if reset != 250:
        conn.close()


def path(address: str) -> str:
    """The address as MAIL FROM and RCPT TO carry it. smtplib.quoteaddr parses it with the
    email package first; a dot-atom address it would give back as it is, in brackets."""
    return f"<{address}>" if is_dot_atom_address(address) else smtplib.quoteaddr(address)


def dot_stuffed(data: bytes) -> bytes:
    """Every line that starts with a dot given a second one (RFC 5321 4.5.2)."""
    stuffed = data.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _line(command: str) -> str:
    """One command line; refuses a line break in it, as smtplib's putcmd does."""
    if "\r" in command or "\n" in command:
        raise ValueError(f"an SMTP command with a line break in it: {command!r}")
    return f"{command}\r\n"


def _refusal(code: int, answer: bytes, step: str, from_address: str, to_address: str) -> Exception:
    if step == "MAIL":
        return smtplib.SMTPSenderRefused(code, answer, from_address)
    if step == "RCPT":
        return smtplib.SMTPRecipientsRefused({to_address: (code, answer)})
    return smtplib.SMTPDataError(code, answer)


def _after_refusal(conn: smtplib.SMTP, code: int, replies_left: int) -> None:
    """After a refusal: a pipelined group's later answers are read too (an RFC 2920 client
    checks every one), then the transaction is reset for the next message, or the
    connection closed after a 421. A DATA the server took all the same is cut off by
    closing, not ended with a dot: no empty message leaves. Whatever goes wrong while
    reading the rest closes the connection too; the refusal is still what is reported."""
    if code != 421:
        try:
            for _ in range(replies_left):
                later, _answer = conn.getreply()
                if later in (354, 421):
                    conn.close()
                    return
        except (OSError, smtplib.SMTPException):
            conn.close()
            return
    _refused(conn, code)


def _open_transaction(conn: smtplib.SMTP, from_address: str, to_address: str) -> None:
    """MAIL, RCPT and DATA, up to the server's 354; raises the first refusal.

    Where the server offers PIPELINING (RFC 2920: NHSmail's does) the three go in one write
    and their answers are read together, so the message waits for one round trip, not three.
    """
    steps = [
        ("MAIL", _line(f"MAIL FROM:{path(from_address)}"), (250,)),
        ("RCPT", _line(f"RCPT TO:{path(to_address)}"), (250, 251)),
        ("DATA", _line("DATA"), (354,)),
    ]
    pipelined = conn.has_extn("pipelining")
    if pipelined:
        conn.send("".join(line for _, line, _ in steps))
    for index, (step, line, accepted) in enumerate(steps):
        if not pipelined:
            conn.send(line)
        code, answer = conn.getreply()
        if code not in accepted:
            _after_refusal(conn, code, len(steps) - index - 1 if pipelined else 0)
            raise _refusal(code, answer, step, from_address, to_address)


def hand_over(
    conn: smtplib.SMTP,
    data: bytes,
    from_address: str,
    to_address: str,
    *,
    before_end: Callable[[], None] | None = None,
) -> None:
    """MAIL, RCPT and DATA, then the message itself; the server's verdict on the message is
    left unread for `verdict`, so the caller can do its own work while the server does its.

    `data` is the whole message, 7-bit with CRLF line endings (see mime.build_message); the
    addresses are ASCII (headers.clean_address accepts no other).
    """
    # smtplib's mail() and rcpt() send the same commands, after parsing each address.
    _open_transaction(conn, from_address, to_address)
    # Dot-stuffing, then the end-of-data line.
    stuffed = dot_stuffed(data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    if before_end is None:
        conn.send(stuffed + b".\r\n")
        return
    conn.send(stuffed)
    try:
        before_end()
    except BaseException:
        # Without the end-of-data line the server drops the message: close, do not QUIT
        # (a QUIT now would be read as more of the message).
        conn.close()
        raise
    conn.send(b".\r\n")


def verdict(conn: smtplib.SMTP) -> None:
    """Read the server's answer to the message handed over; raises unless it was accepted
    (250: RFC 5321's only acceptance; a 221 "closing", say, is not one)."""
    code, answer = conn.getreply()
    if code != 250:
        if code == 421:
            conn.close()
        raise smtplib.SMTPDataError(code, answer)


def close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
