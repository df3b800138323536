"""What the workflow does with each message intake hands it (contract: Handler).

NEW_REQUEST opens a case, reads the form or the body, acknowledges and decides.
CASE_REPLY on a needs_info case merges what the requester sent and reads the case again;
other replies are noted, and sent to triage when a person must look. APPROVAL_ANSWER is
verified (token, sender, DMARC) and, when every check passes, decides the case. Every
step is a row in the case's history. The handler runs inside intake's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import forms
from core.patterns import mask_tokens
from core.senderauth import Status
from forms.email_people import EMAIL
from forms.model import Finding, ParsedRequest
from forms.normalise import clean_ods, normalise_email
from workflow import approvals
from workflow.apply import approve_and_apply
from workflow.approvals import SenderCheck, Verification, check_sender, verify_answer
from workflow.cases import create_case, move, record
from workflow.decisions import CASEWORKER_REQUEST, Action, Check, Decision, decide
from workflow.env import WorkflowEnv
from workflow.facts import gather_facts
from workflow.inbound import Attachment, Classification, IncomingMail, MessageKind
from workflow.models import ApprovalRequest, Case, InboundMessage, OutboxMessage
from workflow.persist import (
    notify,
    persist_decision,
    record_checks,
    source_message,
    summary_lines,
    void_open_requests,
)
from workflow.replies import Answer, Verdict, own_text, read_answer, read_one_click
from workflow.states import FINAL_STATES, CaseKind, CaseState

Handler = Callable[[Session, InboundMessage, IncomingMail, Classification], str]

SYSTEM = "system"
# How much of a person's own words the history keeps (the raw message stays in the store).
QUOTE_LIMIT = 1000
PDF_KINDS = frozenset({CaseKind.GPP_ADMIN_FORM, CaseKind.USER_ADMIN_FORM,
                       CaseKind.PCN_ADMIN_FORM})


def handle_message(env: WorkflowEnv) -> Handler:
    """The handler intake calls for NEW_REQUEST, CASE_REPLY and APPROVAL_ANSWER messages."""

    def handler(session: Session, inbound: InboundMessage, mail: IncomingMail,
                classification: Classification) -> str:
        if classification.kind is MessageKind.NEW_REQUEST:
            return new_request(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.CASE_REPLY:
            return case_reply(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.APPROVAL_ANSWER:
            return approval_answer(session, env, inbound, mail, classification)
        return f"Not for the workflow: {classification.kind}."

    return handler


# --------------------------------------------------------------------------- reading


def is_pdf(attachment: Attachment) -> bool:
    return (attachment.content_type.lower() == "application/pdf"
            or attachment.filename.lower().endswith(".pdf")
            or attachment.data[:5] == b"%PDF-")


def first_problem(request: ParsedRequest) -> str:
    return request.findings[0].message if request.findings else "It is not a form we know."


def read_forms(mail: IncomingMail, limits: forms.PdfLimits | None = None
               ) -> tuple[list[tuple[str, ParsedRequest]], list[tuple[str, str]]]:
    """Each PDF attachment read: (filename, request) for recognised forms, and
    (filename, problem) for the rest."""
    recognised: list[tuple[str, ParsedRequest]] = []
    unreadable: list[tuple[str, str]] = []
    for attachment in mail.attachments:
        if not is_pdf(attachment):
            continue
        request = forms.read_pdf(attachment.data, limits)
        if request.kind:
            recognised.append((attachment.filename, request))
        else:
            unreadable.append((attachment.filename, first_problem(request)))
    return recognised, unreadable


# The requester of a case whose From header named no single mailbox: never deliverable.
NO_SENDER = "unknown@invalid"


def sender_of(mail: IncomingMail) -> tuple[str, str | None]:
    """The strict From reading's one address and display name (the case's requester)."""
    identity = mail.sender_identity
    if identity.address is None:
        return NO_SENDER, None
    return identity.address, (identity.display_name or None)


def _note_message(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                  mail: IncomingMail, what: str, *, sender: SenderCheck,
                  said: str | None = None) -> None:
    """A history row for a message received on the case: who (and whether anyone vouched
    for them), what subject, what it said."""
    address, _ = sender_of(mail)
    subject = mask_tokens(mail.subject or "")
    data: dict[str, Any] = {"inbound_id": inbound.id, "from": address,
                            "subject": subject[:300],
                            "sender_status": str(sender.verdict.status)}
    if said is not None:
        data["said"] = mask_tokens(said)[:QUOTE_LIMIT]
    who = address if sender.passed else f"{address} (sender not verified)"
    record(session, case, "message", f"{what} from {who}: {subject[:120]}",
           actor=address, data=data, at=env.clock.now())


# --------------------------------------------------------------------------- new requests


def new_request(session: Session, env: WorkflowEnv, inbound: InboundMessage,
                mail: IncomingMail, classification: Classification) -> str:
    requester, _ = sender_of(mail)
    recognised, unreadable = read_forms(mail, env.pdf_limits)
    if recognised:
        source_name, request = recognised[0]
    else:
        source_name = None
        request = forms.read_email_request(mail.subject or "", mail.text or "", requester)
    notes = [f"Another form, {filename}, came in the same email and was not read; a "
             "caseworker may look at it." for filename, _ in recognised[1:]]
    if request.kind in (None, CaseKind.OTHER) and unreadable:
        sender = check_sender(mail, env)
        case = open_case(session, env, request, inbound=inbound, mail=mail, sender=sender)
        if sender.verdict.status is Status.UNVERIFIED:
            return _unverified_request(session, env, case, inbound, sender)
        return _unreadable(session, env, case, inbound, unreadable)
    notes += [f"Attachment {filename} was not read: {problem}" for filename, problem in unreadable]
    return start_case(session, env, request, inbound=inbound, mail=mail,
                      source_name=source_name, notes=notes)


def start_case(session: Session, env: WorkflowEnv, request: ParsedRequest, *,
               inbound: InboundMessage, mail: IncomingMail, source_name: str | None = None,
               notes: list[str] | None = None) -> str:
    """Open the case for a request that was read, acknowledge it, decide and persist."""
    sender = check_sender(mail, env)
    case = open_case(session, env, request, inbound=inbound, mail=mail, source_name=source_name,
                     sender=sender)
    for note in notes or []:
        record(session, case, "note", note, at=env.clock.now())
    if sender.verdict.status is Status.UNVERIFIED:
        return _unverified_request(session, env, case, inbound, sender)
    return _decide_and_persist(session, env, case, request, sender, inbound, acknowledge=True)


def _unverified_request(session: Session, env: WorkflowEnv, case: Case,
                        inbound: InboundMessage, sender: SenderCheck) -> str:
    """From did not read as one clean mailbox: nobody can say who asked, so a person
    decides. The acknowledgement goes only to the one address the strict reading found."""
    if sender.address is not None:
        notify(session, env, case, "acknowledgement", to=sender.address,
               name=case.requester_name, context={"summary": summary_lines(case)},
               reply_to=inbound)
    move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(),
         reason=f"Unverified sender: {sender.verdict.detail} A caseworker must check who "
                "sent the request.")
    return f"{case.ref}: unverified sender; sent to triage."


def open_case(session: Session, env: WorkflowEnv, request: ParsedRequest, *,
              inbound: InboundMessage, mail: IncomingMail, source_name: str | None = None,
              sender: SenderCheck | None = None) -> Case:
    """A case for a request read from `mail`: the sender is the requester; what was read
    and the sender checks go to the history."""
    now = env.clock.now()
    requester, requester_name = sender_of(mail)
    kind = request.kind if request.kind in set(CaseKind) else CaseKind.OTHER
    case = create_case(
        session, kind=kind, requester=requester, requester_name=requester_name,
        organisation_code=clean_ods(request.fields.get("organisation_code") or "") or None,
        subject=(mail.subject or "")[:300], fields=request.fields,
        findings=request.findings_as_dicts(), source_message_id=inbound.id, now=now,
    )
    inbound.case_id = case.id
    sender = sender or check_sender(mail, env)
    _note_message(session, env, case, inbound, mail, "Request received", sender=sender)
    record_checks(session, case, sender.checks, actor=SYSTEM, now=now,
                  data={"sender_authentication": sender.authentication})
    record(session, case, "read",
           f"Read {source_name or 'the email body'} as {request.kind or 'nothing recognisable'}"
           f" ({request.source}); {len(request.findings)} finding(s).",
           at=now, data={"source": request.source, "form_version": request.form_version,
                         "attachment": source_name, "findings": request.findings_as_dicts()})
    return case


def _unreadable(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                unreadable: list[tuple[str, str]]) -> str:
    """No form could be read: tell the requester what was wrong with each attachment."""
    for filename, problem in unreadable:
        notify(session, env, case, "attachment_unreadable", to=case.requester,
               name=case.requester_name, context={"filename": filename, "problem": problem},
               reply_to=inbound)
    reason = "; ".join(f"{name}: {problem}" for name, problem in unreadable)
    case.findings = [Finding("pdf_unreadable", f"{name}: {problem}", None).as_dict()
                     for name, problem in unreadable]
    move(session, case, CaseState.NEEDS_INFO, actor=SYSTEM, now=env.clock.now(),
         reason=f"The attached form could not be read ({reason}); the requester was asked "
                "to send it again.")
    return f"{case.ref}: attachment unreadable; requester told."


def _decide_and_persist(session: Session, env: WorkflowEnv, case: Case,
                        request: ParsedRequest, sender: SenderCheck | None,
                        inbound: InboundMessage, *, acknowledge: bool) -> str:
    facts = gather_facts(session, case.kind, case.fields or {},
                         sender=sender.address if sender else None,
                         sender_verified=bool(
                             sender and sender.vouches_for_submission(env.sender_policy)),
                         requester=case.requester)
    decision = decide(ParsedRequest(kind=case.kind, fields=case.fields or {},
                                    findings=list(request.findings), source=request.source),
                      facts)
    decision = _unvouched(decision, sender)
    if acknowledge and decision.target_state not in FINAL_STATES:
        notify(session, env, case, "acknowledgement", to=case.requester,
               name=case.requester_name, context={"summary": summary_lines(case)},
               reply_to=inbound)
    persist_decision(session, env, case, decision, reply_to=inbound)
    return f"{case.ref} ({case.kind}): {case.state}. {decision.reason}"


def _unvouched(decision: Decision, sender: SenderCheck | None) -> Decision:
    """A request whose sender the receiving server did not vouch for is never put to an
    approver in that sender's name, nor granted: anyone can write any From, and the person
    named may be the very approver who would have said no. A person confirms it first.
    Directions and requests for information go ahead: they grant nothing."""
    if (sender is None or sender.verdict.status is not Status.NOT_AUTHENTICATED
            or decision.action not in (Action.ASK_APPROVERS, Action.APPROVE)):
        return decision
    check = Check("sender_vouched", False, f"The receiving mail server did not vouch for "
                  f"{sender.address}: {sender.verdict.detail}")
    return replace(decision, action=Action.TRIAGE, approvers=(),
                   checks=(*decision.checks, check),
                   reason=f"The request would go to approval, but nobody vouched that "
                          f"{sender.address} sent it; a caseworker must confirm it with the "
                          "organisation before an approver is asked.")


# --------------------------------------------------------------------------- replies on a case


def case_reply(session: Session, env: WorkflowEnv, inbound: InboundMessage,
               mail: IncomingMail, classification: Classification) -> str:
    case = session.get(Case, classification.case_id) if classification.case_id else None
    if case is None:
        return "A reply on a case that does not exist; recorded on the ledger only."
    inbound.case_id = case.id
    said = own_text(mail.text or "")
    sender = check_sender(mail, env)
    _note_message(session, env, case, inbound, mail, "Reply received", sender=sender,
                  said=said)
    address = sender.address
    state = CaseState(case.state)
    if state is CaseState.NEEDS_INFO:
        if not sender.passed:
            return _to_triage(session, env, case, "A reply from an unverified sender came in; "
                              f"{sender.verdict.detail} A caseworker must check who wrote it "
                              "before it changes the request.", "unverified reply")
        if address != (case.requester or "").casefold():
            # Only the requester completes their request; anyone else's words are read
            # by a person before they change who is set up.
            return _to_triage(session, env, case, f"{address} answered the request for "
                              f"information, but the request came from {case.requester}; a "
                              "caseworker must check the reply.", "reply from someone else")
        return _merge_reply(session, env, case, inbound, mail, said)
    asked = {a.approver_email for a in approvals.open_requests(session, case)}
    if (state is CaseState.AWAITING_APPROVAL and sender.passed
            and address == (case.requester or "").casefold()):
        # "I did not send this", "please stop", a correction: approvers wait for a person.
        return _to_triage(session, env, case, "The requester wrote while the case awaits "
                          "approval; a caseworker must read it before any answer counts.",
                          "requester wrote during approval")
    if state is CaseState.AWAITING_APPROVAL and address in asked:
        if not sender.passed:
            # Never name an approver on the strength of a From header nobody vouched for.
            return _to_triage(session, env, case, "A reply from an unverified sender came "
                              "in while the case awaits approval; a caseworker must check who "
                              "wrote it.", "unverified reply")
        return _to_triage(session, env, case, f"The approver {address} replied without the "
                          "approval code; a caseworker must read the reply.",
                          "approver replied without the code")
    if state is CaseState.EXPIRED:
        return _to_triage(session, env, case, "A reply came in after the case expired; a "
                          "caseworker must read it.", "reply after expiry")
    return f"{case.ref}: reply recorded on the case ({case.state})."


def _to_triage(session: Session, env: WorkflowEnv, case: Case, reason: str, what: str) -> str:
    move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(), reason=reason)
    return f"{case.ref}: {what}; sent to triage."


def _merge_reply(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                 mail: IncomingMail, said: str) -> str:
    """Fold what the requester sent into the case, then read the case again."""
    now = env.clock.now()
    address, _ = sender_of(mail)
    asked_by_caseworker = any(f.code == CASEWORKER_REQUEST for f in _findings(case))
    recognised, unreadable = read_forms(mail, env.pdf_limits)
    if recognised:
        filename, request = recognised[0]
        if request.kind != case.kind:
            record(session, case, "note", f"The reply carries a {request.kind} form; the case "
                   f"was a {case.kind} and is now read as the new form.", at=now)
            case.kind = str(request.kind)
        _replace_read(case, request.fields, list(request.findings))
        what = f"a new form, {filename}"
    elif unreadable:
        for name, problem in unreadable:
            notify(session, env, case, "attachment_unreadable", to=case.requester,
                   name=case.requester_name, context={"filename": name, "problem": problem},
                   reply_to=inbound)
        return f"{case.ref}: the attachment in the reply could not be read; requester told."
    elif asked_by_caseworker:
        request, what = None, "a message"
    else:
        request = forms.read_email_request(mail.subject or "", said, address)
        fields, findings = merge_fields(case.kind, case.fields or {}, _findings(case),
                                        request, said, exclude={address, *env.our_addresses})
        _replace_read(case, fields, findings)
        what = "the reply's text"
    void_open_requests(session, env, case, actor=address,
                       reason="The requester sent more information, so the request is read "
                              "again.")
    if asked_by_caseworker:
        # A caseworker's question is answered in words only a person can judge.
        case.findings = [f for f in case.findings or [] if f.get("code") != CASEWORKER_REQUEST]
        move(session, case, CaseState.TRIAGE, actor=address, now=now,
             reason=f"The requester answered the caseworker's question with {what}.")
        return f"{case.ref}: the requester answered; back to a caseworker."
    move(session, case, CaseState.RECEIVED, actor=address, now=now,
         reason=f"The requester replied with {what}; the case is read again.")
    merged = ParsedRequest(kind=case.kind, fields=case.fields, findings=_findings(case),
                           source=request.source if request else "email_body")
    return _decide_and_persist(session, env, case, merged, check_sender(mail, env), inbound,
                               acknowledge=False)


def _replace_read(case: Case, fields: dict[str, Any], findings: list[Finding]) -> None:
    """The case's fields and findings after a reply, and its organisation code with them."""
    case.fields = fields
    case.findings = [f.as_dict() for f in findings]
    code = clean_ods(fields.get("organisation_code") or "") or None
    if code and code != case.organisation_code:
        case.organisation_code = code


def _findings(case: Case) -> list[Finding]:
    found = []
    for item in case.findings or []:
        found.append(Finding(item.get("code", "unknown"), item.get("message", ""),
                             item.get("field")))
    return found


def merge_fields(kind: str, old: Mapping[str, Any], old_findings: list[Finding],
                 new: ParsedRequest, said: str, *, exclude: set[str] | frozenset[str] = frozenset()
                 ) -> tuple[dict[str, Any], list[Finding]]:
    """The case's fields with what a text reply supplied, and the findings still open.

    Values the reply gives replace missing ones; a nominee is matched by address or name.
    A bare address in a reply fills the one address still missing. Findings about a field
    that is now filled are dropped; findings about a whole PDF form (not signed, scanned)
    stay, since only a new form can settle them.
    """
    fields = deepcopy(dict(old))
    for key in ("organisation_code", "organisation_name"):
        if new.fields.get(key):
            fields[key] = new.fields[key]
    nominees = [dict(n) for n in fields.get("nominees") or []]
    for incoming in new.fields.get("nominees") or []:
        match = _match_person(nominees, incoming)
        if match is None:
            nominees.append(dict(incoming))
        else:
            for key, value in incoming.items():
                if value and not match.get(key):
                    match[key] = value
    fields["nominees"] = nominees
    if new.fields.get("main_contact"):
        fields["main_contact"] = _merged_person(fields.get("main_contact"),
                                                new.fields["main_contact"])
    _fill_bare_address(kind, fields, said, exclude)
    still = [f for f in old_findings
             if (f.field is None and kind in PDF_KINDS) or (f.field and not _filled(fields,
                                                                                    f.field))]
    return fields, still


def _match_person(people: list[dict[str, Any]], incoming: Mapping[str, Any]
                  ) -> dict[str, Any] | None:
    email = normalise_email(incoming.get("email") or "")
    name = " ".join(str(incoming.get("name") or "").casefold().split())
    for person in people:
        if email and normalise_email(person.get("email") or "") == email:
            return person
        if name and " ".join(str(person.get("name") or "").casefold().split()) == name:
            return person
    if len(people) == 1 and not people[0].get("email"):
        return people[0]
    return None


def _merged_person(old: Any, new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(old or {})
    for key, value in new.items():
        if value:
            merged[key] = value
    return merged


def _fill_bare_address(kind: str, fields: dict[str, Any], said: str,
                       exclude: set[str] | frozenset[str]) -> None:
    """"Her address is jane@nhs.net": one address in the reply fills the one that is missing."""
    found = {a.lower().rstrip(".") for a in EMAIL.findall(said or "")}
    found = {a for a in found if normalise_email(a) and a not in exclude}
    if len(found) != 1:
        return
    address = found.pop()
    people = [n for n in fields.get("nominees") or [] if not n.get("email")]
    contact = fields.get("main_contact")
    if kind == CaseKind.MAIN_CONTACT and isinstance(contact, dict) and not contact.get("email"):
        people = [contact]
    if len(people) == 1:
        people[0]["email"] = address


def _filled(fields: Mapping[str, Any], path: str) -> bool:
    """Is the value at a dotted path ("nominees.0.email") present and, for addresses, valid?"""
    value: Any = fields
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return False
    if path.endswith("email"):
        return normalise_email(str(value or "")) is not None
    return bool(value)


# --------------------------------------------------------------------------- approval answers


def answered_case(session: Session, mail: IncomingMail) -> Case | None:
    """The case the answer says it is about: the subject's reference, else the email it
    replies to."""
    about = approvals.referenced_case(session, mail.subject or "", None)
    if about is not None or not mail.in_reply_to:
        return about
    case_id = session.scalar(select(OutboxMessage.case_id)
                             .where(OutboxMessage.message_id == mail.in_reply_to.strip()))
    return session.get(Case, case_id) if case_id else None


def approval_answer(session: Session, env: WorkflowEnv, inbound: InboundMessage,
                    mail: IncomingMail, classification: Classification) -> str:
    token = classification.token or approvals.find_token(
        f"{mail.subject}\n{' '.join(mail.to_addresses)}\n{mail.text}") or ""
    about = answered_case(session, mail)
    verification = verify_answer(session, env, mail, token, about=about)
    answer = (read_one_click(mail.subject or "", mail.text or "", mail.html,
                             text_from_html=mail.text_from_html)
              or read_answer(mail.text or "", mail.html, text_from_html=mail.text_from_html))
    cases = [c for c in (verification.case, about) if c is not None]
    cases = list({c.id: c for c in cases}.values())
    if not cases:
        return f"Approval answer refused: {verification.refusal()}"
    inbound.case_id = cases[0].id
    for case in cases:
        _record_answer(session, env, case, inbound, mail, verification, answer)
    if not verification.accepted:
        return _refused(session, env, verification, mail, cases)
    case, approval = verification.case, verification.approval
    assert case is not None and approval is not None
    if answer.verdict is Verdict.UNCLEAR:
        return _unclear(session, env, case, approval, answer)
    return decide_answer(session, env, case, approval, answer, inbound)


def decide_answer(session: Session, env: WorkflowEnv, case: Case, approval: ApprovalRequest,
                  answer: Answer, inbound: InboundMessage) -> str:
    """A verified, clear answer decides the case: the token is used once, then the one
    route to approved (or the rejection) follows."""
    now = env.clock.now()
    status = "approved" if answer.verdict is Verdict.APPROVE else "rejected"
    if not approvals.close(session, approval, status, now=now, answer_message_id=inbound.id):
        record(session, case, "approval_refused", f"{approvals.masked(approval.token)} was "
               "used by another answer at the same moment; this one is ignored.", at=now)
        return f"{case.ref}: code already used."
    who = f"{approval.approver_name} <{approval.approver_email}>"
    data = {"token": approvals.masked(approval.token), "verdict": status,
            "reason": answer.reason, "approver": approval.approver_email}
    if answer.verdict is Verdict.APPROVE:
        approve_and_apply(session, env, case, by=approval.approver_email, data=data,
                          basis=f"Approved by {who} ({approval.approver_source}, "
                                f"{approvals.masked(approval.token)}).")
        return f"{case.ref}: approved by the approver asked; now {case.state}."
    cancelled = approvals.close_all_open(session, case, "cancelled", now=now)
    reason = answer.reason or "The approver declined the request without giving a reason."
    record(session, case, "approval", f"{who} rejected the request "
           f"({approvals.masked(approval.token)}).", actor=approval.approver_email, at=now,
           data={**data, "cancelled": cancelled})
    move(session, case, CaseState.REJECTED, actor=approval.approver_email, now=now,
         reason=f"Rejected by {approval.approver_name}: {reason}")
    notify(session, env, case, "outcome_rejected", to=case.requester, name=case.requester_name,
           context={"reason": reason}, reply_to=source_message(session, case))
    return f"{case.ref}: rejected by the approver asked."


def _unclear(session: Session, env: WorkflowEnv, case: Case, approval: ApprovalRequest,
             answer: Answer) -> str:
    """A verified approver said something that is not plainly yes or no: a person reads it,
    and the approver is told so (their token stays open until a person decides)."""
    if case.state != CaseState.TRIAGE:
        move(session, case, CaseState.TRIAGE, actor=approval.approver_email,
             now=env.clock.now(), reason="The approver's answer could not be read as approve "
             f"or reject: {answer.explanation} A caseworker must read it.")
    notify(session, env, case, "answer_unclear", to=approval.approver_email,
           name=approval.approver_name, context={"approver_name": approval.approver_name})
    return f"{case.ref}: approver's answer unclear; sent to triage."


def _record_answer(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                   mail: IncomingMail, verification: Verification, answer: Answer) -> None:
    """Who answered, with which token, what every check found, and what the reply said."""
    now = env.clock.now()
    sender = check_sender(mail, env)
    _note_message(session, env, case, inbound, mail, "Approval answer received",
                  sender=sender, said=answer.own_text)
    approval = verification.approval
    record_checks(session, case, verification.checks, actor=SYSTEM, now=now, data={
        "token": approvals.masked(verification.token) if verification.token else None,
        "asked": approval.approver_email if approval else None,
        "sender_authentication": verification.authentication,
    })
    record(session, case, "answer_read", answer.explanation, at=now, data=answer.as_dict())


# Checks about the token itself: when any fails, the answer is simply stale or wrong.
_TOKEN_CHECKS = frozenset({"token_known", "token_case", "token_open", "token_unexpired",
                           "case_waiting"})


def _refused(session: Session, env: WorkflowEnv, verification: Verification,
             mail: IncomingMail, cases: list[Case]) -> str:
    """A refused answer approves nothing. When a live token came back but another check
    failed (the sender, the changes, the approver's standing), a person looks, and the
    reason names no approver whose identity was not vouched for."""
    now = env.clock.now()
    refusal = verification.refusal()
    failed = {c.name for c in verification.failures}
    for case in cases:
        record(session, case, "approval_refused", f"The answer was refused: {refusal}",
               at=now, data={"token": approvals.masked(verification.token)
                             if verification.token else None, "failed": sorted(failed)})
    approval, case = verification.approval, verification.case
    if (case is None or approval is None or failed & _TOKEN_CHECKS
            or case.state != CaseState.AWAITING_APPROVAL):
        return f"Approval answer refused: {refusal}"
    sender = mail.sender_identity
    if ("sender_is_approver" in failed and sender.parsed_cleanly
            and sender.address != approval.approver_email):
        # Someone else answered with the code (a forwarded email): the approver may still.
        return f"Approval answer refused: {refusal}"
    move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=now, reason=_refusal_reason(
        failed, approval))
    return f"Approval answer refused: {refusal}"


def _refusal_reason(failed: set[str], approval: ApprovalRequest) -> str:
    if failed & {"sender_parsed", "sender_authenticated", "sender_is_approver"}:
        return ("An answer carrying a live approval code came from a sender who could not be "
                "verified as the approver asked; a caseworker must confirm it with them.")
    if "changes_unchanged" in failed:
        return ("An approval answer came in for changes that are no longer those of the case; "
                "a caseworker must ask again.")
    if "approver_independent" in failed:
        return (f"{approval.approver_email} answered, but is the requester or a nominee, and "
                "cannot approve their own request; a caseworker must find another approver.")
    return (f"{approval.approver_email} answered, but has been removed from the recorded "
            "approvers since being asked; a caseworker must find another approver.")
