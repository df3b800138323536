"""Opening a case for a new request: read the forms or the body, record who sent it, acknowledge,
decide and persist (workflow.handler dispatches here)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

import forms
from core.inbound import Attachment, Classification, IncomingMail
from core.patterns import mask_tokens
from core.senderauth import Status
from core.states import FINAL_STATES, CaseKind, CaseState
from forms.model import Finding, ParsedRequest
from forms.normalise import clean_ods
from intake import ledger
from intake.models import InboundMessage
from workflow.approval_mail import approvers_named
from workflow.approvals import SenderCheck, check_sender
from workflow.cases import create_case, move, record
from workflow.decisions import Action, Check, Decision, decide
from workflow.env import WorkflowEnv
from workflow.facts import gather_facts
from workflow.mail import UNVOUCHED
from workflow.models import Case
from workflow.outcomes import persist_decision
from workflow.persist import (
    notify,
    record_checks,
    summary_lines,
)
from workflow.scans import scan_values

SYSTEM = "system"


# How much of a person's own words the history keeps (the raw message stays in the store).
QUOTE_LIMIT = 1000


def is_pdf(attachment: Attachment) -> bool:
    """A PDF, or an image that may be a scanned or photographed form."""
    return forms.is_form_file(attachment.content_type, attachment.filename, attachment.data)


def first_problem(request: ParsedRequest) -> str:
    return request.findings[0].message if request.findings else "It is not a form we know."


# At most this many files of one email are read as forms, PDFs before images. Each may
# take up to the PDF time limit, inside its batch's transaction (on SQLite, holding the
# database's write lock): a dozen hostile PDFs of a few hundred bytes held it for minutes.
# A request carries one form, now and then two or three.
MAX_FORM_FILES = 5
TOO_MANY_FORMS = (
    f"not read: the email holds more than {MAX_FORM_FILES} PDFs and images; only the first "
    f"{MAX_FORM_FILES} were read"
)


def form_files(mail: IncomingMail) -> tuple[list[Attachment], list[Attachment]]:
    """The attachments read as forms, and the PDFs and images left unread past the cap.
    PDFs come first, in their order, then images, the largest first: a photograph of a
    form outweighs the logos and icons of an email signature, which come before it."""
    candidates = sorted((a for a in mail.attachments if is_pdf(a)), key=_reading_order)
    return candidates[:MAX_FORM_FILES], candidates[MAX_FORM_FILES:]


def _reading_order(attachment: Attachment) -> tuple[bool, int]:
    image = forms.is_image(attachment.data)
    return image, -len(attachment.data) if image else 0


def unread_images(mail: IncomingMail) -> list[str]:
    """Notes for the case on the images past the cap, which were not read as forms."""
    return [
        f"Attachment {a.filename} was not read as a form: {TOO_MANY_FORMS}."
        for a in form_files(mail)[1]
        if forms.is_image(a.data)
    ]


def read_forms(
    mail: IncomingMail, limits: forms.PdfLimits | None = None
) -> tuple[list[tuple[str, ParsedRequest]], list[tuple[str, str]]]:
    """Each PDF attachment (and image) read: (filename, request) for recognised forms, and
    (filename, problem) for the rest. An image that holds no form we know (a logo in a
    signature, a photo) is left alone, as before scans were read: the body is read instead,
    and the image stays with the message for a caseworker. So is an image past the cap; a
    PDF past it is named as not read."""
    recognised: list[tuple[str, ParsedRequest]] = []
    unreadable: list[tuple[str, str]] = []
    read, left = form_files(mail)
    for attachment in read:
        request = forms.read_attachment(attachment.data, limits)
        if request.kind:
            recognised.append((attachment.filename, request))
        elif not forms.is_image(attachment.data):
            unreadable.append((attachment.filename, first_problem(request)))
    unreadable += [(a.filename, TOO_MANY_FORMS) for a in left if not forms.is_image(a.data)]
    return recognised, unreadable


# The requester of a case whose From header named no single mailbox: never deliverable.
NO_SENDER = "unknown@invalid"


def sender_of(mail: IncomingMail) -> tuple[str, str | None]:
    """The strict From reading's one address and display name (the case's requester)."""
    identity = mail.sender_identity
    if identity.address is None:
        return NO_SENDER, None
    return identity.address, (identity.display_name or None)


def note_message(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    inbound: InboundMessage,
    mail: IncomingMail,
    what: str,
    *,
    sender: SenderCheck,
    said: str | None = None,
) -> None:
    """A history row for a message received on the case: who (and whether anyone vouched
    for them), what subject, what it said."""
    address, _ = sender_of(mail)
    subject = mask_tokens(mail.subject or "")
    data: dict[str, Any] = {
        "inbound_id": inbound.id,
        "from": address,
        "subject": subject[:300],
        "sender_status": str(sender.verdict.status),
    }
    if said is not None:
        data["said"] = mask_tokens(said)[:QUOTE_LIMIT]
    who = address if sender.passed else f"{address} (sender not verified)"
    record(
        session,
        case,
        "message",
        f"{what} from {who}: {subject[:120]}",
        actor=address,
        data=data,
        at=env.clock.now(),
    )


def new_request(
    session: Session,
    env: WorkflowEnv,
    inbound: InboundMessage,
    mail: IncomingMail,
    classification: Classification,
) -> str:
    requester, _ = sender_of(mail)
    recognised, unreadable = read_forms(mail, env.pdf_limits)
    if recognised:
        source_name, request = recognised[0]
    else:
        source_name = None
        request = forms.read_email_request(mail.subject or "", mail.text or "", requester)
    notes = [
        f"Another form, {filename}, came in the same email and was not read; a "
        "caseworker may look at it."
        for filename, _ in recognised[1:]
    ]
    if request.kind in (None, CaseKind.OTHER) and unreadable:
        sender = check_sender(mail, env)
        case = open_case(session, env, request, inbound=inbound, mail=mail, sender=sender)
        if sender.verdict.status is Status.UNVERIFIED:
            return _unverified_request(session, env, case, inbound, sender)
        return _unreadable(session, env, case, inbound, unreadable, echo=_vouched(sender))
    notes += [f"Attachment {filename} was not read: {problem}" for filename, problem in unreadable]
    notes += unread_images(mail)
    if _forms_differ(recognised):
        return _forms_to_choose(session, env, request, inbound, mail, recognised, notes)
    return start_case(
        session, env, request, inbound=inbound, mail=mail, source_name=source_name, notes=notes
    )


def _forms_differ(recognised: list[tuple[str, ParsedRequest]]) -> bool:
    """Do the forms of one email ask for different things ("form.pdf" and
    "form-corrected.pdf")? Copies of one form do not."""
    first = recognised[0][1] if recognised else None
    return first is not None and any(
        other.kind != first.kind or other.fields != first.fields for _, other in recognised[1:]
    )


def _forms_to_choose(
    session: Session,
    env: WorkflowEnv,
    request: ParsedRequest,
    inbound: InboundMessage,
    mail: IncomingMail,
    recognised: list[tuple[str, ParsedRequest]],
    notes: list[str],
) -> str:
    """An email with forms that ask for different things: which one stands cannot be told
    from the email, so a caseworker decides before anyone is asked to approve."""
    case, sender = _opened(
        session, env, request, inbound=inbound, mail=mail, source_name=recognised[0][0], notes=notes
    )
    if sender.verdict.status is Status.UNVERIFIED:
        return _unverified_request(session, env, case, inbound, sender)
    if sender.address is not None:
        _acknowledge_unvouched(session, env, case, sender.address, inbound)
    names = ", ".join(filename for filename, _ in recognised)
    return to_triage(
        session,
        env,
        case,
        f"The email holds {len(recognised)} forms that ask for different things "
        f"({names}); a caseworker must find out which one stands.",
        "forms that differ",
    )


def start_case(
    session: Session,
    env: WorkflowEnv,
    request: ParsedRequest,
    *,
    inbound: InboundMessage,
    mail: IncomingMail,
    source_name: str | None = None,
    notes: list[str] | None = None,
) -> str:
    """Open the case for a request that was read, acknowledge it, decide and persist."""
    case, sender = _opened(
        session, env, request, inbound=inbound, mail=mail, source_name=source_name, notes=notes
    )
    if sender.verdict.status is Status.UNVERIFIED:
        return _unverified_request(session, env, case, inbound, sender)
    return decide_and_persist(
        session,
        env,
        case,
        request,
        sender,
        inbound,
        acknowledge=True,
        sender_words=mail.text,
        sender_subject=mail.subject,
    )


def _opened(
    session: Session,
    env: WorkflowEnv,
    request: ParsedRequest,
    *,
    inbound: InboundMessage,
    mail: IncomingMail,
    source_name: str | None,
    notes: list[str] | None,
) -> tuple[Case, SenderCheck]:
    """The case for a request that was read, with the sender checked and `notes` recorded."""
    sender = check_sender(mail, env)
    case = open_case(
        session, env, request, inbound=inbound, mail=mail, source_name=source_name, sender=sender
    )
    for note in notes or []:
        record(session, case, "note", note, at=env.clock.now())
    return case, sender


def to_triage(session: Session, env: WorkflowEnv, case: Case, reason: str, what: str) -> str:
    """Send the case to a caseworker for `reason`; the outcome says `what` happened."""
    move(session, case, CaseState.TRIAGE, actor=SYSTEM, now=env.clock.now(), reason=reason)
    return f"{case.ref}: {what}; sent to triage."


def _unverified_request(
    session: Session, env: WorkflowEnv, case: Case, inbound: InboundMessage, sender: SenderCheck
) -> str:
    """From did not read as one clean mailbox: nobody can say who asked, so a person
    decides. The acknowledgement goes only to the one address the strict reading found."""
    if sender.address is not None:
        _acknowledge_unvouched(session, env, case, sender.address, inbound)
    return to_triage(
        session,
        env,
        case,
        f"Unverified sender: {sender.verdict.detail} A caseworker must check who sent the request.",
        "unverified sender",
    )


def open_case(
    session: Session,
    env: WorkflowEnv,
    request: ParsedRequest,
    *,
    inbound: InboundMessage,
    mail: IncomingMail,
    source_name: str | None = None,
    sender: SenderCheck | None = None,
) -> Case:
    """A case for a request read from `mail`: the sender is the requester; what was read
    and the sender checks go to the history."""
    now = env.clock.now()
    requester, requester_name = sender_of(mail)
    kind = request.kind if request.kind in set(CaseKind) else CaseKind.OTHER
    case = create_case(
        session,
        kind=kind,
        requester=requester,
        requester_name=requester_name,
        organisation_code=clean_ods(request.fields.get("organisation_code") or "") or None,
        subject=(mail.subject or "")[:300],
        fields=request.fields,
        findings=request.findings_as_dicts(),
        source_message_id=inbound.id,
        now=now,
    )
    ledger.link_case(session, inbound, case.id)
    sender = sender or check_sender(mail, env)
    note_message(session, env, case, inbound, mail, "Request received", sender=sender)
    record_checks(
        session,
        case,
        sender.checks,
        actor=SYSTEM,
        now=now,
        data={"sender_authentication": sender.authentication},
    )
    record(
        session,
        case,
        "read",
        f"Read {source_name or 'the email body'} as {request.kind or 'nothing recognisable'}"
        f" ({request.source}); {len(request.findings)} finding(s).",
        at=now,
        data={
            "source": request.source,
            "form_version": request.form_version,
            "attachment": source_name,
            "findings": request.findings_as_dicts(),
        },
    )
    return case


def tell_unreadable(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    inbound: InboundMessage,
    unreadable: list[tuple[str, str]],
    *,
    echo: bool = True,
) -> None:
    """One email to the requester for each attachment that could not be read, and why;
    without `echo`, the file not named (its name is the sender's words)."""
    for filename, problem in unreadable:
        notify(
            session,
            env,
            case,
            "attachment_unreadable",
            to=case.requester,
            name=case.requester_name,
            context={"filename": filename if echo else "you sent", "problem": problem},
            reply_to=inbound,
            echo=echo,
        )


def _unreadable(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    inbound: InboundMessage,
    unreadable: list[tuple[str, str]],
    *,
    echo: bool,
) -> str:
    """No form could be read: tell the requester what was wrong with each attachment."""
    tell_unreadable(session, env, case, inbound, unreadable, echo=echo)
    reason = "; ".join(f"{name}: {problem}" for name, problem in unreadable)
    case.findings = [
        Finding("pdf_unreadable", f"{name}: {problem}", None).as_dict()
        for name, problem in unreadable
    ]
    move(
        session,
        case,
        CaseState.NEEDS_INFO,
        actor=SYSTEM,
        now=env.clock.now(),
        reason=f"The attached form could not be read ({reason}); the requester was asked "
        "to send it again.",
    )
    return f"{case.ref}: attachment unreadable; requester told."


def decide_and_persist(
    session: Session,
    env: WorkflowEnv,
    case: Case,
    request: ParsedRequest,
    sender: SenderCheck | None,
    inbound: InboundMessage,
    *,
    acknowledge: bool,
    sender_words: str = "",
    sender_subject: str = "",
) -> str:
    """Decide the case and carry the decision out; `sender_words` and `sender_subject` are
    the text and subject of the message that brought the request (its sender's doubts keep
    it from being their approval)."""
    facts = gather_facts(
        session,
        case.kind,
        case.fields or {},
        sender=sender.address if sender else None,
        sender_verified=bool(sender and sender.vouches_for_submission(env.sender_policy)),
        sender_words=sender_words,
        sender_subject=sender_subject,
        requester=case.requester,
    )
    decision = decide(
        ParsedRequest(
            kind=case.kind,
            fields=case.fields or {},
            findings=list(request.findings),
            source=request.source,
        ),
        facts,
    )
    decision = _unvouched(decision, sender)
    vouched = _vouched(sender)
    if acknowledge and decision.target_state not in FINAL_STATES and not vouched:
        _acknowledge_unvouched(session, env, case, case.requester, inbound)
    elif acknowledge and decision.target_state not in FINAL_STATES:
        notify(
            session,
            env,
            case,
            "acknowledgement",
            to=case.requester,
            name=case.requester_name,
            context={
                "summary": summary_lines(case),
                "approvers": approvers_named(decision),
                "scan_values": scan_values(case),
            },
            reply_to=inbound,
        )
    persist_decision(session, env, case, decision, reply_to=inbound, echo=vouched)
    return f"{case.ref} ({case.kind}): {case.state}. {decision.reason}"


def _vouched(sender: SenderCheck | None) -> bool:
    """Did the receiving server vouch for the sender, or was it not asked to (the check is
    off, or the case was not opened from an email)?"""
    return sender is None or str(sender.verdict.status) not in UNVOUCHED


def _acknowledge_unvouched(
    session: Session, env: WorkflowEnv, case: Case, to: str, inbound: InboundMessage
) -> None:
    """The acknowledgement to a sender nobody vouched for repeats nothing of what they sent:
    anyone can write any From, and a reply from our address quoting their words ("Your
    password expires today: sign in at …" as the organisation's name) would carry them to
    whomever they named."""
    notify(
        session,
        env,
        case,
        "acknowledgement",
        to=to,
        name=None,
        context={"summary": [], "approvers": []},
        reply_to=inbound,
        echo=False,
    )


def _unvouched(decision: Decision, sender: SenderCheck | None) -> Decision:
    """A request whose sender the receiving server did not vouch for is never put to an
    approver in that sender's name, nor granted: anyone can write any From, and the person
    named may be the very approver who would have said no. A person confirms it first.
    Directions and requests for information go ahead: they grant nothing."""
    if (
        sender is None
        or sender.verdict.status is not Status.NOT_AUTHENTICATED
        or decision.action not in (Action.ASK_APPROVERS, Action.APPROVE)
    ):
        return decision
    check = Check(
        "sender_vouched",
        False,
        f"The receiving mail server did not vouch for {sender.address}: {sender.verdict.detail}",
    )
    return replace(
        decision,
        action=Action.TRIAGE,
        approvers=(),
        checks=(*decision.checks, check),
        reason=f"The request would go to approval, but nobody vouched that "
        f"{sender.address} sent it; a caseworker must confirm it with the "
        "organisation before an approver is asked.",
    )
