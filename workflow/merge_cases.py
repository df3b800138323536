"""Merging a duplicate case into the original: one case, one reference for the requester.

The duplicate's messages (received and sent) move to the original, so the original's page
and thread hold them all; its history is copied into the original's as "merged" rows (its
own rows stay where they are, append-only). Its open approval requests no longer count and
their approvers are told. The duplicate is withdrawn, pointing at the original, and mail
that quotes its reference reaches the original. The requester is told the one reference
to keep.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.db import rowcount
from core.states import FINAL_STATES, CaseState
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow.cases import hold_cases, move, record
from workflow.env import WorkflowEnv
from workflow.mail import opened_unvouched
from workflow.models import Case
from workflow.notes import HelpdeskRefused
from workflow.persist import notify, source_message, void_open_requests

S = CaseState
MERGED_EVENT = "merged"
# A duplicate leaves for withdrawn; from awaiting approval it passes through triage.
MERGEABLE = frozenset({S.NEEDS_INFO, S.TRIAGE, S.AWAITING_APPROVAL})


def _check(duplicate: Case, original: Case) -> None:
    if duplicate.id == original.id:
        raise HelpdeskRefused(f"Case {duplicate.ref} cannot be merged into itself.")
    if CaseState(duplicate.state) not in MERGEABLE:
        closed = "closed" if CaseState(duplicate.state) in FINAL_STATES else "being read"
        raise HelpdeskRefused(
            f"Case {duplicate.ref} is {duplicate.state} ({closed}); only a case that is "
            "needs_info, triage or awaiting_approval can be merged into another."
        )
    if CaseState(original.state) in FINAL_STATES:
        raise HelpdeskRefused(
            f"Case {original.ref} is {original.state} (closed); merge into an open case, or "
            "reply on the duplicate instead."
        )
    _require_one_request(duplicate, original)


def _require_one_request(duplicate: Case, original: Case) -> None:
    """A duplicate is the same request sent again: about the same organisation, or from
    the same requester where one of them names none. A mistyped reference would otherwise
    bury one person's request in a stranger's case, and tell them to use its reference."""
    ours, theirs = duplicate.organisation_code, original.organisation_code
    if ours and theirs and ours != theirs:
        raise HelpdeskRefused(
            f"Case {duplicate.ref} is about {ours} and case {original.ref} about {theirs}: "
            "they are not one request. Check the references."
        )
    same_requester = (duplicate.requester or "").lower() == (original.requester or "").lower()
    if not (ours and ours == theirs) and not same_requester:
        raise HelpdeskRefused(
            f"Case {duplicate.ref} and case {original.ref} share neither the requester nor "
            "the organisation: they are not one request. Check the references; if they are "
            f"one, correct the organisation first (pcse case correct {duplicate.ref} "
            "organisation_code CODE), or withdraw the duplicate."
        )


def merge(session: Session, env: WorkflowEnv, ref: str, *, into: str, by: str, reason: str) -> Case:
    """Merge case `ref` into case `into`; returns the original."""
    if not by.strip():
        raise HelpdeskRefused("Say who is acting (--by).")
    if not reason.strip():
        raise HelpdeskRefused("Give a reason for the case history.")
    held = hold_cases(session, [ref, into])
    duplicate, original = held[ref], held[into]
    _check(duplicate, original)
    now = env.clock.now()
    void_open_requests(
        session,
        env,
        duplicate,
        actor=by,
        reason=f"The request was merged into case {original.ref}.",
    )
    copied = _copy_history(session, duplicate, original)
    moved_in, moved_out = _move_messages(session, duplicate, original)
    record(
        session,
        original,
        MERGED_EVENT,
        f"{by} merged case {duplicate.ref} into this case ({moved_in} message(s) received, "
        f"{moved_out} sent, {copied} history row(s)): {reason}",
        actor=by,
        at=now,
        data={"merged_from": duplicate.ref, "by": by, "reason": reason},
    )
    record(
        session,
        duplicate,
        MERGED_EVENT,
        f"{by} merged this case into {original.ref}: {reason}",
        actor=by,
        at=now,
        data={"merged_into": original.ref, "by": by, "reason": reason},
    )
    duplicate.merged_into_id = original.id
    if duplicate.state == S.AWAITING_APPROVAL:
        move(
            session,
            duplicate,
            S.TRIAGE,
            actor=by,
            now=now,
            reason=f"Being merged into {original.ref}.",
        )
    move(
        session,
        duplicate,
        S.WITHDRAWN,
        actor=by,
        now=now,
        reason=f"Merged into {original.ref} by {by}: {reason}",
        data={"merged_into": original.ref},
    )
    notify(
        session,
        env,
        original,
        "case_merged",
        to=duplicate.requester,
        name=duplicate.requester_name,
        context={"duplicate_ref": duplicate.ref},
        reply_to=source_message(session, duplicate),
        auto_submitted="no",
        # The duplicate's words, as much as the original's (workflow.mail.opened_unvouched).
        echo=not opened_unvouched(session, duplicate),
    )
    return original


def _copy_history(session: Session, duplicate: Case, original: Case) -> int:
    """The duplicate's history, as rows of the original's (each naming where it came from)."""
    for event in duplicate.events:
        record(
            session,
            original,
            MERGED_EVENT,
            f"[{duplicate.ref}] {event.detail}",
            actor=event.actor,
            at=event.at,
            data={
                "merged_from": duplicate.ref,
                "event": event.event,
                "from_state": event.from_state,
                "to_state": event.to_state,
            },
        )
    return len(duplicate.events)


def _move_messages(session: Session, duplicate: Case, original: Case) -> tuple[int, int]:
    received = session.execute(
        update(InboundMessage)
        .where(InboundMessage.case_id == duplicate.id)
        .values(case_id=original.id)
        .execution_options(synchronize_session="fetch")
    )
    sent = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.case_id == duplicate.id)
        .values(case_id=original.id)
        .execution_options(synchronize_session="fetch")
    )
    return rowcount(received), rowcount(sent)
