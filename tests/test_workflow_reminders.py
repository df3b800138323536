"""Reminders and expiry: sent once, on time, even with two schedulers."""

from __future__ import annotations

import threading

from core.clock import FixedClock
from core.db import Database
from tests.test_workflow_helpers import (
    GUARDIAN,
    MANAGER,
    NOW,
    PARTNER,
    answer,
    case_of,
    email_request,
    events,
    gpp_form,
    holders,
    make_env,
    open_request,
    outbox,
)
from workflow.reminders import run_due


def test_approver_reminded_then_case_expires(db: Database) -> None:
    clock = FixedClock(NOW)
    env = make_env(clock)
    ref = open_request(db, env, email_request("pl_admin"))
    assert run_due(db, env) == {"reminders": 0, "expired": 0}
    clock.advance(days=2, hours=23)
    assert run_due(db, env) == {"reminders": 0, "expired": 0}
    clock.advance(hours=1)
    assert run_due(db, env) == {"reminders": 2, "expired": 0}
    reminded = sorted(m.to_address for m in outbox(db, "approval_reminder"))
    assert reminded == sorted([PARTNER[1], GUARDIAN[1]])
    # The reminder carries the same token as the request.
    first = outbox(db, "approval_request", to=PARTNER[1])[0]
    again = outbox(db, "approval_reminder", to=PARTNER[1])[0]
    assert first.subject.split("APV-")[1][:20] in again.subject + again.body_text
    assert run_due(db, env) == {"reminders": 0, "expired": 0}

    clock.advance(days=7)
    assert run_due(db, env) == {"reminders": 0, "expired": 1}
    case = case_of(db, ref)
    assert case.state == "expired"
    (expired,) = outbox(db, "outcome_expired")
    assert expired.to_address == MANAGER[1]
    # A late answer finds its token expired and approves nothing.
    outcome = answer(db, env, ref, PARTNER, "APPROVE")
    assert "refused" in outcome.lower()
    assert holders(db, "A81001", "pl") == []
    assert any("expired" in e["detail"] for e in events(db, ref, "approval"))


def test_requester_reminded_on_needs_info_then_expired(db: Database) -> None:
    clock = FixedClock(NOW)
    env = make_env(clock)
    ref = open_request(db, env, gpp_form(signer=None))
    clock.advance(days=3)
    assert run_due(db, env) == {"reminders": 1, "expired": 0}
    (reminder,) = outbox(db, "requester_reminder")
    assert reminder.to_address == MANAGER[1]
    assert "Part B" in reminder.body_text
    clock.advance(days=7)
    assert run_due(db, env)["expired"] == 1
    assert case_of(db, ref).state == "expired"


def test_a_case_due_for_both_only_expires(db: Database) -> None:
    clock = FixedClock(NOW)
    env = make_env(clock)
    open_request(db, env, gpp_form())
    clock.advance(days=30)
    assert run_due(db, env) == {"reminders": 0, "expired": 1}
    assert outbox(db, "approval_reminder") == []


def test_two_schedulers_send_each_reminder_once(db: Database) -> None:
    clock = FixedClock(NOW)
    env = make_env(clock)
    for _ in range(3):
        open_request(db, env, email_request("pl_admin"))
    open_request(db, env, gpp_form(signer=None))
    clock.advance(days=4)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        try:
            barrier.wait()
            results.append(run_due(db, env))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r["reminders"] for r in results) == 7  # two signers x three cases + one requester
    assert len(outbox(db, "approval_reminder")) == 6
    assert len(outbox(db, "requester_reminder")) == 1

    clock.advance(days=10)
    results.clear()
    barrier.reset()
    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r["expired"] for r in results) == 4
    assert len(outbox(db, "outcome_expired")) == 4
