"""Two people, or a person and a worker, acting on one case or one organisation at the same
moment, on PostgreSQL (READ COMMITTED, as the service runs it): the second waits for the
first (workflow.cases.hold_case, the person held by grants and deactivations), then sees
what the first did, so a check made before the first committed is never acted on after.

Each test runs the first party in a thread until it has taken its holds (it is paused at a
function it calls after them), starts the second in another thread, checks that the second
is still waiting a second later, then lets the first finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select

from caseworker import bulk
from caseworker.models import Caseworker
from caseworker.pages.case_plan import _preview
from caseworker.pages.cases import ChangedSinceShown, _assign
from core.db import Database, is_holding
from core.inbound import Classification, MessageKind
from tests.fixtures.databases import empty_postgres
from tests.test_workflow_helpers import (
    GUARDIAN,
    ICB_CONTACT,
    PARTNER,
    answer,
    case_of,
    email_request,
    failed_checks,
    gpp_form,
    holders,
    inbound_row,
    mail_from,
    make_env,
    open_request,
    outbox,
    seed,
    token_for,
)
from workflow import (
    actions,
    answers,
    approvals,
    cases,
    corrections,
    directory,
    merge_cases,
    reminders,
)
from workflow.actions import ActionRefused, StalePlan
from workflow.approval_plan import plan_for
from workflow.cases import get_case
from workflow.env import WorkflowEnv
from workflow.intake_link import WorkflowLink
from workflow.models import ApprovalRequest, Case, Person, RoleAssignment

SAM = {"name": "Sam Lee", "email": "sam.lee@nhs.net"}
WAIT = 1.0  # how long the second party must still be waiting


@pytest.fixture
def pgdb(pg_url: str) -> Iterator[Database]:
    empty_postgres(pg_url)
    db = Database(pg_url)
    with db.transaction() as session:
        seed(session)
    yield db
    db.dispose()


def caseworkers(db: Database, *emails: str) -> None:
    """Accounts for the caseworkers a test gives cases to."""
    with db.transaction() as session:
        for email in emails:
            session.add(Caseworker(email=email, name=email.split("@")[0], password_hash="x"))


@dataclass
class Outcome:
    second_waited: bool
    results: dict[str, Any] = field(default_factory=dict)  # "first"/"second": value or error

    def assert_waited_and_both_ended_well(self) -> None:
        assert self.second_waited
        for result in self.results.values():
            assert not isinstance(result, BaseException), result


def second_waits_for_first(
    monkeypatch: pytest.MonkeyPatch,
    first: Callable[[], Any],
    second: Callable[[], Any],
    paused_at: tuple[ModuleType, str],
) -> Outcome:
    """Run `first` until it calls `paused_at` (holding what it holds by then), run `second`
    meanwhile, then let `first` go on; each one's return value or exception."""
    module, name = paused_at
    real = getattr(module, name)
    entered, go = threading.Event(), threading.Event()
    first_thread: list[int] = []

    def pausing(*args: Any, **kwargs: Any) -> Any:
        if first_thread == [threading.get_ident()] and not entered.is_set():
            entered.set()
            go.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, pausing)
    outcome = Outcome(second_waited=False)

    def run(label: str, work: Callable[[], Any]) -> None:
        if label == "first":
            first_thread.append(threading.get_ident())
        try:
            outcome.results[label] = work()
        except BaseException as exc:  # the test asserts on it
            outcome.results[label] = exc
        finally:
            if label == "first":
                entered.set()  # should it end without reaching the pause

    one = threading.Thread(target=run, args=("first", first))
    one.start()
    assert entered.wait(30), "the first party never reached the pause"
    two = threading.Thread(target=run, args=("second", second))
    two.start()
    two.join(WAIT)
    outcome.second_waited = two.is_alive()
    go.set()
    one.join(30)
    two.join(30)
    assert not one.is_alive() and not two.is_alive(), "a party is still waiting: deadlock"
    return outcome


def main_contact_cases(db: Database, env: WorkflowEnv) -> tuple[str, str]:
    """Olive is the Main Contact; two cases each ask to replace her, both awaiting approval."""
    with db.transaction() as session:
        directory.set_main_contact(
            session,
            org_code="A81001",
            email="olive.old@nhs.net",
            name="Olive Old",
            actor="test",
            reason="setup",
        )
    sam = open_request(
        db,
        env,
        email_request("main_contact", nominees=[], main_contact=SAM),
    )
    ruth = open_request(
        db,
        env,
        email_request(
            "main_contact",
            nominees=[],
            main_contact={"name": "Ruth Roe", "email": "ruth.roe@nhs.net"},
        ),
        sender=("Other Manager", "other.manager@nhs.net"),
    )
    assert case_of(db, sam).state == case_of(db, ruth).state == "awaiting_approval"
    return sam, ruth


def test_two_answers_replacing_one_main_contact_cannot_both_apply(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both approvers were asked to replace Olive. Whichever answer comes second finds
    Olive gone and goes to a person; it never ends the Main Contact the first just made."""
    env = make_env()
    sam, ruth = main_contact_cases(pgdb, env)
    outcome = second_waits_for_first(
        monkeypatch,
        lambda: answer(pgdb, env, ruth, GUARDIAN, "Approved"),
        lambda: answer(pgdb, env, sam, GUARDIAN, "Approved"),
        paused_at=(approvals, "close"),
    )
    assert outcome.second_waited
    assert case_of(pgdb, ruth).state == "completed"
    assert case_of(pgdb, sam).state == "triage"
    assert "changes_unchanged" in failed_checks(pgdb, sam)
    assert holders(pgdb, "A81001", "main_contact") == ["ruth.roe@nhs.net"]
    told = [m.to_address for m in outbox(pgdb, "main_contact_replaced")]
    assert told == ["olive.old@nhs.net"]


def test_a_confirmed_plan_is_refused_once_another_case_changed_the_organisation(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caseworker confirmed a plan that ends Olive; an answer on the other case applies
    first. The plan no longer holds: refused as stale, and Sam stays Main Contact."""
    env = make_env()
    sam, ruth = main_contact_cases(pgdb, env)
    with pgdb.transaction() as session:
        shown = plan_for(session, env, get_case(session, ruth), actor="casey")

    def caseworker_approves() -> object:
        with pgdb.transaction() as session:
            return actions.approve(
                session, env, ruth, by="casey", reason="phoned", plan_digest=shown.digest
            )

    outcome = second_waits_for_first(
        monkeypatch,
        lambda: answer(pgdb, env, sam, GUARDIAN, "Approved"),
        caseworker_approves,
        paused_at=(approvals, "close"),
    )
    assert outcome.second_waited
    assert isinstance(outcome.results["second"], StalePlan)
    assert holders(pgdb, "A81001", "main_contact") == ["sam.lee@nhs.net"]
    assert case_of(pgdb, ruth).state == "awaiting_approval"


UNRECORDED_SIGNER = {
    "name": "Dr Una Known",
    "email": "una.known@nhs.net",
    "capacity": "gp_partner",
    "date": "2026-03-01",
    "declaration": True,
}


def test_an_approval_waits_for_a_correction_and_is_refused_as_stale(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One caseworker corrects the nominee's address while another approves the plan they
    saw with the old one: the approval waits, then finds the plan changed."""
    env = make_env()
    ref = open_request(pgdb, env, gpp_form(signer=UNRECORDED_SIGNER))
    assert case_of(pgdb, ref).state == "triage"
    with pgdb.transaction() as session:
        shown = plan_for(session, env, get_case(session, ref), actor="alice")

    def correct() -> object:
        with pgdb.transaction() as session:
            return corrections.correct(
                session,
                env,
                ref,
                field="nominees.0.email",
                value="jane.smith.correct@nhs.net",
                by="bob",
                reason="the practice phoned: the form was misread",
            )

    def approve() -> object:
        with pgdb.transaction() as session:
            return actions.approve(
                session, env, ref, by="alice", reason="seen", plan_digest=shown.digest
            )

    outcome = second_waits_for_first(
        monkeypatch, correct, approve, paused_at=(corrections, "record")
    )
    assert outcome.second_waited
    assert isinstance(outcome.results["second"], StalePlan)
    assert holders(pgdb, "A81001", "gpp") == []
    assert case_of(pgdb, ref).fields["nominees"][0]["email"] == "jane.smith.correct@nhs.net"


def test_no_approver_is_asked_once_an_answer_has_closed_the_case(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    ref = open_request(
        pgdb,
        env,
        email_request("main_contact", nominees=[], main_contact=SAM),
    )

    def ask_another() -> object:
        with pgdb.transaction() as session:
            return actions.send_approval_request(
                session, env, ref, by="casey", approver_email=ICB_CONTACT[1]
            )

    outcome = second_waits_for_first(
        monkeypatch,
        lambda: answer(pgdb, env, ref, GUARDIAN, "Approved"),
        ask_another,
        paused_at=(approvals, "close"),
    )
    assert outcome.second_waited
    assert isinstance(outcome.results["second"], ActionRefused)
    assert case_of(pgdb, ref).state == "completed"
    with pgdb.transaction() as session:
        case_id = session.scalar(select(Case.id).where(Case.ref == ref))
        still_open = session.scalars(
            select(ApprovalRequest).where(
                ApprovalRequest.case_id == case_id, ApprovalRequest.status == "open"
            )
        ).all()
    assert still_open == []
    assert outbox(pgdb, "approval_request", to=ICB_CONTACT[1]) == []


def test_two_answers_on_one_case_at_once_decide_it_once_without_a_deadlock(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both approvers answer APPROVE at the same moment: each closes its own code first and
    then the others'; without the case held first, they locked the codes in opposite
    orders and PostgreSQL aborted one as a deadlock (read by intake as the database gone)."""
    env = make_env()
    ref = open_request(pgdb, env, email_request("main_contact", nominees=[], main_contact=SAM))
    codes = {person: token_for(pgdb, ref, person[1]) for person in (PARTNER, GUARDIAN)}
    outcome = second_waits_for_first(
        monkeypatch,
        lambda: answer(pgdb, env, ref, PARTNER, "Approved", token=codes[PARTNER]),
        lambda: answer(pgdb, env, ref, GUARDIAN, "Approved", token=codes[GUARDIAN]),
        paused_at=(approvals, "close"),
    )
    assert outcome.second_waited
    for label in ("first", "second"):
        assert not isinstance(outcome.results[label], BaseException), outcome.results[label]
    assert case_of(pgdb, ref).state == "completed"
    assert holders(pgdb, "A81001", "main_contact") == ["sam.lee@nhs.net"]
    assert "refused" in str(outcome.results["second"]).lower()


@pytest.mark.parametrize("which", ["pgdb", "sqlite_db"])
def test_two_caseworkers_taking_one_case_one_is_told_it_moved(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """On SQLite, whose driver reads outside any transaction until the first write, the
    hold takes the write lock first (BEGIN IMMEDIATE): the second read waits there."""
    db: Database = request.getfixturevalue(which)
    env = make_env()
    ref = open_request(db, env, gpp_form(signer=UNRECORDED_SIGNER))
    caseworkers(db, "alice@nhs.net", "bob@nhs.net")

    def take(who: str) -> Callable[[], None]:
        def taking() -> None:
            with db.transaction() as session:
                _assign(session, env, ref, who, who, {"assignee": ""})  # as both pages showed

        return taking

    outcome = second_waits_for_first(
        monkeypatch, take("alice@nhs.net"), take("bob@nhs.net"), paused_at=(actions, "record")
    )
    assert outcome.second_waited
    assert isinstance(outcome.results["second"], ChangedSinceShown)
    case = case_of(db, ref)
    assert case.assigned_to == "alice@nhs.net"
    assert [e.event for e in case.events].count("assigned") == 1


PAT = "pat.person@nhs.net"
GPP = "GPP Practice User Administrator"
PL = "PL Organisation Administrator"


def pat_with_one_role(db: Database) -> None:
    with db.transaction() as session:
        directory.grant_role(
            session,
            org_code="B82002",
            email=PAT,
            name="Pat Person",
            role=PL,
            actor="test",
            reason="setup",
        )


def open_roles_of_pat(db: Database) -> tuple[bool, list[str]]:
    with db.transaction() as session:
        person = session.scalars(select(Person).where(Person.email == PAT)).one()
        roles = session.scalars(
            select(RoleAssignment.role).where(
                RoleAssignment.person_id == person.id, RoleAssignment.ended_at.is_(None)
            )
        ).all()
        return person.active, list(roles)


def grant_pat(db: Database) -> Callable[[], object]:
    def granting() -> object:
        with db.transaction() as session:
            return directory.grant_role(
                session,
                org_code="A81001",
                email=PAT,
                name="Pat Person",
                role=GPP,
                actor="worker",
                reason="a case applied",
            )

    return granting


def deactivate_pat(db: Database) -> Callable[[], object]:
    def deactivating() -> object:
        with db.transaction() as session:
            return directory.deactivate_person(
                session, email=PAT, actor="casey", reason="left the NHS"
            )

    return deactivating


def test_a_deactivation_waits_for_a_grant_and_ends_it_too(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant at a practice where Pat held nothing, and Pat's deactivation: the
    deactivation waits, then ends the new role with the old one."""
    pat_with_one_role(pgdb)
    outcome = second_waits_for_first(
        monkeypatch, grant_pat(pgdb), deactivate_pat(pgdb), paused_at=(directory, "_assign")
    )
    assert outcome.second_waited
    assert open_roles_of_pat(pgdb) == (False, [])


def test_a_grant_waits_for_a_deactivation_and_is_refused(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pat_with_one_role(pgdb)
    outcome = second_waits_for_first(
        monkeypatch,
        deactivate_pat(pgdb),
        grant_pat(pgdb),
        paused_at=(directory, "record_event"),
    )
    assert outcome.second_waited
    refused = outcome.results["second"]
    assert isinstance(refused, directory.RuleViolation) and "deactivated" in str(refused)
    assert open_roles_of_pat(pgdb) == (False, [])


def test_a_merge_holds_both_cases_before_any_organisation(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge holds both cases before their organisation, as every other holder holds a
    case before its organisation. Holding one case and its organisation before the other,
    it deadlocked with a caseworker who held the other and waited for the organisation."""
    env = make_env()
    original = open_request(pgdb, env, gpp_form(signer=UNRECORDED_SIGNER))
    duplicate = open_request(pgdb, env, gpp_form(signer=UNRECORDED_SIGNER))
    caseworkers(pgdb, "bob@nhs.net")

    def merge() -> object:
        with pgdb.transaction() as session:
            return merge_cases.merge(
                session, env, duplicate, into=original, by="casey", reason="the same request"
            )

    def take_original() -> object:
        with pgdb.transaction() as session:
            return actions.assign(session, env, original, to="bob@nhs.net", by="bob@nhs.net")

    # Paused just before the merge takes its first organisation: both cases held by then.
    outcome = second_waits_for_first(
        monkeypatch, merge, take_original, paused_at=(cases, "_hold_organisations")
    )
    outcome.assert_waited_and_both_ended_well()
    assert case_of(pgdb, duplicate).merged_into_id == case_of(pgdb, original).id
    assert case_of(pgdb, original).assigned_to == "bob@nhs.net"


def test_a_bulk_take_waits_for_a_take_from_the_case_page_and_refuses(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    ref = open_request(pgdb, env, gpp_form(signer=UNRECORDED_SIGNER))
    caseworkers(pgdb, "alice@nhs.net", "bob@nhs.net")

    def from_the_page() -> None:
        with pgdb.transaction() as session:
            _assign(session, env, ref, "alice@nhs.net", "alice@nhs.net", {"assignee": ""})

    def from_the_queue() -> bulk.BulkResult:
        return bulk.run_bulk(pgdb, env, bulk.ASSIGN_ME, [f"case:{ref}"], by="bob@nhs.net")

    outcome = second_waits_for_first(
        monkeypatch, from_the_page, from_the_queue, paused_at=(actions, "record")
    )
    assert outcome.second_waited
    result = outcome.results["second"]
    assert result.done == [] and len(result.refused) == 1 and "alice" in result.refused[0]
    assert case_of(pgdb, ref).assigned_to == "alice@nhs.net"


@pytest.fixture
def sqlite_db(sqlite_database: Database) -> Database:
    with sqlite_database.transaction() as session:
        seed(session)
    return sqlite_database


def test_a_deactivation_never_waits_for_an_organisation_while_holding_the_person(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant at A81001 holds it and Pat; the deactivation locks B82002 and waits for Pat;
    a second grant at A81001 waits for the organisation. Once the first grant commits, the
    deactivation finds the new role at A81001: it gives Pat back before it waits for
    A81001, so the second grant can go on (and is then refused), and nothing deadlocks."""
    pat_with_one_role(pgdb)

    def second_grant() -> object:
        with pgdb.transaction() as session:
            return directory.grant_role(
                session,
                org_code="A81001",
                email=PAT,
                name="Pat Person",
                role="PL Organisation Administrator",
                actor="another worker",
                reason="another case",
            )

    late: dict[str, Any] = {}

    def deactivate_then_another_grant() -> object:
        later = threading.Thread(target=lambda: late.update(result=_caught(second_grant)))
        later.start()
        try:
            return deactivate_pat(pgdb)()
        finally:
            later.join(30)

    outcome = second_waits_for_first(
        monkeypatch,
        grant_pat(pgdb),
        deactivate_then_another_grant,
        paused_at=(directory, "_assign"),
    )
    assert outcome.second_waited
    for result in (*outcome.results.values(), late["result"]):
        assert "deadlock" not in str(result).lower(), result
    assert open_roles_of_pat(pgdb) == (False, [])


def _caught(work: Callable[[], object]) -> object:
    try:
        return work()
    except Exception as exc:  # the test asserts on it
        return exc


def test_on_sqlite_the_approve_preview_takes_the_write_lock_before_its_savepoint(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preview runs the approval in a savepoint it rolls back. SQLite opens a deferred
    transaction at a savepoint, so the write lock is taken before it: intake committing
    meanwhile waits, instead of failing the preview with "database is locked"."""
    env = make_env()
    ref = open_request(sqlite_db, env, gpp_form(signer=UNRECORDED_SIGNER))

    def preview() -> object:
        with sqlite_db.transaction() as session:
            return _preview(session, env, ref, "casey@nhs.net")

    outcome = second_waits_for_first(
        monkeypatch,
        preview,
        lambda: open_request(sqlite_db, env, gpp_form(signer=UNRECORDED_SIGNER)),
        paused_at=(directory, "_person_for"),
    )
    outcome.assert_waited_and_both_ended_well()


@pytest.mark.parametrize("which", ["pgdb", "sqlite_db"])
def test_a_bounce_noted_on_a_case_holds_it(request: pytest.FixtureRequest, which: str) -> None:
    """Noting a bounce writes a history line whose reference to the case locks its row
    (PostgreSQL's KEY SHARE); held as any other work on a case, so that intake ends the
    batch's transaction after it (tests/test_intake_batches.py)."""
    db: Database = request.getfixturevalue(which)
    env = make_env()
    ref = open_request(db, env, gpp_form(signer=UNRECORDED_SIGNER))
    with db.transaction() as session:
        case = get_case(session, ref)
        row = inbound_row(session, mail_from(GUARDIAN, subject="Out of office"))
        automatic = Classification(MessageKind.AUTOMATIC, "out of office", case_id=case.id)
        assert not is_holding(session)
        WorkflowLink().note(session, row, automatic)
        assert is_holding(session)
    assert "automatic reply" in " ".join(e.detail for e in case_of(db, ref).events)


def test_an_answer_naming_a_second_case_holds_both_before_any_organisation(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer with Ruth's code in a reply on Sam's case is written on both (the refusal
    or the answer is recorded on the case the subject names too). Holding Ruth's case and
    the organisation before Sam's, it deadlocked with a caseworker holding Sam's and
    waiting for the organisation."""
    env = make_env()
    sam, ruth = main_contact_cases(pgdb, env)
    code = token_for(pgdb, ruth, GUARDIAN[1])

    def crossed_answer() -> object:
        subject = f"RE: [{sam}] Approval needed APV-{code}"
        return answer(pgdb, env, ruth, GUARDIAN, "Approved", token=code, subject=subject)

    def reject_sam() -> object:
        with pgdb.transaction() as session:
            return actions.reject(session, env, sam, by="casey", reason="phoned, not wanted")

    outcome = second_waits_for_first(
        monkeypatch, crossed_answer, reject_sam, paused_at=(answers, "note_message")
    )
    outcome.assert_waited_and_both_ended_well()
    assert case_of(pgdb, sam).state == "rejected"


def test_a_reminder_to_an_approver_holds_the_case_before_the_code(
    pgdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer holds the case, then closes its code; the reminder claimed the code first
    and then wrote on the case, and the two deadlocked. It now holds the case first: it
    waits, then finds the case decided and sends nothing."""
    env = make_env()
    sam, _ = main_contact_cases(pgdb, env)
    code = token_for(pgdb, sam, GUARDIAN[1])
    with pgdb.transaction() as session:
        asked = session.scalar(select(ApprovalRequest.id).where(ApprovalRequest.token == code))
    assert asked is not None

    outcome = second_waits_for_first(
        monkeypatch,
        lambda: answer(pgdb, env, sam, GUARDIAN, "Approved"),
        lambda: reminders._remind_approver(pgdb, env, asked),
        paused_at=(approvals, "close"),
    )
    assert outcome.second_waited
    assert outcome.results["second"] == 0  # nothing to remind of
    assert not isinstance(outcome.results["first"], BaseException), outcome.results["first"]
    assert case_of(pgdb, sam).state == "completed"
    assert outbox(pgdb, "approval_reminder") == []
