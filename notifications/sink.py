"""A small SMTP server that keeps what it receives: for `pcse demo`, local use and the tests.

It captures every message in memory and, when given a folder, files each one into a
Maildir there. For tests it can be told to answer the next N messages with a given
4xx or 5xx code, or to refuse everything for a while, and it can require a password
or an XOAUTH2 token. Run it on its own with `python -m notifications.sink`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import mailbox
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str | None = None
    # The client's end of the connection it came over: one per SMTP session.
    peer: tuple[str, int] | None = None

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, _class=EmailMessage, policy=default)


@dataclass
class _Fault:
    code: int
    text: str
    remaining: int
    stage: str  # "mail", "rcpt" or "data"


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    faults: list[_Fault] = field(default_factory=list)
    refuse_until: float = 0.0
    # An outage that starts at the next transaction (a test cannot know when that will be).
    pending_outage: float = 0.0
    refused: int = 0


def open_maildir(folder: Path) -> mailbox.Maildir:
    """A Maildir at `folder`, its new, cur and tmp made where missing: mailbox.Maildir
    makes them only when the folder itself is new, so an existing empty folder (made by
    hand, or by an earlier run) would refuse every message."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for part in ("tmp", "new", "cur"):  # private, as mailbox.Maildir makes them
        (folder / part).mkdir(mode=0o700, exist_ok=True)
    return mailbox.Maildir(folder, create=False)


class SinkHandler:
    """The aiosmtpd handler: runs in the server's thread; the lock guards shared state."""

    def __init__(
        self,
        maildir: Path | None = None,
        tokens: set[str] | None = None,
        keep: bool = True,
        pipelining: bool = True,
    ) -> None:
        self.keep = keep
        self.pipelining = pipelining
        self.state = _State()
        self.lock = threading.Condition()
        self.maildir = open_maildir(maildir) if maildir else None
        self.tokens = tokens or set()

    def _fault(self, stage: str) -> str | None:
        with self.lock:
            if self.state.pending_outage:
                self.state.refuse_until = time.monotonic() + self.state.pending_outage
                self.state.pending_outage = 0.0
            if time.monotonic() < self.state.refuse_until:
                self.state.refused += 1
                return "421 4.3.2 Service not available, try again later"
            for fault in self.state.faults:
                if fault.stage == stage and fault.remaining > 0:
                    fault.remaining -= 1
                    self.state.refused += 1
                    return f"{fault.code} {fault.text}"
        return None

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """aiosmtpd reads each command from its stream in turn, so it can take a pipelined
        group; saying so lets clients send as they would to NHSmail (RFC 2920)."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refused = self._fault("mail")
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refused = self._fault("rcpt")
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refused = self._fault("data")
        if refused:
            return refused
        data = envelope.original_content or b""
        login = getattr(session.auth_data, "login", None) or session.auth_data
        item = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            login=login.decode() if isinstance(login, bytes) else login,
            peer=(str(session.peer[0]), int(session.peer[1])) if session.peer else None,
        )
        if self.maildir is not None:
            self.maildir.add(data)
        with self.lock:
            self.state.accepted += 1
            if self.keep:
                self.state.received.append(item)
            self.lock.notify_all()
        return "250 2.0.0 Message accepted"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 (RFC 7628 style): accept a bearer token from the configured set."""
        if len(args) < 2:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=False)
        else:
            blob = base64.b64decode(args[1])
        parts = dict(
            p.split("=", 1) for p in blob.decode("utf-8", "replace").split("\x01") if "=" in p
        )
        token = parts.get("auth", "").removeprefix("Bearer ")
        if token and token in self.tokens:
            return AuthResult(success=True, auth_data=parts.get("user"))
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class SmtpSink:
    """An aiosmtpd Controller on 127.0.0.1 with the capturing handler.

    `users` ({login: password}) or `tokens` (XOAUTH2 bearer tokens) make sign-in
    compulsory; `tls_context` offers STARTTLS, `ssl_context` makes the whole connection
    TLS (sign-in needs one or the other unless `auth_require_tls` is False). With
    `keep=False` messages are only counted; with `pipelining=False` it does not offer
    PIPELINING, and clients wait for each answer.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        maildir: str | Path | None = None,
        users: dict[str, str] | None = None,
        tokens: set[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        auth_require_tls: bool = True,
        keep: bool = True,
        pipelining: bool = True,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.handler = SinkHandler(Path(maildir) if maildir else None, tokens, keep, pipelining)
        self.users = users or {}
        kwargs: dict[str, Any] = {
            "hostname": host,
            "port": self.port,
            "server_hostname": "sink.localhost",
            "ident": "PCSE SMTP sink",
        }
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if ssl_context is not None:
            kwargs["ssl_context"] = ssl_context
        if users or tokens:
            kwargs.update(
                auth_required=True,
                auth_require_tls=auth_require_tls,
                authenticator=self._authenticate,
            )
        self._kwargs = kwargs
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    # ------------------------------------------------------------ running

    def start(self) -> SmtpSink:
        if self._controller is None:
            self._controller = Controller(self.handler, **self._kwargs)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ what arrived

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.state.received)

    @property
    def accepted(self) -> int:
        """How many messages were accepted (kept in memory or not)."""
        with self.handler.lock:
            return self.handler.state.accepted

    @property
    def refused(self) -> int:
        """How many commands were answered with an injected failure."""
        with self.handler.lock:
            return self.handler.state.refused

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.state.received.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` messages have arrived (or the timeout passes)."""
        end = time.monotonic() + timeout
        with self.handler.lock:
            while len(self.handler.state.received) < count:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.handler.lock.wait(left)
            return list(self.handler.state.received)

    # ------------------------------------------------------------ misbehaving on purpose

    def fail_next(
        self, count: int, code: int = 451, text: str | None = None, stage: str = "data"
    ) -> None:
        """Answer the next `count` messages with `code` at RCPT or at the end of DATA."""
        if stage not in ("mail", "rcpt", "data") or not 400 <= code < 600:
            raise ValueError("stage must be mail, rcpt or data and code a 4xx or 5xx")
        text = text or ("4.3.0 Try again later" if code < 500 else "5.7.1 Message rejected")
        with self.handler.lock:
            self.handler.state.faults.append(_Fault(code, text, count, stage))

    def refuse_for(self, seconds: float, *, from_first: bool = False) -> None:
        """Answer every transaction with 421 for `seconds`: from now, or, `from_first`,
        from the next transaction on (so a slow client still meets the outage)."""
        with self.handler.lock:
            if from_first:
                self.handler.state.pending_outage = seconds
            else:
                self.handler.state.refuse_until = time.monotonic() + seconds

    def reset_faults(self) -> None:
        with self.handler.lock:
            self.handler.state.faults.clear()
            self.handler.state.refuse_until = 0.0
            self.handler.state.pending_outage = 0.0


def main(argv: list[str] | None = None) -> None:
    """Run a sink until interrupted, filing messages into a Maildir."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", default="var/sent", help="folder to file messages in")
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="do not offer PIPELINING: clients wait for each answer (to compare)",
    )
    parser.add_argument(
        "--discard",
        action="store_true",
        help="only count messages (no Maildir, nothing kept): for benchmarks",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    maildir = None if args.discard else args.maildir
    with SmtpSink(
        args.host, args.port, maildir=maildir, keep=False, pipelining=not args.no_pipelining
    ) as sink:
        where = f"filing into {maildir}" if maildir else "counting only"
        print(f"SMTP sink listening on {sink.host}:{sink.port}, {where}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print(f"{sink.accepted} message(s) received", flush=True)


if __name__ == "__main__":
    main()
