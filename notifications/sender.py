"""Send what the outbox holds: claim due rows, deliver them over one SMTP connection, record.

A row is recorded as sent in the moment before the server is given the end of the
message, so a sender killed at any point never sends it again; should the server then
refuse it, the row is turned back, and should no answer come at all (the connection lost
or timed out), it stays sent, flagged unconfirmed for a person. Temporary failures (4xx
answers, refused or lost connections, our sender address refused) are retried with
exponential backoff; permanent ones (5xx) are marked failed with the server's answer for
a caseworker to see.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from core.clock import Clock, SystemClock
from core.db import Database
from core.redact import without_addresses
from core.timeutil import as_utc
from core.workers import worker_id
from notifications import claims
from notifications import smtp as transport
from notifications.mime import Outgoing, UnsendableMessage, build_message
from notifications.settings import SMTP_STEPS_PER_MESSAGE
from notifications.settings import SenderConfig as Config

log = logging.getLogger(__name__)

# Backoff after the n-th failure: 1, 2, 4 … minutes, at most an hour between tries;
# after MAX_ATTEMPTS (about a day) the row is failed for a caseworker.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
MAX_ATTEMPTS = 30
# How long a claim protects rows from other senders. A sender stops starting new
# messages well before its lease ends, so no row is sent under an expired claim.
LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class SendReport:
    sent: int
    failed: int
    pending: int
    # Why sending stopped early (server down, sign-in refused), for the operator.
    error: str | None = None


@dataclass(frozen=True)
class _Verdict:
    action: str  # "retry", "failed" or "stop" (retry, and stop using the connection)
    answer: str


def backoff(failures: int) -> timedelta:
    """The wait after the `failures`-th failed attempt."""
    return min(BACKOFF_BASE * (2 ** max(failures - 1, 0)), BACKOFF_CAP)


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def judge(exc: Exception) -> _Verdict:
    """What an SMTP exception means for the row being sent."""
    answer: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, answer = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, answer = exc.smtp_code, exc.smtp_error
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        return _Verdict("failed", f"The server cannot take this message: {exc}")
    else:  # SMTPServerDisconnected, timeouts, refused connections, TLS errors
        return _Verdict("stop", f"Connection to the mail server failed: {exc}")
    text = f"{code} {_text(answer)}".strip()
    if code == 421:
        return _Verdict("stop", text)
    if isinstance(exc, smtplib.SMTPSenderRefused) and 500 <= code < 600:
        # Refused at MAIL FROM: about our own account (Exchange Online's SendAsDenied, a
        # submission quota, a sender it will not relay for), not this message. Failing
        # each row would fail the whole queue for good in one run; the run stops instead,
        # with the reason for the operator, and the rows back off as while the server is
        # down (failed after MAX_ATTEMPTS, about a day).
        return _Verdict("stop", f"The mail server refused our sender address: {text}")
    if 500 <= code < 600:
        return _Verdict("failed", text)
    return _Verdict("retry", text)


def answered(exc: Exception, conn: smtplib.SMTP) -> bool:
    """Did the server give a readable answer, the one `exc` carries? smtplib closes the
    connection and raises when no answer comes (a timeout, a dropped connection) and when a
    line is too long to be one (its own "500 Line too long."); a reply with no number it
    reads as code -1. After the end of a message none of these says the server did not
    take it."""
    if not isinstance(exc, smtplib.SMTPResponseException):
        return False
    if exc.smtp_code == 421:  # the server said so, and then closed (verdict closes too)
        return True
    return conn.sock is not None and 400 <= exc.smtp_code < 600


class LostClaim(Exception):
    """The row was taken over by another sender (this one outlived its lease)."""


class KeptConnection:
    """The SMTP connection a sender that runs again and again keeps between its runs.

    `pcse run` sends each time a reply is committed; without this, every run would open a
    connection, negotiate TLS and sign in again (with OAuth2, fetch or check a token) for
    a message or two. A connection is kept only from a run that ended with no fault and no
    refusal from the server; it is used again only if it was idle for less than
    `idle_seconds` and opened less than `max_age_seconds` ago (under the five minutes
    before expiry at which OAuth2 tokens are renewed, so no connection outlives the token
    it signed in with), and only after a NOOP answered 250 within `check_seconds`;
    otherwise it is closed and a new one opened, before any message is started on it. One
    sender loop holds one; it is not shared between threads.
    """

    def __init__(
        self,
        idle_seconds: float = 30.0,
        max_age_seconds: float = 240.0,
        check_seconds: float = 5.0,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.check_seconds = check_seconds
        self.conn: smtplib.SMTP | None = None
        self.kept_at = 0.0
        self.opened_at = 0.0
        self.reused = 0

    def take(self) -> tuple[smtplib.SMTP, float] | None:
        """The kept connection and when it was opened, if it is still fit to use."""
        conn, self.conn = self.conn, None
        if conn is None:
            return None
        now = time.monotonic()
        if now - self.kept_at > self.idle_seconds or now - self.opened_at > self.max_age_seconds:
            _close_quickly(conn)
            return None
        if not _answers_noop(conn, self.check_seconds):
            conn.close()
            return None
        self.reused += 1
        return conn, self.opened_at

    def keep(self, conn: smtplib.SMTP, opened_at: float) -> None:
        self.conn, self.kept_at, self.opened_at = conn, time.monotonic(), opened_at

    def close(self) -> None:
        if self.conn is not None:
            _close_quickly(self.conn)
            self.conn = None


def _answers_noop(conn: smtplib.SMTP, within: float) -> bool:
    """Does the server still answer? A peer gone without a word would otherwise hold the
    run for the whole SMTP timeout."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        sock.settimeout(within)
        code, _ = conn.noop()
        sock.settimeout(conn.timeout)
    except (OSError, smtplib.SMTPException):  # closed or silent meanwhile
        return False
    return code == 250


def _close_quickly(conn: smtplib.SMTP) -> None:
    """QUIT, waiting two seconds at most for the answer (the service may be stopping)."""
    if conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.settimeout(2.0)
    transport.close(conn)


class _Run:
    """One call of send_pending: its counters, its claims, its connection."""

    def __init__(
        self,
        db: Database,
        config: Config,
        token_provider,
        clock: Clock,
        kept: KeptConnection | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.token_provider = token_provider
        self.clock = clock
        self.worker = worker_id()
        self.sent = 0
        self.failed = 0
        self.error: str | None = None
        self.conn: smtplib.SMTP | None = None
        self.kept = kept
        self.opened_at = 0.0  # when self.conn was opened (monotonic)
        self.refusals = 0  # answers other than acceptance: the connection is then not kept
        # Handed over and accepted, its claim not yet cleared: that is done by the next
        # hand-over's statement, so each message costs one commit.
        self.accepted: int | None = None
        self.marks: Connection | None = None  # kept for the run: one commit per message

    def now(self) -> datetime:
        return as_utc(self.clock.now())

    def deadline(self) -> float:
        """Monotonic time after which no new message of this claim may be started."""
        # A timeout for each step of the last message it may start (notifications.settings).
        margin = SMTP_STEPS_PER_MESSAGE * self.config.smtp.timeout_seconds + 30
        return time.monotonic() + LEASE.total_seconds() - margin

    def retry_later(self, row: Outgoing, answer: str) -> None:
        failures = row.attempts + 1
        if failures >= MAX_ATTEMPTS:
            self.fail(row, f"Gave up after {failures} attempts. Last answer: {answer}")
            return
        when = self.now() + backoff(failures)
        claims.mark_retry(self.db, row.id, worker=self.worker, error=answer, next_attempt_at=when)
        log.info(
            "outbox %s: will retry at %s: %s", row.id, when.isoformat(), without_addresses(answer)
        )

    def accept(self, row: Outgoing) -> None:
        """The server took the message (already recorded as sent): confirm it soon."""
        self.record_accepted()  # none in deliver(): a hand-over since confirmed it
        self.accepted = row.id

    def handing(self, row: Outgoing) -> None:
        """Record `row` as sent before its end-of-data line goes out; raises if not ours."""
        confirm, self.accepted = self.accepted, None
        if self.marks is None:
            self.marks = claims.keep_for_hand_overs(self.db)
        ours, confirmed = claims.mark_handed_over(
            self.marks, row.id, worker=self.worker, now=self.now(), confirm=confirm
        )
        if confirmed:
            self.sent += 1
        elif confirm is not None:
            log.error("outbox %s was sent but had lost its claim to another sender", confirm)
        if not ours:
            raise LostClaim(f"outbox {row.id} was taken by another sender; not sent")

    def record_accepted(self) -> None:
        if self.accepted is None:
            return
        row_id, self.accepted = self.accepted, None
        if claims.mark_sent(self.db, [row_id], worker=self.worker, now=self.now()):
            self.sent += 1
        else:
            log.error("outbox %s was sent but had lost its claim to another sender", row_id)

    def fail(self, row: Outgoing, answer: str) -> None:
        if claims.mark_failed(self.db, row.id, worker=self.worker, error=answer):
            self.failed += 1
        log.warning("outbox %s failed: %s", row.id, without_addresses(answer))

    def ensure_connection(self, batch: list[Outgoing]) -> bool:
        if self.conn is not None:
            return True
        if self.kept is not None:
            taken = self.kept.take()
            if taken is not None:
                self.conn, self.opened_at = taken
                return True
        try:
            self.conn = transport.connect(self.config.smtp, self.token_provider)
            self.opened_at = time.monotonic()
            return True
        except Exception as exc:  # refused, TLS, sign-in or token: all mean "not now"
            if isinstance(exc, smtplib.SMTPResponseException):
                detail = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            else:
                detail = str(exc) or type(exc).__name__
            smtp = self.config.smtp
            self.error = (
                f"Could not connect to or sign in at the mail server "
                f"{smtp.host}:{smtp.port}: {detail}"
            )
            log.error("%s", without_addresses(self.error))
            for row in batch:
                self.retry_later(row, self.error)
            return False

    def drop_connection(self) -> None:
        if self.conn is not None:
            transport.close(self.conn)
            self.conn = None

    def close(self, *, ended_well: bool = False) -> None:
        """The end of the run. A run that ended well leaves its connection between two
        messages (one lost or closed on a fault is None by now), to be kept for the next
        run if there is to be one; after an exception it may be mid-message, and after a
        refusal the server may be refusing this session (a limit of messages for one
        connection, say): closed, and the next run opens a new one."""
        if ended_well and not self.refusals and self.kept is not None and self.conn is not None:
            self.kept.keep(self.conn, self.opened_at)
            self.conn = None
        self.drop_connection()
        if self.marks is not None:
            self.marks.close()
            self.marks = None

    def deliver(self, batch: list[Outgoing]) -> bool:
        """Send a claimed batch; False when the connection failed and the run should stop.

        Each message is built while the server is still working on the previous one, whose
        answer is read only then: the two sides work at the same time, one step apart.
        """
        deadline = self.deadline()
        if time.monotonic() > deadline:  # settings validation keeps the margin inside the lease
            self.error = "The SMTP timeout leaves no time to send within a claim's lease."
            return self.stop(None, batch, keep_going=False)
        if not self.ensure_connection(batch):
            return False
        waiting: Outgoing | None = None  # handed over; the server's answer not read yet
        for index, row in enumerate(batch):
            try:
                if time.monotonic() > deadline:
                    return self.stop(waiting, batch[index:], keep_going=True)
                data = self.build(row)
                if waiting is not None:
                    settled, waiting = self.settle(waiting), None
                    if not settled:
                        return self.stop(None, batch[index:], keep_going=False)
                if data is None:
                    continue
                handed = self.hand_over(row, data)
                if handed == "gone":
                    return self.stop(None, batch[index + 1 :], keep_going=False)
                if handed == "waiting":
                    waiting = row
            except BaseException:
                # Record what was accepted, and give back what was not tried yet.
                self.stop(None, batch[index + 1 :], keep_going=False)
                raise
        if waiting is not None and not self.settle(waiting):
            return self.stop(None, [], keep_going=False)
        return self.stop(None, [], keep_going=True)

    def stop(self, waiting: Outgoing | None, untried: list[Outgoing], *, keep_going: bool) -> bool:
        """End a batch: read the last answer, record what was accepted, give back the rest."""
        if waiting is not None and not self.settle(waiting):
            keep_going = False
        self.record_accepted()
        claims.release(self.db, [r.id for r in untried], worker=self.worker)
        return keep_going

    def build(self, row: Outgoing) -> bytes | None:
        """The message as sent, or None when it cannot be built (the row is then failed)."""
        smtp = self.config.smtp
        try:
            return build_message(
                row, from_address=smtp.from_address, from_name=smtp.from_name, now=self.now()
            )
        except UnsendableMessage as exc:
            self.fail(row, str(exc))
        except Exception as exc:  # the same row would fail the same way every time
            log.error(
                "outbox %s could not be built: %s",
                row.id,
                without_addresses(f"{type(exc).__name__}: {exc}"),
            )
            self.fail(row, f"Not sent: the message could not be built ({exc}).")
        return None

    def hand_over(self, row: Outgoing, data: bytes) -> str:
        """Start one message: "waiting" for the server's answer, "refused" (recorded), or
        "gone" when the connection is lost."""
        assert self.conn is not None
        try:
            transport.hand_over(
                self.conn,
                data,
                self.config.smtp.from_address,
                row.to_address,
                before_end=lambda: self.handing(row),
            )
            return "waiting"
        except LostClaim as exc:  # the connection was closed with the message unfinished
            log.error("%s", exc)
            self.conn = None
            return "gone"
        except SQLAlchemyError:
            # The database failed, not the mail server: the message was left unfinished
            # (the connection is closed) and its row stays claimed; the next run takes it
            # back at once and sends it, with no backoff and no failed try counted.
            self.conn = None
            raise
        except Exception as exc:  # smtplib, socket, TLS or anything else: judged here
            return "refused" if self.refused(row, exc) else "gone"

    def settle(self, row: Outgoing) -> bool:
        """Read the server's answer to a message handed over; False when the connection is gone."""
        assert self.conn is not None
        try:
            transport.verdict(self.conn)
        except Exception as exc:
            if answered(exc, self.conn):
                return self.refused(row, exc)
            return self.unanswered(row, exc)
        self.accept(row)
        return True

    def unanswered(self, row: Outgoing, exc: Exception) -> bool:
        """The whole message went to the server and no answer came back that can be read.
        The server may well have taken it: sent again, it could arrive twice. It stays
        sent, flagged for a person (claims.UNANSWERED), and the run stops, as for any
        connection lost."""
        self.refusals += 1
        claims.mark_unanswered(self.db, row.id, worker=self.worker)
        detail = without_addresses(f"{type(exc).__name__}: {exc}")
        self.error = (
            f"The mail server gave no clear answer after taking outbox {row.id} ({detail}); it is "
            "left as sent and marked unconfirmed, for a person to send again if it never came"
        )
        log.warning("%s", self.error)
        self.drop_connection()
        return False

    def refused(self, row: Outgoing, exc: Exception) -> bool:
        """Record the server's refusal of `row`; False when the connection is gone with it."""
        self.refusals += 1
        verdict = judge(exc)
        if verdict.action == "failed":
            self.fail(row, verdict.answer)
        else:
            self.retry_later(row, verdict.answer)
        if verdict.action == "stop":
            self.error = verdict.answer
            self.drop_connection()
            return False
        if self.conn is not None and self.conn.sock is None:
            # Closed with the refusal (the server hung up, or took DATA after refusing the
            # recipient): this sender run ends, and the rest wait for the next run (`pcse
            # outbox send` exits 1 with this reason), none charged a try for it.
            self.error = f"The mail server closed the connection after answering {verdict.answer}"
            self.conn = None
            return False
        return True


def send_pending(
    db: Database,
    config: Config,
    token_provider: transport.TokenProvider | None = None,
    *,
    clock: Clock | None = None,
    limit: int | None = None,
    kept: KeptConnection | None = None,
) -> SendReport:
    """Send every due row (at most `limit`), batch by batch over one connection; with
    `kept`, the connection the last run left open, and left open for the next."""
    transport.check_settings(config.smtp, token_provider)
    run = _Run(db, config, token_provider, clock or SystemClock(), kept)
    try:
        return _send(run, db, config, limit)
    except BaseException:
        with _ENDED_LOCK:
            _ENDED.add(run.worker)
        raise


# Senders of this process that stopped on an error and may have left claims behind; the
# next sender takes those back at once. A sender at work is never listed here, so two
# senders of one process never take each other's rows.
_ENDED: set[str] = set()
_ENDED_LOCK = threading.Lock()


def _take_back_abandoned(run: _Run, db: Database) -> None:
    with _ENDED_LOCK:
        ended = frozenset(_ENDED)
    for holder, found in claims.release_abandoned(db, run.now(), ended).items():
        log.warning(
            "sender %s is no longer running: %d outbox row(s) it had claimed are "
            "due again (never handed to the mail server); %d it had handed over "
            "without hearing the answer are left as sent and marked unconfirmed",
            holder,
            found.released,
            found.unconfirmed,
        )
    with _ENDED_LOCK:
        _ENDED.difference_update(ended)


def _send(run: _Run, db: Database, config: Config, limit: int | None) -> SendReport:
    _take_back_abandoned(run, db)
    batch_size = max(1, config.smtp.batch_size)
    remaining = limit
    ended_well = False
    try:
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            batch = claims.claim_due(db, worker=run.worker, now=run.now(), limit=size, lease=LEASE)
            if not batch:
                break
            if remaining is not None:
                remaining -= len(batch)
            if not run.deliver(batch) or len(batch) < size:
                break
        ended_well = True
    finally:
        run.close(ended_well=ended_well)
    report = SendReport(
        sent=run.sent, failed=run.failed, pending=claims.count_waiting(db), error=run.error
    )
    if report.sent or report.failed or report.error:
        log.debug(
            "outbox: %s sent, %s failed, %s waiting", report.sent, report.failed, report.pending
        )
    return report
