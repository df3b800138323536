"""The hourly cap counts per mailbox: address variants that reach one mailbox share it.

victim+0@gmail.com … victim+11@gmail.com each got an acknowledgement where twelve from
victim@gmail.com got five and seven held: the count went by the address as written. Now it
goes by notifications.hourly_cap.cap_key (no "+tag"; at Gmail no dots and gmail.com), which
both databases compute alike; each row still goes to the exact address it was written to.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.clock import FixedClock
from core.db import Database, begin_writing, is_postgres
from core.inbound import BATCH_SENDERS
from notifications.hourly_cap import cap_key
from notifications.models import OutboxMessage
from tests.fixtures.databases import empty_postgres
from tests.test_outbox import START, ack, new_case
from workflow.env import WorkflowEnv
from workflow.models import Case

PLUS_TAGS = [f"victim+{n}@gmail.com" for n in range(12)]
GMAIL_SPELLINGS = [
    "victim@gmail.com",
    "v.ictim@gmail.com",
    "vi.c.tim@googlemail.com",
    "VICTIM@GMAIL.COM",
    "v.i.c.t.i.m+x@googlemail.com",
]
KEYED = [
    ("jane.smith+pcn@nhs.net", "jane.smith@nhs.net"),
    ("Jane.Smith@NHS.net", "jane.smith@nhs.net"),
    ("jane.smith@example.org", "jane.smith@example.org"),  # dots matter outside Gmail
    ("j.a.n.e+a+b@googlemail.com", "jane@gmail.com"),
    ("+only@example.org", "@example.org"),
    ("jane@gmail.com.evil.example", "jane@gmail.com.evil.example"),
    ("jane@xn--mller-kva.de", "jane@xn--mller-kva.de"),
    ("jane@müller.de", "jane@xn--mller-kva.de"),
]


@pytest.fixture
def env() -> WorkflowEnv:
    return WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=5)


@pytest.mark.parametrize(("address", "key"), KEYED)
def test_cap_key(address: str, key: str) -> None:
    assert cap_key(address) == key


def test_every_gmail_spelling_is_one_mailbox() -> None:
    assert {cap_key(a) for a in GMAIL_SPELLINGS + PLUS_TAGS} == {"victim@gmail.com"}


@pytest.mark.parametrize("addresses", [PLUS_TAGS, GMAIL_SPELLINGS * 2], ids=["tags", "dots"])
def test_variants_of_one_mailbox_share_its_cap(
    database: Database, env: WorkflowEnv, addresses: list[str]
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        rows = [ack(session, env, case, to_address=a) for a in addresses]
    statuses = [r.status for r in rows]
    assert statuses == ["pending"] * 5 + ["held"] * (len(addresses) - 5)
    # Each still goes to the address it was written to, as written (lower-cased).
    assert [r.to_address for r in rows] == [a.lower() for a in addresses]


def test_other_mailboxes_keep_caps_of_their_own(database: Database, env: WorkflowEnv) -> None:
    with database.transaction() as session:
        case = new_case(session)
        for address in ("jane.smith@example.org", "janesmith@example.org") * 5:
            assert ack(session, env, case, to_address=address).status == "pending"
        assert ack(session, env, case, to_address="jane.smith+x@example.org").status == "held"


def batch_statuses(session: Session, env: WorkflowEnv, senders: frozenset[str]) -> list[str]:
    begin_writing(session)
    session.info[BATCH_SENDERS] = senders
    case = new_case(session)
    return [ack(session, env, case, to_address=a).status for a in PLUS_TAGS[:8]]


def test_a_batch_counts_its_senders_mailboxes(database: Database, env: WorkflowEnv) -> None:
    """A batch's senders written as variants of one mailbox are counted as that mailbox,
    the same as outside a batch."""
    with database.transaction() as session:
        together = batch_statuses(session, env, frozenset(PLUS_TAGS[:4]))
        session.rollback()
    with database.transaction() as session:
        alone = batch_statuses(session, env, frozenset())
    assert together == alone == ["pending"] * 5 + ["held"] * 3


def test_the_database_keys_an_address_as_cap_key_does(database: Database, env: WorkflowEnv) -> None:
    addresses = [a for a, _ in KEYED if a.isascii()] + GMAIL_SPELLINGS
    with database.transaction() as session:
        case = new_case(session)
        ids = [ack(session, env, case, to_address=a, auto_submitted="no").id for a in addresses]
    with database.transaction() as session:
        query = select(OutboxMessage.cap_key).where(OutboxMessage.id.in_(ids))
        found = list(session.scalars(query.order_by(OutboxMessage.id)))
        if is_postgres(session):  # 0011's key in SQL, which keyed rows written before 0012
            key = text("SELECT pcse_cap_key(to_address) FROM outbox WHERE id = :id")
            assert [session.execute(key, {"id": i}).scalar_one() for i in ids] == found
    assert found == [cap_key(a) for a in addresses]


@pytest.mark.postgres
def test_workers_replying_to_variants_at_once_keep_to_the_cap(pg_url: str) -> None:
    """Each takes the lock of the mailbox, not of the address as written: eight counting
    at once, each for another variant, would otherwise all count under the cap."""
    empty_postgres(pg_url)
    database = Database(pg_url)
    env = WorkflowEnv(clock=FixedClock(START), max_replies_per_hour=5)
    try:
        with database.transaction() as session:
            case_id = new_case(session).id
        barrier = threading.Barrier(8)
        got: list[str] = []
        failures: list[BaseException] = []

        def reply(address: str) -> None:
            try:
                barrier.wait()
                with database.transaction() as session:
                    row = ack(session, env, session.get(Case, case_id), to_address=address)
                    time.sleep(0.1)  # the others count meanwhile
                    got.append(row.status)
            except BaseException as exc:  # raised again below, in the test
                failures.append(exc)

        threads = [threading.Thread(target=reply, args=(a,)) for a in PLUS_TAGS[:8]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures, failures
        assert sorted(got) == ["held"] * 3 + ["pending"] * 5
    finally:
        database.dispose()
