"""enqueue, retry and dismiss on SQLite and PostgreSQL: rows, threading, loop and flood rules."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from core.catalogue import Service, admin_role
from core.clock import FixedClock
from core.db import Database, begin_writing
from intake.models import InboundMessage
from notifications import outbox
from notifications.models import OutboxMessage
from notifications.outbox import OutboxActionRefused, OutboxNotFound
from notifications.purposes import MissingContext, UnknownPurpose
from notifications.samples import SAMPLE_CONTEXTS
from service.schema import alembic_config
from tests.fixtures.databases import empty_postgres
from workflow.cases import create_case
from workflow.env import WorkflowEnv
from workflow.mail import case_mail, dismiss, enqueue, retry
from workflow.models import Case, CaseEvent, Organisation, Person, RoleAssignment

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQUESTER = "pat.jones@riverside.nhs.net"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def env(clock: FixedClock) -> WorkflowEnv:
    return WorkflowEnv(clock=clock)


def new_case(session: Session, code: str = "A81001") -> Case:
    if session.scalar(select(Organisation).where(Organisation.code == code)) is None:
        session.add(
            Organisation(
                code=code, name="The Riverside Surgery", type="gp_practice", icb_code="QHM"
            )
        )
    return create_case(
        session,
        kind="gpp_admin_form",
        requester=REQUESTER,
        requester_name="Pat Jones",
        organisation_code=code,
        now=START,
    )


def inbound(
    session: Session,
    message_id: str | None,
    *,
    uid: int,
    case: Case | None = None,
    at: datetime = START,
) -> InboundMessage:
    row = InboundMessage(
        mailbox="enquiries",
        uidvalidity=1,
        uid=uid,
        message_id=message_id,
        sha256=f"{uid:064x}",
        size=100,
        received_at=at,
        from_address=REQUESTER,
        subject="Form",
        status="processed",
        case_id=case.id if case else None,
    )
    session.add(row)
    session.flush()
    return row


def ack(session: Session, env: WorkflowEnv, case: Case | None = None, **kwargs) -> OutboxMessage:
    kwargs.setdefault("to_address", REQUESTER)
    kwargs.setdefault("to_name", "Pat Jones")
    return enqueue(
        session,
        env,
        purpose="acknowledgement",
        context=SAMPLE_CONTEXTS["acknowledgement"],
        case=case or new_case(session),
        **kwargs,
    )


def count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_enqueue_writes_in_the_callers_transaction_and_never_commits(
    database: Database, env: WorkflowEnv
) -> None:
    with database.sessions() as session:
        session.begin()
        row = ack(session, env)
        assert row.id is not None  # flushed, so the caller can refer to it
        session.rollback()
    assert count(database) == 0
    with database.transaction() as session:
        ack(session, env)
    assert count(database) == 1


def test_enqueued_row_carries_ref_message_id_and_both_parts(
    database: Database, env: WorkflowEnv
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        row = ack(session, env, case)
        ref = case.ref
    with database.transaction() as session:
        stored = session.get(OutboxMessage, row.id)
        assert stored.status == "pending"
        assert stored.subject.startswith(f"[{ref}] ")
        assert re.fullmatch(r"<[^<>@\s]+@nhs\.net>", stored.message_id)
        assert ref in stored.body_text and ref in stored.body_html
        assert "The Riverside Surgery (A81001)" in stored.body_text
        assert stored.to_address == REQUESTER and stored.to_name == "Pat Jones"
        assert stored.auto_submitted == "auto-replied"
        assert stored.in_reply_to is None and stored.references is None
        assert stored.next_attempt_at.replace(tzinfo=UTC) == START


def test_each_row_gets_its_own_message_id(database: Database, env: WorkflowEnv) -> None:
    with database.transaction() as session:
        case = new_case(session)
        ids = {ack(session, env, case, to_address=f"p{i}@example.org").message_id for i in range(4)}
    assert len(ids) == 4


def test_a_reply_threads_under_the_message_it_answers(database: Database, env: WorkflowEnv) -> None:
    with database.transaction() as session:
        case = new_case(session)
        first = inbound(session, "<first@riverside.nhs.net>", uid=1, case=case)
        case.source_message_id = first.id
        earlier = ack(session, env, case, reply_to=first)
        assert earlier.in_reply_to == "<first@riverside.nhs.net>"
        assert earlier.references == "<first@riverside.nhs.net>"
        second = inbound(
            session, "<second@riverside.nhs.net>", uid=2, case=case, at=START + timedelta(minutes=5)
        )
        reply = enqueue(
            session,
            env,
            purpose="outcome_completed",
            to_address=REQUESTER,
            to_name=None,
            context=SAMPLE_CONTEXTS["outcome_completed"],
            case=case,
            reply_to=second,
        )
        assert reply.in_reply_to == "<second@riverside.nhs.net>"
        assert reply.references == (
            f"<first@riverside.nhs.net> {earlier.message_id} <second@riverside.nhs.net>"
        )


def test_a_second_email_on_a_new_case_threads_under_the_first(
    database: Database, env: WorkflowEnv
) -> None:
    """The first email on a case opened in this transaction skips the thread look-up
    (there is nothing before it); the next one must still find the first."""
    with database.transaction() as session:
        case = new_case(session)
        first = inbound(session, "<opening@riverside.nhs.net>", uid=4, case=case)
        case.source_message_id = first.id
        acknowledgement = ack(session, env, case, reply_to=first)
        assert acknowledgement.references == "<opening@riverside.nhs.net>"
        second = ack(session, env, case, reply_to=first)
        assert second.references == (f"{acknowledgement.message_id} <opening@riverside.nhs.net>")


def test_a_reply_uses_the_answered_messages_own_references_when_known(
    database: Database, env: WorkflowEnv
) -> None:
    with database.transaction() as session:
        parent = inbound(session, "<child@x.org>", uid=3)
        parent.references = "<root@x.org>\r\n <mid@x.org>"  # as a ledger that keeps them would
        row = ack(session, env, reply_to=parent)
        assert row.in_reply_to == "<child@x.org>"
        assert row.references == "<root@x.org> <mid@x.org> <child@x.org>"


@pytest.mark.parametrize("message_id", [None, "", "no id here", "<a@b>\r\nBcc: victim@example.org"])
def test_malformed_message_ids_never_reach_threading_headers(
    database: Database, env: WorkflowEnv, message_id: str | None
) -> None:
    with database.transaction() as session:
        parent = inbound(session, message_id, uid=4)
        row = ack(session, env, reply_to=parent)
        if message_id and message_id.startswith("<a@b>"):
            assert row.in_reply_to == "<a@b>" and row.references == "<a@b>"
        else:
            assert row.in_reply_to is None and row.references is None


@pytest.mark.parametrize(
    "address",
    [
        "pcse.portalenquiries@nhs.net",
        "PCSE.PortalEnquiries@NHS.net",
        "pcse.portalenquiries+apv-0123@nhs.net",
    ],
)
def test_never_to_our_own_address(database: Database, env: WorkflowEnv, address: str) -> None:
    with database.transaction() as session:
        case = new_case(session)
        row = ack(session, env, case, to_address=address)
        assert row.status == "dismissed"
        assert "our own addresses" in row.last_error
        notes = session.scalars(select(CaseEvent.detail).where(CaseEvent.case_id == case.id))
        assert any("not sent" in note for note in notes)


def test_the_hourly_cap_holds_the_sixth_automatic_reply(
    database: Database, env: WorkflowEnv, clock: FixedClock
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        rows = [ack(session, env, case) for _ in range(6)]
        other = ack(session, env, case, to_address="someone.else@example.org")
        by_hand = ack(session, env, case, auto_submitted="no")
    assert [r.status for r in rows] == ["pending"] * 5 + ["held"]
    assert "limit 5" in rows[5].last_error
    assert other.status == "pending" and by_hand.status == "pending"
    with database.transaction() as session:
        # Held rows do not count towards the cap; an hour later the count starts again.
        assert ack(session, env, case).status == "held"
        clock.advance(minutes=61)
        assert ack(session, env, case).status == "pending"


def test_workers_racing_to_reply_to_one_address_keep_to_the_cap(
    database: Database, env: WorkflowEnv
) -> None:
    """Each transaction counts the hour's replies, then writes its own: two that counted at
    once would both go under the cap. On PostgreSQL they take turns per address; on
    SQLite one writer at a time does the same."""
    with database.transaction() as session:
        case_id = new_case(session).id
    workers = 8
    barrier = threading.Barrier(workers)
    statuses: list[str] = []
    failures: list[BaseException] = []

    def reply() -> None:
        try:
            barrier.wait()
            with database.transaction() as session:
                row = ack(session, env, session.get(Case, case_id))
                time.sleep(0.2)  # the others count meanwhile
                statuses.append(row.status)
        except BaseException as exc:  # raised again below, in the test
            failures.append(exc)

    threads = [threading.Thread(target=reply) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert sorted(statuses) == ["held"] * 3 + ["pending"] * 5


def test_the_cap_is_configurable(database: Database, clock: FixedClock) -> None:
    env = WorkflowEnv(clock=clock, max_replies_per_hour=2)
    with database.transaction() as session:
        case = new_case(session)
        assert [ack(session, env, case).status for _ in range(3)] == ["pending", "pending", "held"]


def test_header_values_from_senders_are_cleaned(database: Database, env: WorkflowEnv) -> None:
    evil = "Pat\r\nBcc: victim@example.org\x00 <b>Jones</b>"
    with database.transaction() as session:
        # The workflow writes back no display name that is not a name (forms.normalise) ...
        assert ack(session, env, to_name=evil).to_name is None
        # ... and the outbox, whoever calls it, keeps a name to one line.
        row = outbox.enqueue(
            session,
            env,
            purpose="acknowledgement",
            to_address=REQUESTER,
            to_name=evil,
            context=SAMPLE_CONTEXTS["acknowledgement"],
            case=case_mail(session, new_case(session)),
        )
        assert row.to_name == "Pat Bcc: victim@example.org <b>Jones</b>"
        assert "\n" not in row.subject and "\r" not in row.subject
        bad = ack(session, env, to_address="pat@riverside.nhs.net\r\nBcc: victim@example.org")
        assert bad.status == "failed"
        assert "not a valid email address" in bad.last_error
        assert "\n" not in bad.to_address


def test_context_mistakes_are_caught_before_anything_is_written(
    database: Database, env: WorkflowEnv
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        with pytest.raises(UnknownPurpose):
            enqueue(
                session,
                env,
                purpose="no_such_purpose",
                to_address=REQUESTER,
                to_name=None,
                context={},
                case=case,
            )
        with pytest.raises(MissingContext, match="reason"):
            enqueue(
                session,
                env,
                purpose="outcome_rejected",
                to_address=REQUESTER,
                to_name=None,
                context={},
                case=case,
            )
        with pytest.raises(MissingContext, match="case"):
            enqueue(
                session,
                env,
                purpose="outcome_expired",
                to_address=REQUESTER,
                to_name=None,
                context={},
            )
        with pytest.raises(ValueError, match="blank form"):
            enqueue(
                session,
                env,
                purpose="outcome_expired",
                to_address=REQUESTER,
                to_name=None,
                context={},
                case=case,
                attachments=["../../etc/passwd"],
            )
    assert count(database) == 0


def test_fifth_admin_reply_never_names_the_current_admins(
    database: Database, env: WorkflowEnv
) -> None:
    role = admin_role(Service.GPP)
    with database.transaction() as session:
        case = new_case(session)
        org = session.scalar(select(Organisation).where(Organisation.code == "A81001"))
        admins = [
            Person(email=f"admin{i}@riverside.nhs.net", name=f"Admin Person{i}") for i in range(4)
        ]
        session.add_all(admins)
        session.flush()
        session.add_all(
            RoleAssignment(
                person_id=p.id,
                organisation_id=org.id,
                service="gpp",
                role=role,
                granted_by="test",
                grant_reason="seed",
            )
            for p in admins
        )
        row = enqueue(
            session,
            env,
            purpose="admin_limit_reached",
            to_address=REQUESTER,
            to_name="Pat Jones",
            context={"service_title": "GP Payments and Pensions", "limit": 4},
            case=case,
        )
    for person in admins:
        for part in (row.subject, row.body_text, row.body_html):
            assert person.name not in part and person.email not in part
    assert f"cannot add another {role}" in row.body_text


def test_caseworker_can_send_a_held_email_and_it_is_recorded(
    database: Database, env: WorkflowEnv
) -> None:
    with database.transaction() as session:
        case = new_case(session)
        held = [ack(session, env, case) for _ in range(6)][-1]
    with database.transaction() as session:
        row = retry(session, held.id, by="caseworker@pcse.nhs.uk")
        assert row.status == "pending" and row.attempts == 0 and row.last_error is None
        notes = session.execute(
            select(CaseEvent.actor, CaseEvent.detail).where(CaseEvent.case_id == case.id)
        ).all()
        assert (
            "caseworker@pcse.nhs.uk",
            f"Email 'acknowledgement' to {REQUESTER} released for sending.",
        ) in notes
    with database.transaction() as session, pytest.raises(OutboxActionRefused, match="pending"):
        retry(session, held.id, by="caseworker@pcse.nhs.uk")


def test_caseworker_can_dismiss_with_a_reason(database: Database, env: WorkflowEnv) -> None:
    with database.transaction() as session:
        row = ack(session, env)
    with database.transaction() as session, pytest.raises(OutboxActionRefused, match="reason"):
        dismiss(session, row.id, by="cw@pcse.nhs.uk", reason="  ")
    with database.transaction() as session:
        done = dismiss(session, row.id, by="cw@pcse.nhs.uk", reason="Sent by hand instead.")
        assert done.status == "dismissed"
        assert done.last_error == "Dismissed by cw@pcse.nhs.uk: Sent by hand instead."
    with database.transaction() as session, pytest.raises(OutboxActionRefused):
        dismiss(session, row.id, by="cw@pcse.nhs.uk", reason="again")
    with database.transaction() as session, pytest.raises(OutboxActionRefused):
        retry(session, row.id, by="cw@pcse.nhs.uk")
    with database.transaction() as session, pytest.raises(OutboxNotFound):
        retry(session, 999_999, by="cw@pcse.nhs.uk")


@pytest.mark.postgres
def test_the_cap_counts_the_same_after_its_migration_is_undone_and_done_again(
    pg_url: str, env: WorkflowEnv
) -> None:
    """Migration 0009's function goes with a downgrade and comes back with an upgrade."""
    empty_postgres(pg_url)
    db = Database(pg_url)
    called = "SELECT to_regprocedure('pcse_automatic_replies_since(text, timestamptz)')"
    try:
        with db.transaction() as session:
            case = new_case(session)
            assert [ack(session, env, case).status for _ in range(5)] == ["pending"] * 5
        command.downgrade(alembic_config(pg_url), "0008")
        try:
            with db.engine.begin() as conn:
                assert conn.execute(text(called)).scalar() is None
        finally:
            command.upgrade(alembic_config(pg_url), "head")
        with db.engine.begin() as conn:
            assert conn.execute(text(called)).scalar() is not None
        with db.transaction() as session:
            assert ack(session, env, session.get(Case, case.id)).status == "held"
    finally:
        db.dispose()


def test_the_write_lock_is_taken_for_the_cap_unless_the_transaction_began_with_it(
    sqlite_database: Database, env: WorkflowEnv
) -> None:
    sent: list[str] = []

    def note(_conn, _cursor, statement: str, *_: object) -> None:
        sent.append(statement)

    locks = lambda: sent.count("UPDATE outbox SET id = id WHERE 0")  # noqa: E731
    event.listen(sqlite_database.engine, "before_cursor_execute", note)
    try:
        with sqlite_database.sessions() as session:
            with session.begin():
                begin_writing(session)  # as intake's batches begin
                ack(session, env)
            assert locks() == 0
            with session.begin():  # a later transaction of the same session did not
                ack(session, env)
            assert locks() == 1
    finally:
        event.remove(sqlite_database.engine, "before_cursor_execute", note)
