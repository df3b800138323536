"""Changing a case's kind: a caseworker re-routes a misread request.

The request is read again as the new kind where it can be (the email body by the email
reader told the kind; a form kind from the attached form of that kind), any approval
request still open is voided (what it asked about has changed), and the case goes to
triage, where a person decides what happens next. The history keeps who, why, and what
was read before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

import forms
from core.inbound import IncomingMail
from core.kinds import kind_title
from core.states import CaseKind, CaseState
from forms.model import Finding, ParsedRequest
from forms.normalise import clean_ods
from workflow.actions import ActionRefused
from workflow.cases import get_case, hold_case, move, record
from workflow.env import WorkflowEnv
from workflow.models import Case
from workflow.opening import read_forms
from workflow.persist import void_open_requests

S = CaseState

# A case's kind may be changed until it is decided.
CHANGEABLE = frozenset({S.RECEIVED, S.NEEDS_INFO, S.TRIAGE, S.AWAITING_APPROVAL})
FORM_KINDS = frozenset({CaseKind.GPP_ADMIN_FORM, CaseKind.USER_ADMIN_FORM, CaseKind.PCN_ADMIN_FORM})


@dataclass
class Rereading:
    """What reading the case's message again as the new kind gave, and what was said."""

    request: ParsedRequest | None
    note: str
    findings: list[Finding] = field(default_factory=list)


def can_change_kind(case: Case) -> bool:
    return CaseState(case.state) in CHANGEABLE


def title(kind: str) -> str:
    return kind_title(kind)


def reread(kind: str, mail: IncomingMail | None, env: WorkflowEnv) -> Rereading:
    """The case's original message read as `kind`, where a reader for that kind exists."""
    if mail is None:
        return Rereading(None, "The original message is not available; nothing was read again.")
    if kind in FORM_KINDS:
        recognised, _ = read_forms(mail, env.pdf_limits)
        for filename, request in recognised:
            if request.kind == kind:
                return Rereading(request, f"{filename} was read again as {title(kind)}.")
        missing = Finding(
            "form_required",
            f"No {title(kind)} is attached to the request; the signed form is needed.",
        )
        return Rereading(
            None, f"No {title(kind)} was found among the attachments.", findings=[missing]
        )
    sender = mail.sender_identity.address or ""
    request = forms.read_email_request(mail.subject or "", mail.text or "", sender, kind=kind)
    return Rereading(request, f"The email was read again as {title(kind)}.")


def _check_change(case: Case, kind: str) -> None:
    if not can_change_kind(case):
        raise ActionRefused(
            f"Case {case.ref} is {case.state}; its kind can be changed only before it is decided."
        )
    if case.kind == kind:
        raise ActionRefused(f"Case {case.ref} is already of the kind {title(kind)}.")


def change_kind(
    session: Session,
    env: WorkflowEnv,
    ref: str,
    *,
    kind: str,
    by: str,
    reason: str,
    mail: IncomingMail | None,
) -> Case:
    """Re-route the case to `kind`, reading it again; `mail` is its original message."""
    if not by.strip():
        raise ActionRefused("Say who is acting (--by).")
    if not reason.strip():
        raise ActionRefused("Give a reason for the case history.")
    if kind not in set(CaseKind):
        known = ", ".join(str(k) for k in CaseKind)
        raise ActionRefused(f"There is no case kind {kind!r}; the kinds are {known}.")
    # The message is read again before the case is held: reading a scanned form may take
    # the PDF and OCR timeouts, and holding the case holds its organisation too (and on
    # SQLite the one write lock), so intake and every other writer would wait behind it.
    # What is read depends only on the kind and the message, never on the case, so the
    # checks are made again once the case is held, on the case as it then is.
    _check_change(get_case(session, ref), kind)
    again = reread(kind, mail, env)
    case = hold_case(session, ref)
    _check_change(case, kind)
    old = case.kind
    before = {
        "fields": case.fields,
        "findings": case.findings,
        "organisation": case.organisation_code,
    }
    void_open_requests(
        session, env, case, actor=by, reason=f"The request was re-routed to the kind {title(kind)}."
    )
    case.kind = kind
    if again.request is not None:
        case.fields = again.request.fields
        case.findings = again.request.findings_as_dicts()
        code = clean_ods(again.request.fields.get("organisation_code") or "")
        case.organisation_code = code or case.organisation_code
    case.findings = [*(case.findings or []), *(f.as_dict() for f in again.findings)]
    record(
        session,
        case,
        "kind_changed",
        f"{by} changed the kind from {title(old)} to {title(kind)}: {reason}. {again.note}",
        actor=by,
        at=env.clock.now(),
        data={"from": old, "to": kind, "by": by, "reason": reason, "before": before},
    )
    if case.state != S.TRIAGE:
        move(
            session,
            case,
            S.TRIAGE,
            actor=by,
            now=env.clock.now(),
            reason=f"Re-routed to the kind {title(kind)} by {by}; a caseworker decides "
            "what follows.",
        )
    else:
        case.reason = f"Re-routed to the kind {title(kind)} by {by}: {reason}"
    return case
