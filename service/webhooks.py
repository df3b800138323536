"""Signed webhook POSTs of the change feed, one per change per receiver, in order.

The outbox pattern: `enqueue` writes a delivery row for each published feed change not yet
queued for a receiver; `deliver_due` claims the receiver's oldest undelivered row (only the
oldest: a receiver sees its changes in cursor order), POSTs it, and marks it sent only on a
2xx answer. A failed try is retried with backoff; after `max_attempts` the row is marked
failed and the receiver's later changes wait behind it until an operator retries it
(`pcse directory webhooks retry NAME`). A POST that reached the receiver but whose answer
was lost is sent again: the `Idempotency-Key` header (the change's cursor) lets the
receiver take each change exactly once.

Every body is signed: `X-PCSE-Signature: sha256=HEX`, the HMAC-SHA256 with the shared
secret of `TIMESTAMP.BODY`, where `X-PCSE-Timestamp` is the Unix time of the try; a
receiver refuses a timestamp more than a few minutes old, so a captured request cannot be
replayed later (`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.clock import Clock, SystemClock
from core.db import Database, is_postgres, rowcount
from core.timeutil import utcnow
from service.models import WebhookDelivery
from service.webhook_settings import WebhookConfig
from workflow.changefeed import change_document, publish
from workflow.models import RoleChange

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-PCSE-Signature"
TIMESTAMP_HEADER = "X-PCSE-Timestamp"
EVENT_HEADER = "X-PCSE-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_BACKOFF = timedelta(hours=1)
UNSENT = ("pending", "sending", "failed")

Post = Callable[[str, bytes, dict[str, str], float], int]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, *, now: float, tolerance: float = 300
) -> bool:
    """What a receiver checks: a fresh timestamp and the signature over it and the body."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    # compare_digest takes str of ASCII only: a header beyond it is simply wrong.
    return hmac.compare_digest(sign(secret, sent, body).encode(), signature.encode())


class HttpPoster:
    """POSTs over one client (its TLS context and connections reused across changes);
    returns the status code. Redirects are not followed: a receiver answers itself.

    Only the status line and headers are read: the body of the answer (however large, or
    compressed, or sent a byte at a time) is never read or inflated. A plain-http receiver
    (allowed on loopback only) is reached directly, never through the environment's
    HTTP_PROXY, which would carry the signed body off the machine in clear; an https
    receiver goes through the environment's proxy settings, if any, inside TLS."""

    def __init__(self) -> None:
        self.client = httpx.Client(follow_redirects=False)
        self.direct = httpx.Client(follow_redirects=False, trust_env=False)

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        client = self.client if url.lower().startswith("https:") else self.direct
        sent = {**headers, "Accept-Encoding": "identity"}
        with client.stream("POST", url, content=body, headers=sent, timeout=timeout) as answer:
            return answer.status_code

    def close(self) -> None:
        self.client.close()
        self.direct.close()


@dataclass
class DeliveryReport:
    queued: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "sent": self.sent,
            "retrying": self.retrying,
            "failed": self.failed,
        }


def enqueue(db: Database, receivers: Collection[str], now: datetime) -> int:
    """Publish the feed, then queue every published change each receiver has not had."""
    with db.transaction() as session:
        publish(session)
    queued = 0
    for name in receivers:
        with db.transaction() as session:
            last = session.scalar(
                select(func.max(WebhookDelivery.seq)).where(WebhookDelivery.receiver == name)
            )
            seqs = session.scalars(
                select(RoleChange.seq).where(RoleChange.seq > (last or 0)).order_by(RoleChange.seq)
            ).all()
            queued += _queue(session, name, [s for s in seqs if s is not None], now)
    return queued


def _queue(session: Session, receiver: str, seqs: list[int], now: datetime) -> int:
    """Write the receiver's deliveries of these changes; one another worker has written
    meanwhile (its job ran at the same moment) is left as it is. Returns those written."""
    insert = pg_insert if is_postgres(session) else sqlite_insert
    written = 0
    for start in range(0, len(seqs), _QUEUE_CHUNK):
        rows = [
            {"receiver": receiver, "seq": seq, "created_at": now, "next_attempt_at": now}
            for seq in seqs[start : start + _QUEUE_CHUNK]
        ]
        statement = (
            insert(WebhookDelivery)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["receiver", "seq"])
            .returning(WebhookDelivery.id)
        )
        written += len(session.execute(statement).all())
    return written


_QUEUE_CHUNK = 500


def _head(session, receiver: str) -> WebhookDelivery | None:
    """The receiver's oldest delivery not yet sent: the only one that may go next."""
    return session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.receiver == receiver, WebhookDelivery.status.in_(UNSENT))
        .order_by(WebhookDelivery.seq)
        .limit(1)
    ).first()


def _claim(db: Database, receiver: str, worker: str, now: datetime, lease: timedelta) -> int | None:
    """Claim the receiver's head if it is due; its id, or None (nothing due, blocked by a
    failed delivery, or another worker has it)."""
    with db.transaction() as session:
        head = _head(session, receiver)
        if head is None:
            return None
        due = or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == "sending", WebhookDelivery.claimed_until < now),
        )
        claimed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == head.id, due)
            .values(
                status="sending",
                claimed_by=worker,
                claimed_until=now + lease,
                attempts=WebhookDelivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return head.id if rowcount(claimed) == 1 else None


def _request(db: Database, delivery_id: int, secret: str) -> tuple[str, bytes, dict]:
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        change = session.scalars(select(RoleChange).where(RoleChange.seq == delivery.seq)).one()
        document = {"event_id": change.seq, **change_document(change)}
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    # The wall-clock time of this try (not the scheduling clock): what a receiver checks
    # against its own clock to refuse a replay.
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_HEADER: str(change.seq),
        IDEMPOTENCY_HEADER: str(change.seq),
    }
    return str(change.seq), body, headers


def backoff(config: WebhookConfig, attempts: int) -> timedelta:
    seconds = config.first_retry_seconds * (2 ** max(attempts - 1, 0))
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def _finish(
    db: Database,
    config: WebhookConfig,
    delivery_id: int,
    worker: str,
    now: datetime,
    error: str | None,
) -> str:
    """Record a try; returns the row's new status."""
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.claimed_by != worker or delivery.status != "sending":
            return "lost"  # the lease ran out and another worker took it over
        delivery.claimed_by = None
        delivery.claimed_until = None
        if error is None:
            delivery.status = "sent"
            delivery.sent_at = now
            delivery.last_error = None
        elif delivery.attempts >= config.max_attempts:
            delivery.status = "failed"
            delivery.last_error = error
        else:
            delivery.status = "pending"
            delivery.last_error = error
            delivery.next_attempt_at = now + backoff(config, delivery.attempts)
        return delivery.status


def _try(config: WebhookConfig, post: Post, body: bytes, headers: dict[str, str]) -> str | None:
    """One POST; None when the receiver took it, else what went wrong (no body quoted)."""
    try:
        status = post(config.url, body, headers, config.timeout_seconds)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: could not reach the receiver"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or 'could not reach the receiver'}"
    return None if 200 <= status < 300 else f"The receiver answered HTTP {status}."


def deliver_receiver(
    db: Database,
    config: WebhookConfig,
    *,
    worker: str,
    clock: Clock,
    post: Post | None,
    report: DeliveryReport | None = None,
    limit: int = 1000,
) -> DeliveryReport:
    """Send the receiver's due deliveries in order, stopping at the first that fails."""
    report = report or DeliveryReport()
    post = post or HttpPoster()
    secret = config.secret_value()
    if not secret:
        report.errors.append(f"Webhook {config.name!r} has no secret; nothing was sent to it.")
        return report
    lease = timedelta(seconds=config.timeout_seconds * 2 + 30)
    for _ in range(limit):
        now = clock.now()
        delivery_id = _claim(db, config.name, worker, now, lease)
        if delivery_id is None:
            break
        _, body, headers = _request(db, delivery_id, secret)
        error = _try(config, post, body, headers)
        status = _finish(db, config, delivery_id, worker, clock.now(), error)
        if status == "sent":
            report.sent += 1
            continue
        if status == "failed":
            report.failed += 1
            log.warning("webhook %s: a delivery failed for good: %s", config.name, error)
        elif status == "pending":
            report.retrying += 1
            log.info("webhook %s: will retry: %s", config.name, error)
        break
    return report


def deliver_all(
    db: Database,
    receivers: list[WebhookConfig],
    *,
    worker: str,
    clock: Clock | None = None,
    post: Post | None = None,
) -> DeliveryReport:
    """Queue what is new, then deliver to each receiver."""
    clock = clock or SystemClock()
    report = DeliveryReport(queued=enqueue(db, [r.name for r in receivers], clock.now()))
    poster = HttpPoster() if post is None else None
    try:
        for receiver in receivers:
            deliver_receiver(
                db, receiver, worker=worker, clock=clock, post=poster or post, report=report
            )
    finally:
        if poster is not None:
            poster.close()
    return report


def retry_failed(db: Database, receiver: str, now: datetime) -> int:
    """An operator's retry: the receiver's failed deliveries are due again, tries reset."""
    with db.transaction() as session:
        done = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.receiver == receiver, WebhookDelivery.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=now)
        )
        return rowcount(done)


def status(db: Database, receivers: list[WebhookConfig]) -> list[dict[str, Any]]:
    """Per receiver: counts by status, the last cursor delivered, and what blocks it."""
    documents = []
    with db.transaction() as session:
        for receiver in receivers:
            counts = dict(
                session.execute(
                    select(WebhookDelivery.status, func.count())
                    .where(WebhookDelivery.receiver == receiver.name)
                    .group_by(WebhookDelivery.status)
                ).all()
            )
            delivered = session.scalar(
                select(func.max(WebhookDelivery.seq)).where(
                    WebhookDelivery.receiver == receiver.name, WebhookDelivery.status == "sent"
                )
            )
            head = _head(session, receiver.name)
            documents.append(
                {
                    "name": receiver.name,
                    "url": receiver.url,
                    "pending": counts.get("pending", 0) + counts.get("sending", 0),
                    "sent": counts.get("sent", 0),
                    "failed": counts.get("failed", 0),
                    "delivered_cursor": delivered or 0,
                    "next_cursor": head.seq if head else None,
                    "next_attempts": head.attempts if head else 0,
                    "next_attempt_at": head.next_attempt_at.isoformat() if head else None,
                    "last_error": head.last_error if head else None,
                }
            )
    return documents


def undelivered_naming(db: Database, receivers: list[WebhookConfig], email: str) -> int:
    """Changes naming this address that some receiver has not yet taken: erasing the
    address now would send them without it (pcse person erase waits for them)."""
    if not receivers:
        return 0
    enqueue(db, [r.name for r in receivers], utcnow())
    with db.transaction() as session:
        seqs = select(RoleChange.seq).where(func.lower(RoleChange.person_email) == email.lower())
        return int(
            session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(
                    WebhookDelivery.receiver.in_([r.name for r in receivers]),
                    WebhookDelivery.status.in_(UNSENT),
                    WebhookDelivery.seq.in_(seqs),
                )
            )
            or 0
        )
