"""A reply on a known case: merged into a needs_info case and read again; any other reply is
noted and marked for a person (workflow.new_replies), and sent to triage while an approver
is asked."""

from __future__ import annotations

from sqlalchemy.orm import Session

import forms
from core.inbound import Classification, IncomingMail
from core.states import FINAL_STATES, CaseState
from forms.model import ParsedRequest
from intake import ledger
from intake.models import InboundMessage
from workflow import approvals, new_replies
from workflow.approvals import SenderCheck, check_sender
from workflow.cases import hold_case_by_id, move, record
from workflow.decisions import CASEWORKER_REQUEST
from workflow.env import WorkflowEnv
from workflow.merging import findings_of, merge_fields, replace_read
from workflow.models import Case
from workflow.opening import (
    decide_and_persist,
    note_message,
    read_forms,
    sender_of,
    tell_unreadable,
    to_triage,
)
from workflow.persist import (
    void_open_requests,
)
from workflow.replies import own_text


def case_reply(
    session: Session,
    env: WorkflowEnv,
    inbound: InboundMessage,
    mail: IncomingMail,
    classification: Classification,
) -> str:
    case = session.get(Case, classification.case_id) if classification.case_id else None
    if case is None:
        return "A reply on a case that does not exist; recorded on the ledger only."
    case = hold_case_by_id(session, case.id)  # a caseworker's correction waits, or is seen
    ledger.link_case(session, inbound, case.id)
    said = own_text(mail.text or "")
    sender = check_sender(mail, env)
    note_message(session, env, case, inbound, mail, "Reply received", sender=sender, said=said)
    address = sender.address
    state = CaseState(case.state)
    if state is CaseState.NEEDS_INFO:
        if not sender.passed:
            return to_triage(
                session,
                env,
                case,
                "A reply from an unverified sender came in; "
                f"{sender.verdict.detail} A caseworker must check who wrote it "
                "before it changes the request.",
                "unverified reply",
            )
        if address != (case.requester or "").casefold():
            # Only the requester completes their request; anyone else's words are read
            # by a person before they change who is set up.
            return to_triage(
                session,
                env,
                case,
                f"{address} answered the request for "
                f"information, but the request came from {case.requester}; a "
                "caseworker must check the reply.",
                "reply from someone else",
            )
        return _merge_reply(session, env, case, inbound, mail, said, sender)
    moved = _awaiting_approval(session, env, case, state, sender)
    # Any other reply is not what the case waits for: a person reads it, whatever the
    # state (workflow.new_replies); a closed case stays closed until a caseworker reopens it.
    why = (
        f"a reply came in on the {state.value} case"
        if state in FINAL_STATES
        else "the requester wrote again"
        if sender.passed and address == (case.requester or "").casefold()
        else "a message came in on the case"
    )
    marked = new_replies.mark(session, env, case, inbound, why)
    return moved or marked


def _awaiting_approval(
    session: Session, env: WorkflowEnv, case: Case, state: CaseState, sender: SenderCheck
) -> str | None:
    """While an approver is asked, a reply from the requester or the approver stops the
    wait: approvers' answers count only with the code, and a person reads the rest."""
    if state is not CaseState.AWAITING_APPROVAL:
        return None
    address = sender.address
    asked = {a.approver_email for a in approvals.open_requests(session, case)}
    if sender.passed and address == (case.requester or "").casefold():
        # "I did not send this", "please stop", a correction: approvers wait for a person.
        return to_triage(
            session,
            env,
            case,
            "The requester wrote while the case awaits "
            "approval; a caseworker must read it before any answer counts.",
            "requester wrote during approval",
        )
    if address in asked:
        if not sender.passed:
            # Never name an approver on the strength of a From header nobody vouched for.
            return to_triage(
                session,
                env,
                case,
                "A reply from an unverified sender came "
                "in while the case awaits approval; a caseworker must check who "
                "wrote it.",
                "unverified reply",
            )
        return to_triage(
            session,
            env,
            case,
            f"The approver {address} replied without the "
            "approval code; a caseworker must read the reply.",
            "approver replied without the code",
        )
    return None


def _merge_reply(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    inbound: InboundMessage,
    mail: IncomingMail,
    said: str,
    sender: SenderCheck,
) -> str:
    """Fold what the requester sent into the case, then read the case again."""
    now = env.clock.now()
    address, _ = sender_of(mail)
    asked_by_caseworker = any(f.code == CASEWORKER_REQUEST for f in findings_of(case))
    recognised, unreadable = read_forms(mail, env.pdf_limits)
    if recognised:
        filename, request = recognised[0]
        if request.kind != case.kind:
            record(
                session,
                case,
                "note",
                f"The reply carries a {request.kind} form; the case "
                f"was a {case.kind} and is now read as the new form.",
                at=now,
            )
            case.kind = str(request.kind)
        replace_read(case, request.fields, list(request.findings))
        what = f"a new form, {filename}"
    elif unreadable:
        tell_unreadable(session, env, case, inbound, unreadable)
        return f"{case.ref}: the attachment in the reply could not be read; requester told."
    elif asked_by_caseworker:
        request, what = None, "a message"
    else:
        request = forms.read_email_request(mail.subject or "", said, address)
        fields, findings = merge_fields(
            case.kind,
            case.fields or {},
            findings_of(case),
            request,
            said,
            exclude={address, *env.our_addresses},
        )
        replace_read(case, fields, findings)
        what = "the reply's text"
    void_open_requests(
        session,
        env,
        case,
        actor=address,
        reason="The requester sent more information, so the request is read again.",
    )
    if asked_by_caseworker:
        # A caseworker's question is answered in words only a person can judge.
        case.findings = [f for f in case.findings or [] if f.get("code") != CASEWORKER_REQUEST]
        move(
            session,
            case,
            CaseState.TRIAGE,
            actor=address,
            now=now,
            reason=f"The requester answered the caseworker's question with {what}.",
        )
        return f"{case.ref}: the requester answered; back to a caseworker."
    move(
        session,
        case,
        CaseState.RECEIVED,
        actor=address,
        now=now,
        reason=f"The requester replied with {what}; the case is read again.",
    )
    merged = ParsedRequest(
        kind=case.kind,
        fields=case.fields,
        findings=findings_of(case),
        source=request.source if request else "email_body",
    )
    return decide_and_persist(
        session,
        env,
        case,
        merged,
        sender,
        inbound,
        acknowledge=False,
        sender_words=mail.text,
        sender_subject=mail.subject,
    )
