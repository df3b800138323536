"""A caseworker corrects a value that was read wrong or not read, and the case goes on.

The value is checked as the readers check it (workflow.correct_values), written to the
history with who, why, the old and the new value, and marked in the reading as a
caseworker's (fields["readings"][path]["source"] = "caseworker"). Any open approval request
no longer counts: its approver was shown the old values. Then the case is decided again by
the same pure decision code as a new request, with two differences that keep a person in
charge: the sender's own authority never grants a corrected request (the sender did not
write the corrected value), and a sender nobody vouched for never reaches an approver.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from core.states import CaseState
from forms.model import ParsedRequest
from forms.normalise import normalise_email
from workflow.approval_plan import CASEWORKER_SOURCE
from workflow.cases import hold_case, move, record
from workflow.correct_values import (
    CorrectionRefused,
    check_path,
    checked_value,
    current_value,
    label_for,
    with_value,
)
from workflow.decisions import CASEWORKER_REQUEST, Action, Check, Decision, decide
from workflow.env import WorkflowEnv
from workflow.facts import gather_facts
from workflow.mail import UNVOUCHED
from workflow.merging import PDF_KINDS, findings_of
from workflow.models import Case
from workflow.outcomes import persist_decision
from workflow.persist import record_checks, source_message, void_open_requests

S = CaseState
# The states in which a case's reading can still change what happens to it.
ALLOWED = frozenset({S.NEEDS_INFO, S.TRIAGE, S.AWAITING_APPROVAL})
SOURCE = CASEWORKER_SOURCE  # a corrected value waits for a second person (approval_plan)
MISSING = "missing_field"  # the finding that a value was not given


@dataclass(frozen=True)
class Corrected:
    case: Case
    field: str
    old: Any
    new: Any
    voided: list[str]


def correct(
    session: Session, env: WorkflowEnv, ref: str, *, field: str, value: str, by: str, reason: str
) -> Corrected:
    """Set one value of the case's reading, record it, and decide the case again."""
    if not by.strip():
        raise CorrectionRefused("Say who is acting (--by).")
    if not reason.strip():
        raise CorrectionRefused("Give a reason for the case history.")
    case = hold_case(session, ref)
    if CaseState(case.state) not in ALLOWED:
        raise CorrectionRefused(
            f"Case {case.ref} is {case.state}; a value can be corrected only while the case "
            "is needs_info, triage or awaiting_approval."
        )
    fields = case.fields or {}
    path = check_path(fields, field)
    new = checked_value(case.kind, path, value)
    old = current_value(fields, path)
    if new == old:
        raise CorrectionRefused(f"The {label_for(path).lower()} is already {new!r}.")
    now = env.clock.now()
    updated = with_value(fields, path, new, case.kind)
    updated["readings"] = _marked(fields, path, new, by, now.isoformat())
    case.fields = updated
    if path == "organisation_code":
        case.organisation_code = new
    case.findings = _still_open(case, path)
    record(
        session,
        case,
        "correction",
        f"{by} corrected {label_for(path)} from {_shown(old)} to {_shown(new)}: {reason}",
        actor=by,
        at=now,
        data={"field": path, "old": old, "new": new, "by": by, "reason": reason},
    )
    voided = void_open_requests(
        session,
        env,
        case,
        actor=by,
        reason=f"A caseworker corrected the request ({label_for(path)}).",
    )
    _go_on(session, env, case, by)
    return Corrected(case, path, old, new, voided)


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(not read)"
    return ", ".join(map(str, value)) if isinstance(value, list) else repr(value)


def _marked(fields: dict[str, Any], path: str, new: Any, by: str, at: str) -> dict[str, Any]:
    """The per-field readings with this one marked as a caseworker's (its place on the page,
    if a scan gave one, kept for the page image)."""
    readings = dict(fields.get("readings") or {})
    for key in [k for k in readings if k.startswith(f"{path}.")]:
        # The boxes of a list (nominees.0.services.gpp) are set by the caseworker too.
        readings[key] = {**readings[key], "source": SOURCE, "corrected_by": by}
    before = dict(readings.get(path) or {})
    readings[path] = {
        **before,
        "value": new,
        "source": SOURCE,
        "confidence": 100.0,
        "corrected_by": by,
        "corrected_at": at,
        "was": before.get("value", current_value(fields, path)),
        "was_source": before.get("source"),
    }
    return readings


def _about(finding: dict[str, Any], path: str) -> bool:
    about = str(finding.get("field") or "")
    return bool(about) and (
        about == path or path.startswith(f"{about}.") or about.startswith(f"{path}.")
    )


def _filled(fields: dict[str, Any], path: str) -> bool:
    value = current_value(fields, path)
    if path.endswith("email"):
        return normalise_email(str(value or "")) is not None
    return bool(value)


def _still_open(case: Case, path: str) -> list[dict[str, Any]]:
    """The findings the correction does not settle. A caseworker's own question is answered
    by their correction, and so is every finding about the value corrected; a finding about
    a whole PDF form stays (only a new form settles it); a finding that another value is
    missing stays while it is, and any other finding about another value (a doubtful
    reading of a scan, say, which calls for a second person) stays."""
    fields = case.fields or {}
    kept = []
    for finding in case.findings or []:
        if finding.get("code") == CASEWORKER_REQUEST or _about(finding, path):
            continue
        about = finding.get("field")
        if about is None:
            if case.kind in PDF_KINDS:
                kept.append(finding)
        elif finding.get("code") != MISSING or not _filled(fields, about):
            kept.append(finding)
    return kept


def _go_on(session: Session, env: WorkflowEnv, case: Case, by: str) -> None:
    """Decide the case again from where it stands, as if it had been read this way."""
    now = env.clock.now()
    if case.state == S.AWAITING_APPROVAL:
        move(
            session,
            case,
            S.TRIAGE,
            actor=by,
            now=now,
            reason="A caseworker corrected the request while it awaited approval; it is "
            "read again.",
        )
    elif case.state == S.NEEDS_INFO:
        move(
            session,
            case,
            S.RECEIVED,
            actor=by,
            now=now,
            reason="A caseworker corrected the request; it is read again.",
        )
    decision = redecide(session, case)
    if decision.target_state == S.TRIAGE and case.state == S.TRIAGE:
        # Still a person's to decide: the decision and its checks go to the history.
        record_checks(session, case, decision.checks, actor=by, now=now)
        record(session, case, "decision", decision.reason, actor=by, at=now)
        case.reason = decision.reason
        return
    persist_decision(
        session,
        env,
        case,
        decision,
        actor=by,
        reply_to=source_message(session, case),
        echo=sender_vouched(session, case),
    )


def _sender_status(case: Case, inbound_id: int | None) -> str | None:
    """The sender verdict recorded when the request was received (workflow.opening)."""
    for event in case.events:
        data = event.data or {}
        if event.event == "message" and inbound_id and data.get("inbound_id") == inbound_id:
            return data.get("sender_status")
    return None


def sender_vouched(session: Session, case: Case) -> bool:
    """Did the receiving server vouch for the sender of the message that opened the case?"""
    source = source_message(session, case)
    status = _sender_status(case, source.id if source else None) or (
        source.sender_status if source else None
    )
    return bool(status) and status not in UNVOUCHED


def redecide(session: Session, case: Case) -> Decision:
    """The pure decision on the case as it now reads, kept from granting on the sender's own
    authority and from asking approvers for a sender nobody vouched for."""
    source = source_message(session, case)
    facts = gather_facts(
        session,
        case.kind,
        case.fields or {},
        sender=source.from_address if source else None,
        sender_verified=False,
        requester=case.requester,
    )
    decision = decide(
        ParsedRequest(kind=case.kind, fields=case.fields or {}, findings=findings_of(case)), facts
    )
    if decision.action is Action.APPROVE or (
        decision.action is Action.ASK_APPROVERS and not sender_vouched(session, case)
    ):
        why = (
            "the corrected request would be granted on the sender's own authority, but the "
            "sender did not write the corrected value"
            if decision.action is Action.APPROVE
            else "nobody vouched for the sender of the request"
        )
        return replace(
            decision,
            action=Action.TRIAGE,
            approvers=(),
            checks=(*decision.checks, Check("corrected", False, why[0].upper() + why[1:] + ".")),
            reason=f"After the correction, {why}; a caseworker approves it or asks an approver.",
        )
    return decision
