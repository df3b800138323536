"""What the workflow does with each message intake hands it (contract: Handler).

NEW_REQUEST opens a case, reads the form or the body, acknowledges and decides.
CASE_REPLY on a needs_info case merges what the requester sent and reads the case again;
other replies are noted, and sent to triage when a person must look. APPROVAL_ANSWER is
verified (token, sender, DMARC) and, when every check passes, decides the case. Every
step is a row in the case's history. The handler runs inside intake's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import forms
from forms.model import Finding, ParsedRequest
from forms.normalise import clean_ods, normalise_email
from workflow import approvals
from workflow.apply import apply_case
from workflow.approvals import SenderCheck, Verification, check_sender, verify_answer
from workflow.cases import create_case, move, record
from workflow.decisions import CASEWORKER_REQUEST, decide
from workflow.env import WorkflowEnv
from workflow.facts import gather_facts
from workflow.inbound import Attachment, Classification, IncomingMail, MessageKind
from workflow.models import Case, InboundMessage, OutboxMessage
from workflow.persist import notify, persist_decision, record_checks, source_message, summary_lines
from workflow.replies import Answer, Verdict, own_text, read_answer
from workflow.states import FINAL_STATES, CaseKind, CaseState

Handler = Callable[[Session, InboundMessage, IncomingMail, Classification], str]

SYSTEM = "system"
# How much of a person's own words the history keeps (the raw message stays in the store).
QUOTE_LIMIT = 1000
PDF_KINDS = frozenset({CaseKind.GPP_ADMIN_FORM, CaseKind.USER_ADMIN_FORM,
                       CaseKind.PCN_ADMIN_FORM})
_EMAIL_IN_TEXT = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


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


def sender_of(mail: IncomingMail) -> tuple[str, str | None]:
    """The first From address and its display name (the case's requester)."""
    for name, address in mail.from_addresses:
        if address:
            return address.lower(), (name or None)
    return "unknown@invalid", None


def _note_message(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                  mail: IncomingMail, what: str, *, said: str | None = None) -> None:
    """A history row for a message received on the case: who, what subject, what it said."""
    address, _ = sender_of(mail)
    data: dict[str, Any] = {"inbound_id": inbound.id, "from": address,
                            "subject": (mail.subject or "")[:300]}
    if said is not None:
        data["said"] = said[:QUOTE_LIMIT]
    record(session, case, "message", f"{what} from {address}: {(mail.subject or '')[:120]}",
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
        case = open_case(session, env, request, inbound=inbound, mail=mail)
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
    return _decide_and_persist(session, env, case, request, sender, inbound, acknowledge=True)


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
    _note_message(session, env, case, inbound, mail, "Request received")
    sender = sender or check_sender(mail, env)
    record_checks(session, case, sender.checks, actor=SYSTEM, now=now,
                  data={"authentication_results": sender.authentication})
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
                         sender_verified=bool(sender and sender.passed))
    decision = decide(ParsedRequest(kind=case.kind, fields=case.fields or {},
                                    findings=list(request.findings), source=request.source),
                      facts)
    if acknowledge and decision.target_state not in FINAL_STATES:
        notify(session, env, case, "acknowledgement", to=case.requester,
               name=case.requester_name, context={"summary": summary_lines(case)},
               reply_to=inbound)
    persist_decision(session, env, case, decision, reply_to=inbound)
    return f"{case.ref} ({case.kind}): {case.state}. {decision.reason}"


# --------------------------------------------------------------------------- replies on a case


def case_reply(session: Session, env: WorkflowEnv, inbound: InboundMessage,
               mail: IncomingMail, classification: Classification) -> str:
    case = session.get(Case, classification.case_id) if classification.case_id else None
    if case is None:
        return "A reply on a case that does not exist; recorded on the ledger only."
    inbound.case_id = case.id
    said = own_text(mail.text or "")
    _note_message(session, env, case, inbound, mail, "Reply received", said=said)
    address, _ = sender_of(mail)
    state = CaseState(case.state)
    if state is CaseState.NEEDS_INFO:
        if address.casefold() != (case.requester or "").casefold():
            # Only the requester completes their request; anyone else's words are read
            # by a person before they change who is set up.
            move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(),
                 reason=f"{address} answered the request for information, but the request "
                        f"came from {case.requester}; a caseworker must check the reply.")
            return f"{case.ref}: reply from someone other than the requester; sent to triage."
        return _merge_reply(session, env, case, inbound, mail, said)
    asked = {a.approver_email for a in approvals.open_requests(session, case)}
    if state is CaseState.AWAITING_APPROVAL and address in asked:
        move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(),
             reason=f"The approver {address} replied without the approval code; a caseworker "
                    "must read the reply.")
        return f"{case.ref}: approver replied without the code; sent to triage."
    if state is CaseState.EXPIRED:
        move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(),
             reason=f"{address} replied after the case expired; a caseworker must read it.")
        return f"{case.ref}: reply after expiry; sent to triage."
    return f"{case.ref}: reply recorded on the case ({case.state})."


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
    return _decide_and_persist(session, env, case, merged, None, inbound, acknowledge=False)


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
    found = {a.lower().rstrip(".") for a in _EMAIL_IN_TEXT.findall(said or "")}
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
    now = env.clock.now()
    token = classification.token or approvals.find_token(
        f"{mail.subject}\n{' '.join(mail.to_addresses)}\n{mail.text}") or ""
    about = answered_case(session, mail)
    verification = verify_answer(session, env, mail, token, about=about)
    answer = read_answer(mail.text or "", mail.html)
    cases = [c for c in (verification.case, about) if c is not None]
    cases = list({c.id: c for c in cases}.values())
    if not cases:
        return f"Approval answer refused: {verification.refusal()}"
    inbound.case_id = cases[0].id
    for case in cases:
        _record_answer(session, env, case, inbound, mail, verification, answer)
    if not verification.accepted:
        return _refused(session, env, verification, mail, cases)
    case = verification.case
    approval = verification.approval
    assert case is not None and approval is not None
    if answer.verdict is Verdict.UNCLEAR:
        if case.state != CaseState.TRIAGE:
            move(session, case, CaseState.TRIAGE, actor=approval.approver_email, now=now,
                 reason=f"The approver's reply could not be read as approve or reject: "
                        f"{answer.explanation}")
        return f"{case.ref}: approver's answer unclear; sent to triage."
    status = "approved" if answer.verdict is Verdict.APPROVE else "rejected"
    if not approvals.close(session, approval, status, now=now, answer_message_id=inbound.id):
        record(session, case, "approval_refused", f"{approvals.shown(approval.token)} was "
               "used by another answer at the same moment; this one is ignored.", at=now)
        return f"{case.ref}: token already used."
    cancelled = approvals.close_all_open(session, case, "cancelled", now=now)
    record(session, case, "approval",
           f"{approval.approver_name} <{approval.approver_email}> {status} the request "
           f"({approvals.shown(approval.token)})."
           + (f" Other requests cancelled: {', '.join(cancelled)}." if cancelled else ""),
           actor=approval.approver_email, at=now,
           data={"token": approvals.shown(approval.token), "verdict": status,
                 "reason": answer.reason, "cancelled": cancelled})
    if answer.verdict is Verdict.APPROVE:
        move(session, case, CaseState.APPROVED, actor=approval.approver_email, now=now,
             reason=f"Approved by {approval.approver_name} ({approval.approver_source}).")
        apply_case(session, env, case, actor=approval.approver_email)
        return f"{case.ref}: approved by {approval.approver_email}; now {case.state}."
    reason = answer.reason or "The approver declined the request without giving a reason."
    move(session, case, CaseState.REJECTED, actor=approval.approver_email, now=now,
         reason=f"Rejected by {approval.approver_name}: {reason}")
    notify(session, env, case, "outcome_rejected", to=case.requester, name=case.requester_name,
           context={"reason": reason}, reply_to=source_message(session, case))
    return f"{case.ref}: rejected by {approval.approver_email}."


def _record_answer(session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage,
                   mail: IncomingMail, verification: Verification, answer: Answer) -> None:
    """Who answered, with which token, what every check found, and what the reply said."""
    now = env.clock.now()
    _note_message(session, env, case, inbound, mail, "Approval answer received",
                  said=answer.own_text)
    approval = verification.approval
    record_checks(session, case, verification.checks, actor=SYSTEM, now=now, data={
        "token": approvals.shown(verification.token),
        "asked": approval.approver_email if approval else None,
        "authentication_results": verification.authentication,
    })
    record(session, case, "answer_read", answer.explanation, at=now, data=answer.as_dict())


def _refused(session: Session, env: WorkflowEnv, verification: Verification,
             mail: IncomingMail, cases: list[Case]) -> str:
    """A refused answer approves nothing. When it claims to come from the asked approver
    but failed the sender checks, a person confirms with the approver."""
    now = env.clock.now()
    refusal = verification.refusal()
    for case in cases:
        record(session, case, "approval_refused", f"The answer was refused: {refusal}",
               at=now, data={"token": approvals.shown(verification.token),
                             "failed": [c.name for c in verification.failures]})
    approval, case = verification.approval, verification.case
    failed = {c.name for c in verification.failures}
    claims_approver = approval is not None and approval.approver_email in {
        a.lower() for _, a in mail.from_addresses}
    token_live = not failed & {"token_known", "token_case", "token_open", "token_unexpired",
                               "case_waiting"}
    if (case is not None and claims_approver and token_live
            and case.state == CaseState.AWAITING_APPROVAL):
        if failed == {"approver_still_recorded"}:
            reason = (f"{approval.approver_email} answered, but has been removed from the "
                      "recorded approvers since being asked; a caseworker must find another "
                      "approver.")
        else:
            reason = ("An answer claiming to come from the approver failed the sender "
                      "checks; a caseworker must confirm it with them.")
        move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=now, reason=reason)
    return f"Approval answer refused: {refusal}"
