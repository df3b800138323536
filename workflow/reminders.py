"""Reminders and expiry for cases waiting on a person, safe to run from several schedulers.

Each reminder and each expiry is claimed with a guarded UPDATE (`… WHERE reminded_at IS
NULL`, `… WHERE state = :expected`) in its own transaction, so when two schedulers run at
once only one of them sends it. A case due for expiry expires without a reminder.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import Database, rowcount
from core.states import WAITING_STATES, CaseState, IllegalTransition
from workflow import approvals
from workflow.approval_mail import approval_context
from workflow.cases import StaleCase, hold_case_by_id, move, record
from workflow.env import WorkflowEnv
from workflow.mail import opened_unvouched
from workflow.models import ApprovalRequest, Case
from workflow.outcomes import in_our_words
from workflow.persist import GENERATED, notify, source_message

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def run_due(db: Database, env: WorkflowEnv) -> dict[str, int]:
    """Expire what waited too long, then remind approvers and requesters; the counts done."""
    now = env.clock.now()
    expire_before = now - timedelta(days=env.expire_after_days)
    remind_before = now - timedelta(days=env.reminder_after_days)
    report = {"reminders": 0, "expired": 0}
    for case_id in _ids(
        db,
        select(Case.id).where(
            Case.state.in_([str(s) for s in WAITING_STATES]), Case.waiting_since <= expire_before
        ),
    ):
        report["expired"] += _expire(db, env, case_id)
    for approval_id in _ids(
        db,
        select(ApprovalRequest.id)
        .join(Case, Case.id == ApprovalRequest.case_id)
        .where(
            ApprovalRequest.status == "open",
            ApprovalRequest.reminded_at.is_(None),
            ApprovalRequest.created_at <= remind_before,
            Case.state == str(CaseState.AWAITING_APPROVAL),
        ),
    ):
        report["reminders"] += _remind_approver(db, env, approval_id)
    for case_id in _ids(
        db,
        select(Case.id).where(
            Case.state == str(CaseState.NEEDS_INFO),
            Case.reminded_at.is_(None),
            Case.waiting_since <= remind_before,
        ),
    ):
        report["reminders"] += _remind_requester(db, env, case_id)
    if report["reminders"] or report["expired"]:
        log.info("reminders sent: %d, cases expired: %d", report["reminders"], report["expired"])
    return report


def _ids(db: Database, query) -> list[int]:
    with db.transaction() as session:
        return list(session.scalars(query.order_by(query.selected_columns[0])))


def _expire(db: Database, env: WorkflowEnv, case_id: int) -> int:
    try:
        with db.transaction() as session:
            case = session.get_one(Case, case_id)
            if case is None or CaseState(case.state) not in WAITING_STATES:
                return 0
            expire_case(session, env, case)
            return 1
    except (StaleCase, IllegalTransition):
        # Another scheduler, or a person, moved it first.
        return 0


def expire_case(session: Session, env: WorkflowEnv, case: Case) -> None:
    now = env.clock.now()
    awaiting = case.state == CaseState.AWAITING_APPROVAL
    waited = "the approver's answer" if awaiting else "the requester's reply"
    approvers = [a.approver_name for a in approvals.open_requests(session, case)]
    move(
        session,
        case,
        CaseState.EXPIRED,
        actor=ACTOR,
        now=now,
        reason=f"No answer in {env.expire_after_days:g} days: {waited} never came.",
    )
    closed = approvals.close_all_open(session, case, "expired", now=now)
    if closed:
        record(
            session,
            case,
            "approval",
            f"Approval requests expired: {', '.join(closed)}.",
            actor=ACTOR,
            at=now,
            data={"expired": closed},
        )
    notify(
        session,
        env,
        case,
        "outcome_expired",
        to=case.requester,
        name=case.requester_name,
        context={"waited_for": waited_for(awaiting, approvers)},
        reply_to=source_message(session, case),
    )


def waited_for(awaiting_approval: bool, approvers: list[str]) -> str:
    """Whose answer did not come, as the expiry email says it."""
    if not awaiting_approval:
        return "your reply to our email asking for what was missing"
    if not approvers:
        return "the approver's answer"
    return f"an answer from {' or '.join(approvers)} (the approver we asked)"


def _claim(session: Session, model, row_id: int, now: datetime, *conditions) -> bool:
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.reminded_at.is_(None), *conditions)
        .values(reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def _remind_approver(db: Database, env: WorkflowEnv, approval_id: int) -> int:
    with db.transaction() as session:
        now = env.clock.now()
        case_id = session.scalar(
            select(ApprovalRequest.case_id).where(ApprovalRequest.id == approval_id)
        )
        if case_id is None:
            return 0
        # The case before its code, as an answer takes them (workflow.cases.hold_case).
        case = hold_case_by_id(session, case_id)
        if not _claim(session, ApprovalRequest, approval_id, now, ApprovalRequest.status == "open"):
            return 0
        approval = session.get_one(ApprovalRequest, approval_id)
        if case.state != CaseState.AWAITING_APPROVAL:
            return 0
        record(
            session,
            case,
            "reminder",
            f"Reminder sent to {approval.approver_email} ({approvals.masked(approval.token)}).",
            actor=ACTOR,
            at=now,
            data={"to": approval.approver_email, "token": approvals.masked(approval.token)},
        )
        notify(
            session,
            env,
            case,
            "approval_reminder",
            to=approval.approver_email,
            name=approval.approver_name,
            context=approval_context(session, case, approval, env.from_address),
            auto_submitted=GENERATED,
        )
        return 1


def _remind_requester(db: Database, env: WorkflowEnv, case_id: int) -> int:
    with db.transaction() as session:
        now = env.clock.now()
        if not _claim(session, Case, case_id, now, Case.state == str(CaseState.NEEDS_INFO)):
            return 0
        case = session.get_one(Case, case_id)
        recorded = case.findings or []
        if opened_unvouched(session, case):
            findings = [in_our_words(f.get("code", ""), f.get("field")) for f in recorded]
        else:
            findings = [f.get("message", "") for f in recorded if f.get("message")]
        if not findings and case.reason:
            findings = [case.reason]
        record(
            session,
            case,
            "reminder",
            f"Reminder sent to the requester {case.requester}.",
            actor=ACTOR,
            at=now,
            data={"to": case.requester},
        )
        notify(
            session,
            env,
            case,
            "requester_reminder",
            to=case.requester,
            name=case.requester_name,
            context={"findings": findings},
            reply_to=source_message(session, case),
        )
        return 1
