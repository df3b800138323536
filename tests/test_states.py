"""The case state table: every allowed move works, every other move is refused."""

from __future__ import annotations

import itertools
import threading

import pytest

from core.states import (
    FINAL_STATES,
    TRANSITIONS,
    CaseKind,
    CaseState,
    IllegalTransition,
)
from workflow.cases import StaleCase, create_case, format_ref, get_case, move
from workflow.models import Case

ALL_PAIRS = list(itertools.permutations(CaseState, 2))
ALLOWED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
FORBIDDEN = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def test_table_matches_the_design() -> None:
    S = CaseState
    assert TRANSITIONS[S.RECEIVED] == {
        S.NEEDS_INFO,
        S.AWAITING_APPROVAL,
        S.TRIAGE,
        S.APPROVED,
        S.REJECTED,
        S.ANSWERED,
    }
    assert TRANSITIONS[S.NEEDS_INFO] == {S.RECEIVED, S.TRIAGE, S.EXPIRED, S.WITHDRAWN}
    assert TRANSITIONS[S.AWAITING_APPROVAL] == {S.APPROVED, S.REJECTED, S.TRIAGE, S.EXPIRED}
    assert TRANSITIONS[S.TRIAGE] == {
        S.NEEDS_INFO,
        S.AWAITING_APPROVAL,
        S.APPROVED,
        S.REJECTED,
        S.ANSWERED,
        S.WITHDRAWN,
    }
    assert TRANSITIONS[S.APPROVED] == {S.COMPLETED, S.TRIAGE}
    assert TRANSITIONS[S.EXPIRED] == {S.TRIAGE}
    assert {S.COMPLETED, S.ANSWERED, S.REJECTED, S.EXPIRED, S.WITHDRAWN} == FINAL_STATES
    # A closed case goes back only to triage, and only by a person (workflow.actions).
    for final in FINAL_STATES:
        assert TRANSITIONS[final] == {S.TRIAGE}


def _case_in(session, state: CaseState) -> Case:
    case = create_case(session, kind=CaseKind.PL_ADMIN, requester="Jo@Example.NHS.net")
    session.flush()
    # Put the case straight into the wanted state; only the move under test is checked.
    case.state = str(state)
    session.flush()
    return case


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=lambda s: str(s))
def test_allowed_move(database, source: CaseState, target: CaseState) -> None:
    with database.transaction() as session:
        case = _case_in(session, source)
        move(session, case, target, actor="tester", reason="because")
    with database.transaction() as session:
        stored = get_case(session, case.ref)
        assert stored.state == target
        assert stored.reason == "because"
        last = stored.events[-1]
        assert (last.from_state, last.to_state, last.actor) == (source, target, "tester")


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=lambda s: str(s))
def test_forbidden_move_changes_nothing(sqlite_database, source, target) -> None:
    with sqlite_database.transaction() as session:
        case = _case_in(session, source)
        events_before = len(case.events)
    with sqlite_database.transaction() as session:
        case = get_case(session, case.ref)
        with pytest.raises(IllegalTransition, match=f"cannot move to {target}"):
            move(session, case, target, actor="tester", reason="no")
    with sqlite_database.transaction() as session:
        stored = get_case(session, case.ref)
        assert stored.state == source
        assert len(stored.events) == events_before


def test_refs_are_sequential_per_year(database) -> None:
    with database.transaction() as session:
        refs = [create_case(session, kind="other", requester="a@b.nhs.net").ref for _ in range(3)]
    assert refs[0].startswith("PCSE-") and len(refs[0]) == len("PCSE-2026-000001")
    numbers = [int(r.rsplit("-", 1)[1]) for r in refs]
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]
    assert format_ref(2026, 123) == "PCSE-2026-000123"


def test_stale_case_is_refused(database) -> None:
    """Two workers read the same case; the second to move it is told, and nothing changes."""
    with database.transaction() as session:
        ref = create_case(session, kind="other", requester="a@b.nhs.net").ref
    first = database.sessions()
    second = database.sessions()
    try:
        case_a = get_case(first, ref)
        case_b = get_case(second, ref)
        move(first, case_a, CaseState.TRIAGE, actor="worker-a", reason="a")
        first.commit()
        with pytest.raises(StaleCase, match="someone else acted on it first"):
            move(second, case_b, CaseState.ANSWERED, actor="worker-b", reason="b")
        second.rollback()
    finally:
        first.close()
        second.close()
    with database.transaction() as session:
        stored = get_case(session, ref)
        assert stored.state == CaseState.TRIAGE
        actors = [e.actor for e in stored.events if e.event == "transition"]
        assert actors == ["worker-a"]


@pytest.mark.postgres
def test_concurrent_moves_one_wins_on_postgres(pg_url) -> None:
    """Real concurrency: many threads race to move one case; exactly one succeeds."""
    from core.db import Database

    db = Database(pg_url)
    with db.transaction() as session:
        ref = create_case(session, kind="other", requester="a@b.nhs.net").ref
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        with db.sessions() as session:
            case = get_case(session, ref)
            barrier.wait()
            try:
                move(session, case, CaseState.TRIAGE, actor=f"w{n}", reason="race")
                session.commit()
                outcomes.append("won")
            except StaleCase:
                session.rollback()
                outcomes.append("stale")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["stale"] * 5 + ["won"]
    with db.transaction() as session:
        stored = get_case(session, ref)
        assert [e.to_state for e in stored.events if e.event == "transition"] == ["triage"]
    db.dispose()
