"""An approval answer: verified (token, sender, digest) and read; when every check passes it decides
the case, and anything unclear goes to triage."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalogue import Service
from core.inbound import Attachment, Classification, IncomingMail
from core.states import FINAL_STATES, CaseState
from intake import ledger
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow import approvals, directory, new_replies, quoted_words
from workflow.apply import approve_and_apply
from workflow.approvals import Verification, verify_answer
from workflow.cases import move, record
from workflow.decisions import planned_changes
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case
from workflow.opening import SYSTEM, new_request, note_message
from workflow.persist import (
    notify,
    record_checks,
    source_message,
)
from workflow.reason_redaction import Signer, name_words
from workflow.replies import Answer, Verdict, read_answer, read_one_click, subject_verdict


def answered_case(session: Session, mail: IncomingMail) -> Case | None:
    """The case the answer says it is about: the subject's reference, else the email it
    replies to."""
    about = approvals.referenced_case(session, mail.subject or "", None)
    if about is not None or not mail.in_reply_to:
        return about
    case_id = session.scalar(
        select(OutboxMessage.case_id).where(OutboxMessage.message_id == mail.in_reply_to.strip())
    )
    return session.get(Case, case_id) if case_id else None


def _names_in(session: Session, case: Case | None) -> frozenset[str]:
    """The words of the names of the people the case asks roles for, and of the Main
    Contact it would replace."""
    if case is None:
        return frozenset()
    changes = planned_changes(case.kind, case.fields or {})
    names = [c.name for c in changes]
    if any(c.service is Service.MAIN_CONTACT for c in changes) and case.organisation_code:
        current = directory.main_contact(session, case.organisation_code)
        if current is not None:
            names.append(current.name or "")
    return frozenset(w for name in names for w in name_words(name))


def approval_answer(
    session: Session,
    env: WorkflowEnv,
    inbound: InboundMessage,
    mail: IncomingMail,
    classification: Classification,
) -> str:
    token = (
        classification.token
        # Never from To or Cc (intake.classify.find_token says why).
        or approvals.find_token(f"{mail.subject}\n{mail.text}")
        or ""
    )
    about = answered_case(session, mail)
    verification = verify_answer(session, env, mail, token, about=about)
    asked = verification.approval
    signer = (
        Signer(
            asked.approver_name or "",
            asked.approver_email or "",
            others=_names_in(session, verification.case),
        )
        if asked
        else None
    )
    answer = read_one_click(
        mail.subject or "",
        mail.text or "",
        mail.html,
        text_from_html=mail.text_from_html,
        signer=signer,
    ) or read_answer(mail.text or "", mail.html, text_from_html=mail.text_from_html, signer=signer)
    cases = [c for c in (verification.case, about) if c is not None]
    cases = list({c.id: c for c in cases}.values())
    if not cases:
        # A code that names no case (mistyped, made up, or quoted in a new request) decides
        # nothing, and hides nothing: the message is read as any new mail is.
        opened = new_request(session, env, inbound, mail, classification)
        return f"Approval answer refused: {verification.refusal()} Read as new mail: {opened}"
    ledger.link_case(session, inbound, cases[0].id)
    for each in cases:
        _record_answer(session, env, each, inbound, mail, verification, answer)
    if not verification.accepted:
        for each in cases:
            if CaseState(each.state) in FINAL_STATES:
                # "No, stop" from a second approver after the case closed: a person reads it.
                new_replies.mark(session, env, each, inbound, "an approval answer came in late")
        return _refused(session, env, verification, mail, cases, answer, inbound)
    case, approval = verification.case, verification.approval
    assert case is not None and approval is not None
    if answer.verdict is Verdict.APPROVE:
        answer = _approval_says_no_more(session, env, case, approval, mail, answer)
    if answer.verdict is Verdict.UNCLEAR:
        return _unclear(session, env, case, approval, answer)
    return decide_answer(session, env, case, approval, answer, inbound)


def _approval_says_no_more(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    approval: ApprovalRequest,
    mail: IncomingMail,
    answer: Answer,
) -> Answer:
    """The approval, unless the reply says more somewhere else; then unclear, for a person."""
    more = _what_else_it_says(session, env, case, approval, mail, answer.own_text)
    if more is None:
        return answer
    return Answer(
        Verdict.UNCLEAR,
        None,
        answer.own_text,
        f"The reply approves, but {more}, which may change what it means.",
    )


# A picture's file name: a file sent as an image under another name ("conditions.docx" as
# image/png) is a document.
_PICTURE_NAME = re.compile(r"\.(?:png|jpe?g|gif|bmp|tiff?|heic|heif|webp)$", re.IGNORECASE)


def _a_picture(attachment: Attachment) -> bool:
    return attachment.content_type.startswith("image/") and bool(
        _PICTURE_NAME.search(attachment.filename)
    )


def _what_else_it_says(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    approval: ApprovalRequest,
    mail: IncomingMail,
    own: str,
) -> str | None:
    """What the reply says besides its own text: a document attached (a picture is most
    likely a signature's), a part of it not read (an attachment over the limit, an attached
    email), a subject longer than ours, or words in its quote of our email
    that we did not write ("NO - not Jane" beside her name; workflow.quoted_words)."""
    papers = [a.filename for a in mail.attachments if not _a_picture(a)]
    if papers:
        return f"comes with {papers[0][:80]}"
    if mail.unread_parts:  # what was not read may say anything
        return f"part of it was not read ({mail.unread_parts[0][:120]})"
    sent = session.execute(
        select(OutboxMessage.subject, OutboxMessage.body_text, OutboxMessage.body_html).where(
            OutboxMessage.case_id == case.id,
            OutboxMessage.to_address == approval.approver_email,
        )
    ).all()
    subjects = [row[0] for row in sent]
    if subject_verdict(mail.subject or "") is None:  # a one-click subject is its verdict
        said = quoted_words.subject_not_ours(mail.subject or "", subjects)
        if said is not None:
            return f'its subject says more ("{said[:80]}")'
    ours = [text for row in sent for text in quoted_words.as_text(*row)]
    for lines in quoted_words.reply_lines(mail.text, mail.html, text_from_html=mail.text_from_html):
        added = quoted_words.words_not_ours(
            lines, ours, own=own, subjects=subjects, us=(env.from_name, *env.our_addresses)
        )
        if added:
            return f'also writes inside the quoted request ("{added[0][:80]}")'
    return None


def decide_answer(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    approval: ApprovalRequest,
    answer: Answer,
    inbound: InboundMessage,
) -> str:
    """A verified, clear answer decides the case: the token is used once, then the one
    route to approved (or the rejection) follows."""
    now = env.clock.now()
    status = "approved" if answer.verdict is Verdict.APPROVE else "rejected"
    if not approvals.close(session, approval, status, now=now, answer_message_id=inbound.id):
        record(
            session,
            case,
            "approval_refused",
            f"{approvals.masked(approval.token)} was "
            "used by another answer at the same moment; this one is ignored.",
            at=now,
        )
        return f"{case.ref}: code already used."
    who = f"{approval.approver_name} <{approval.approver_email}>"
    data = {
        "token": approvals.masked(approval.token),
        "verdict": status,
        "reason": answer.reason,
        "approver": approval.approver_email,
    }
    if answer.verdict is Verdict.APPROVE:
        approve_and_apply(
            session,
            env,
            case,
            by=approval.approver_email,
            data=data,
            basis=f"Approved by {who} ({approval.approver_source}, "
            f"{approvals.masked(approval.token)}).",
        )
        return f"{case.ref}: approved by the approver asked; now {case.state}."
    cancelled = approvals.close_all_open(session, case, "cancelled", now=now)
    reason = answer.reason or "The approver declined the request without giving a reason."
    record(
        session,
        case,
        "approval",
        f"{who} rejected the request ({approvals.masked(approval.token)}).",
        actor=approval.approver_email,
        at=now,
        data={**data, "cancelled": cancelled},
    )
    move(
        session,
        case,
        CaseState.REJECTED,
        actor=approval.approver_email,
        now=now,
        reason=f"Rejected by {approval.approver_name}: {reason}",
    )
    notify(
        session,
        env,
        case,
        "outcome_rejected",
        to=case.requester,
        name=case.requester_name,
        context={"reason": reason},
        reply_to=source_message(session, case),
    )
    return f"{case.ref}: rejected by the approver asked."


def _unclear(
    session: Session, env: WorkflowEnv, case: Case, approval: ApprovalRequest, answer: Answer
) -> str:
    """A verified approver said something that is not plainly yes or no: a person reads it,
    and the approver is told so (their token stays open until a person decides)."""
    if case.state != CaseState.TRIAGE:
        move(
            session,
            case,
            CaseState.TRIAGE,
            actor=approval.approver_email,
            now=env.clock.now(),
            reason="The approver's answer could not be read as approve "
            f"or reject: {answer.explanation} A caseworker must read it.",
        )
    notify(
        session,
        env,
        case,
        "answer_unclear",
        to=approval.approver_email,
        name=approval.approver_name,
        context={"approver_name": approval.approver_name},
    )
    return f"{case.ref}: approver's answer unclear; sent to triage."


def _record_answer(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    inbound: InboundMessage,
    mail: IncomingMail,
    verification: Verification,
    answer: Answer,
) -> None:
    """Who answered, with which token, what every check found, and what the reply said."""
    now = env.clock.now()
    sender = verification.sender
    note_message(
        session,
        env,
        case,
        inbound,
        mail,
        "Approval answer received",
        sender=sender,
        said=answer.own_text,
    )
    approval = verification.approval
    record_checks(
        session,
        case,
        verification.checks,
        actor=SYSTEM,
        now=now,
        data={
            "token": approvals.masked(verification.token) if verification.token else None,
            "asked": approval.approver_email if approval else None,
            "sender_authentication": verification.authentication,
        },
    )
    record(session, case, "answer_read", answer.explanation, at=now, data=answer.as_dict())


# Checks about the token itself: when any fails, the answer is simply stale or wrong.
_TOKEN_CHECKS = frozenset(
    {"token_known", "token_case", "token_open", "token_unexpired", "case_waiting"}
)


def _refused(
    session: Session,
    env: WorkflowEnv,
    verification: Verification,
    mail: IncomingMail,
    cases: list[Case],
    answer: Answer,
    inbound: InboundMessage,
) -> str:
    """A refused answer approves nothing. When a live token came back but another check
    failed (the sender, the changes, the approver's standing), a person looks, and the
    reason names no approver whose identity was not vouched for. So does one that did not
    approve, with a code no longer live: "REJECT, this looks like fraud" to an earlier
    request must stop the case before another approver's code completes it."""
    now = env.clock.now()
    refusal = verification.refusal()
    failed = {c.name for c in verification.failures}
    for each in cases:
        record(
            session,
            each,
            "approval_refused",
            f"The answer was refused: {refusal}",
            at=now,
            data={
                "token": approvals.masked(verification.token) if verification.token else None,
                "failed": sorted(failed),
            },
        )
    approval, case = verification.approval, verification.case
    if (
        case is None
        or approval is None
        or failed & _TOKEN_CHECKS
        or case.state != CaseState.AWAITING_APPROVAL
    ):
        if answer.verdict is not Verdict.APPROVE:
            if case is not None and approval is not None:
                _not_approved_with_an_old_code(session, env, case, approval, inbound, verification)
            elif approval is None:  # a mistyped code, on a case the reply names
                for each in cases:
                    if CaseState(each.state) not in FINAL_STATES:
                        new_replies.mark(
                            session, env, each, inbound, "an answer came with a code not issued"
                        )
        return f"Approval answer refused: {refusal}"
    sender = mail.sender_identity
    if (
        "sender_is_approver" in failed
        and sender.parsed_cleanly
        and sender.address != approval.approver_email
    ):
        # Someone else answered with the code (a forwarded email): the approver may still,
        # so the case waits on; but a person reads what they wrote (a colleague's request
        # sent on the approval email, say), or it would be filed away unseen.
        new_replies.mark(
            session,
            env,
            case,
            inbound,
            "an email carrying the approval code came from someone other than the approver asked",
        )
        return f"Approval answer refused: {refusal}"
    move(
        session,
        case,
        CaseState.TRIAGE,
        actor=SYSTEM,
        now=now,
        reason=_refusal_reason(failed, approval),
    )
    return f"Approval answer refused: {refusal}"


def _not_approved_with_an_old_code(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    approval: ApprovalRequest,
    inbound: InboundMessage,
    verification: Verification,
) -> None:
    """An answer that does not approve, carrying a code of this case no longer live. From
    the approver it was sent to, vouched for, a case still waiting on other codes goes to a
    person, who reads it before any of them decides. Otherwise (anyone may write any From,
    and whoever holds an old code could stop the case again after each new request) the
    case is marked with the reply for a person to read, and goes on (a closed one is
    marked above)."""
    if CaseState(case.state) in FINAL_STATES:
        return
    sender = verification.sender
    from_the_approver = sender.authenticated and sender.address == approval.approver_email
    if case.state != CaseState.AWAITING_APPROVAL or not from_the_approver:
        new_replies.mark(session, env, case, inbound, "an answer came with an old code")
        return
    move(
        session,
        case,
        CaseState.TRIAGE,
        actor=SYSTEM,
        now=env.clock.now(),
        reason=(
            "An answer that did not approve came with a code no longer valid (the one sent "
            f"to {approval.approver_email}); a caseworker must read it before any "
            "approver's code decides the case."
        ),
    )


def _refusal_reason(failed: set[str], approval: ApprovalRequest) -> str:
    if failed & {"sender_parsed", "sender_authenticated", "sender_is_approver"}:
        return (
            "An answer carrying a live approval code came from a sender who could not be "
            "verified as the approver asked; a caseworker must confirm it with them."
        )
    if "changes_unchanged" in failed:
        return (
            "An approval answer came in for changes that are no longer those of the case; "
            "a caseworker must ask again."
        )
    if "approver_independent" in failed:
        return (
            f"{approval.approver_email} answered, but is the requester or a nominee, and "
            "cannot approve their own request; a caseworker must find another approver."
        )
    return (
        f"{approval.approver_email} answered, but has been removed from the recorded "
        "approvers since being asked; a caseworker must find another approver."
    )
