"""The inbound ledger on SQLite and PostgreSQL: recording, claims, caseworkers' retry, dismiss."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.db import Database
from core.timeutil import utcnow
from intake import ledger
from intake.ledger import HeaderFacts, LedgerError, NewMessage, header_facts
from intake.models import InboundMessage


def new(uid: int, digest: str | None = None, error: str | None = None) -> NewMessage:
    return NewMessage(
        uid,
        digest or f"{uid:064x}",
        10,
        HeaderFacts(f"<{uid}@x>", "a@b.c", "s"),
        utcnow(),
        error=error,
    )


def all_rows(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_a_uid_recorded_twice_is_one_row(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 7, [new(1), new(2)])
    with database.transaction() as session:
        ledger.insert_new(session, "box", 7, [new(2), new(3)])
        ledger.insert_new(session, "box", 8, [new(2)])  # another UIDVALIDITY: another message
    found = all_rows(database)
    assert [(r.uidvalidity, r.uid) for r in found] == [(7, 1), (7, 2), (7, 3), (8, 2)]
    assert {r.status for r in found} == {"pending"}


def test_unreadable_rows_are_failed_with_their_reason(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(1, ledger.UNREAD_SHA256, "It was too big.")])
        known = ledger.known_uids(session, "box", 1, [1, 2])
    [row] = all_rows(database)
    assert (row.status, row.error) == ("failed", "It was too big.")
    assert known == {1: ledger.KnownUid(row.id, unreadable=True, moved=False)}


def test_mark_moved_and_rekey_after_uidvalidity_change(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(1, "a" * 64), new(2, "b" * 64), new(3, "c" * 64)])
        ledger.mark_moved(session, "box", 1, [3])
    with database.transaction() as session:
        assert ledger.has_unmoved_elsewhere(session, "box", 2)
        taken = ledger.rekey_unmoved(
            session, "box", 2, {"a" * 64: [10], "c" * 64: [11], "d" * 64: [12]}
        )
    assert taken == {10}  # c was moved out already: a new copy of it is a new delivery
    by_digest = {r.sha256[0]: r for r in all_rows(database)}
    assert (by_digest["a"].uidvalidity, by_digest["a"].uid) == (2, 10)
    assert (by_digest["b"].uidvalidity, by_digest["b"].uid) == (1, 2)
    assert by_digest["c"].moved_at is not None


def test_claims_do_not_overlap_between_workers(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(i) for i in range(1, 41)])
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claim(worker: str) -> None:
        barrier.wait()
        found: list[int] = []
        while True:
            with database.transaction() as session:
                batch = ledger.claim_pending(session, worker, 3)
            if not batch:
                break
            found.extend(batch)
        claimed[worker] = found

    threads = [threading.Thread(target=claim, args=(w,)) for w in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    together = claimed["a"] + claimed["b"]
    assert sorted(together) == sorted(set(together))
    assert len(together) == 40
    assert all(r.attempts == 1 for r in all_rows(database))


def test_an_expired_claim_can_be_taken_and_the_old_holder_cannot_finish(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(1)])
    with database.transaction() as session:
        [row_id] = ledger.claim_pending(session, "first", 5)
        assert ledger.claim_pending(session, "second", 5) == []
    with database.transaction() as session:
        session.execute(update(InboundMessage).values(claimed_until=utcnow() - timedelta(1)))
    with database.transaction() as session:
        assert ledger.claim_pending(session, "second", 5) == [row_id]
    with database.transaction() as session:
        assert not ledger.finish(
            session, row_id, "first", status="processed", classification="new_request", outcome="x"
        )
        assert ledger.finish(
            session,
            row_id,
            "second",
            status="processed",
            classification="new_request",
            outcome="Opened a case.",
        )
    [row] = all_rows(database)
    assert (row.status, row.outcome, row.attempts, row.claimed_by) == (
        "processed",
        "Opened a case.",
        2,
        None,
    )


def test_release_gives_claims_back(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(1), new(2)])
        ids = ledger.claim_pending(session, "w", 5)
        ledger.release(session, "w", ids)
        # Claimed before and not finished, the first is claimed alone, then the other.
        assert ledger.claim_pending(session, "v", 5) == ids[:1]
        assert ledger.claim_pending(session, "v", 5) == ids[1:]


def test_a_batch_ends_before_a_row_claimed_before(database: Database) -> None:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(n) for n in (1, 2, 3, 4)])
        ids = ledger.claim_pending(session, "w", 5)
        ledger.release(session, "w", ids[2:3])  # the third: claimed, not finished
        ledger.release(session, "w", ids[:2])
        session.execute(
            update(InboundMessage).where(InboundMessage.id.in_(ids[:2])).values(attempts=0)
        )  # the first two: retried by a caseworker, say
        assert ledger.claim_pending(session, "v", 5) == ids[:2]
        assert ledger.claim_pending(session, "v", 5) == ids[2:3]


def failed_row(database: Database) -> int:
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(1)])
        [row_id] = ledger.claim_pending(session, "w", 1)
        ledger.finish(
            session,
            row_id,
            "w",
            status="failed",
            classification="new_request",
            outcome=None,
            error="KeyError: 'x'",
        )
    return row_id


def test_retry_puts_a_failed_message_back(database: Database) -> None:
    row_id = failed_row(database)
    with database.transaction() as session:
        row = ledger.retry(session, row_id, by="cw@nhs.net")
        assert (row.status, row.error) == ("pending", None)
        assert "Retried by cw@nhs.net" in row.outcome and "KeyError" in row.outcome
    with database.transaction() as session, pytest.raises(LedgerError, match="only failed"):
        ledger.retry(session, row_id, by="cw@nhs.net")
    with database.transaction() as session, pytest.raises(LedgerError, match="no inbound"):
        ledger.retry(session, 99999, by="cw@nhs.net")


def test_dismiss_needs_a_reason_and_a_message_not_in_hand(database: Database) -> None:
    row_id = failed_row(database)
    with database.transaction() as session, pytest.raises(LedgerError, match="Say why"):
        ledger.dismiss(session, row_id, by="cw@nhs.net", reason="  ")
    with database.transaction() as session:
        row = ledger.dismiss(session, row_id, by="cw@nhs.net", reason="Spam.")
        assert row.status == "dismissed"
        assert row.outcome == "Dismissed by cw@nhs.net: Spam."
    with database.transaction() as session:
        assert ledger.retry(session, row_id, by="cw@nhs.net").status == "pending"
        ledger.claim_pending(session, "busy-worker", 1)
    with database.transaction() as session, pytest.raises(LedgerError, match="being processed"):
        ledger.dismiss(session, row_id, by="cw@nhs.net", reason="Spam.")


def test_counts_by_status(database: Database) -> None:
    failed_row(database)
    with database.transaction() as session:
        ledger.insert_new(session, "box", 1, [new(5), new(6)])
        assert ledger.counts_by_status(session) == {"failed": 1, "pending": 2}


def test_the_body_digest_is_of_what_follows_the_first_empty_line_whatever_its_line_ending() -> None:
    """A copy that came by a route writing CRLF is the same body; a CRLF pair inside the
    body of a message with LF headers is no end of its headers."""
    lf = b"From: a@b.c\nMessage-ID: <1@b.c>\n\nPlease set up Jane.\nThanks\n"
    crlf = lf.replace(b"\n", b"\r\n")
    assert header_facts(lf).body_sha256 == header_facts(crlf).body_sha256
    assert header_facts(lf).body_sha256 == header_facts(lf + b"\n").body_sha256
    tail = b"\r\n\r\nKind regards\nPat\n"
    mallory = b"From: a@b.c\nMessage-ID: <1@b.c>\n\nPlease set up Mallory." + tail
    jane = b"From: a@b.c\nMessage-ID: <1@b.c>\n\nPlease set up Jane." + tail
    assert header_facts(mallory).body_sha256 != header_facts(jane).body_sha256


@pytest.mark.parametrize(
    "forged",
    [
        # A line that is no header ends the headers, as the email package reads them.
        b"From: a@b.c\nMessage-ID: <1@b.c>\nPlease set up Mallory instead\n\nPlease set up Jane.\n",
        # A CR alone ends a line for the email package too.
        b"From: a@b.c\rMessage-ID: <1@b.c>\r\rPlease set up Mallory.\n\nPlease set up Jane.\n",
    ],
)
def test_the_body_digest_begins_where_the_email_package_begins_the_body(forged: bytes) -> None:
    real = b"From: a@b.c\nMessage-ID: <1@b.c>\n\nPlease set up Jane.\n"
    assert header_facts(forged).body_sha256 != header_facts(real).body_sha256
