"""One SMTP connection for a batch: TLS as configured, sign-in with a password or XOAUTH2."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage

from service.config import SmtpConfig
from workflow.errors import PcseError

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
        raise SmtpSetupError(
            '[smtp] auth is "oauth2" but no OAuth2 token provider is configured.'
        )
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
            config.host, config.port, local_hostname=local_name,
            timeout=config.timeout_seconds, context=context,
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
            conn.auth("XOAUTH2", xoauth2_response(user, token_provider()),
                      initial_response_ok=True)
    except BaseException:
        close(conn)
        raise
    return conn


def send(conn: smtplib.SMTP, msg: EmailMessage, from_address: str, to_address: str) -> None:
    """Hand one message to the server; returns only when the server accepted it."""
    refused = conn.send_message(msg, from_addr=from_address, to_addrs=[to_address])
    if refused:  # one recipient: smtplib raises when it is refused, but be sure
        code, answer = refused[to_address]
        raise smtplib.SMTPRecipientsRefused({to_address: (code, answer)})


def close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
