"""Approval tokens and the checks an approver's answer must pass (design: "Approvals by email").

A token is 20 lower-case hex characters, shown to people as APV-<hex>, bound to one case,
one approver whose address came from the directory or the AEL, and a digest of the
changes it asks about. An answer counts only when the token is open and unexpired and
belongs to the case the message is about, the case's planned changes still have the
token's digest, the From header parsed strictly to exactly one mailbox, the configured
trust model vouches for the sender (core.senderauth), that address is the approver's, the
approver is still recorded, and is neither the requester nor a nominee. Tokens are closed
with a guarded UPDATE, so a token is used once even if two workers read the same answer.
In the history and on pages a token is shown masked: a token is a key, not a label.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.addresses import mailbox_key
from core.catalogue import AEL_GP_PAYMENTS_GENERAL, Service
from core.db import rowcount
from core.inbound import IncomingMail
from core.patterns import CASE_REF_RE, TOKEN_RE, mask_tokens
from core.senderauth import Profile, SenderPolicy, SenderVerdict, verdict_for
from core.states import CaseState
from core.timeutil import as_utc
from workflow import directory
from workflow.cases import hold_cases_by_id
from workflow.decisions import (
    Approver,
    Check,
    changes_digest,
    planned_changes,
    requester_conflicts,
)
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case

# Case states in which an approver's answer may still decide the case. Not triage: once a
# case waits for a person (an unclear or refused answer, a protest), a person decides, and
# re-asks an approver if they want one.
ANSWERABLE_STATES = frozenset({CaseState.AWAITING_APPROVAL})


def new_token() -> str:
    return secrets.token_hex(10)


def shown(token: str) -> str:
    """The token as the approver sees it in the subject and body of their email."""
    return f"APV-{token}"


def masked(token: str) -> str:
    """The token as the history and pages show it: enough to tell tokens apart."""
    return mask_tokens(shown(token))


def find_token(text: str) -> str | None:
    match = TOKEN_RE.search(text or "")
    return match.group(1).lower() if match else None


# --------------------------------------------------------------------------- tokens


def open_request(
    session: Session, env: WorkflowEnv, case: Case, approver: Approver, *, now: datetime
) -> ApprovalRequest:
    """A fresh single-use token for this approver on this case."""
    row = ApprovalRequest(
        case_id=case.id,
        token=new_token(),
        approver_email=approver.email.lower(),
        approver_name=approver.name,
        approver_source=approver.source,
        capacity=approver.capacity,
        created_at=now,
        expires_at=now + timedelta(days=env.expire_after_days),
        status="open",
        digest=approval_digest(session, case),
    )
    session.add(row)
    session.flush()
    return row


def case_digest(case: Case) -> str:
    """The digest of what applying the case would do now (decisions.changes_digest)."""
    return changes_digest(case.kind, case.organisation_code, case.fields or {})


def approval_digest(session: Session, case: Case) -> str:
    """What an approver answers for: the case's changes (case_digest) and, where they give
    the Main Contact role, who holds it now. The approval request names that person as the
    one replaced; should another hold the role by the time the answer comes, the answer is
    about someone else and does not count."""
    digest = case_digest(case)
    gives_main_contact = any(
        change.service == Service.MAIN_CONTACT
        for change in planned_changes(case.kind, case.fields or {})
    )
    if not gives_main_contact or not case.organisation_code:
        return digest
    holder = directory.main_contact(session, case.organisation_code)
    replaced = holder.email.lower() if holder is not None else ""
    return hashlib.sha256(f"{digest}|main-contact:{replaced}".encode()).hexdigest()


def open_requests(session: Session, case: Case) -> list[ApprovalRequest]:
    return list(
        session.scalars(
            select(ApprovalRequest)
            .where(ApprovalRequest.case_id == case.id, ApprovalRequest.status == "open")
            .order_by(ApprovalRequest.id)
        )
    )


def close(
    session: Session,
    approval: ApprovalRequest,
    status: str,
    *,
    now: datetime,
    answer_message_id: int | None = None,
) -> bool:
    """Close an open token; False when someone else closed it first (it is single-use)."""
    result = session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == approval.id, ApprovalRequest.status == "open")
        .values(status=status, used_at=now, answer_message_id=answer_message_id)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) == 1:
        approval.status, approval.used_at = status, now
        approval.answer_message_id = answer_message_id
        return True
    return False


def close_all_open(session: Session, case: Case, status: str, *, now: datetime) -> list[str]:
    """Close every open token of the case (the case was decided another way); their tokens."""
    closed = [a for a in open_requests(session, case) if close(session, a, status, now=now)]
    return [masked(a.token) for a in closed]


# --------------------------------------------------------------------------- sender checks


@dataclass(frozen=True)
class SenderCheck:
    """Who sent a message, and what the receiving mail server vouched for."""

    address: str | None  # the one From address; None when From did not hold exactly one
    verdict: SenderVerdict
    checks: tuple[Check, ...]
    addressed_to_us: bool = False  # one of our addresses is in To or Cc

    @property
    def passed(self) -> bool:
        """May the sender answer for themself (a reply on their case, a token answer)?"""
        return self.verdict.trusted

    @property
    def authenticated(self) -> bool:
        """Did the receiving server vouch? Nothing is granted on identity alone otherwise."""
        return self.verdict.authenticated

    def vouches_for_submission(self, policy: SenderPolicy) -> bool:
        """Is this message, on its own, a recorded approver's submission to us? Only one
        sent from a mailbox inside the tenant (Microsoft 365's `AuthAs: Internal`) and
        addressed to us. DKIM and DMARC vouch for From, the signed headers and the body,
        never for whom the message was sent to: the approver's mail to someone else,
        replayed into the inbox with our address added in a To or Cc the signature does not
        cover, still passes them, so under `authserv-id` the approvers are asked with codes."""
        return (
            policy.profile is Profile.MICROSOFT365
            and self.authenticated
            and self.verdict.internal
            and self.addressed_to_us
        )

    @property
    def authentication(self) -> str:
        """What vouched and what was found, for the history."""
        vouched = f" ({self.verdict.vouched_by})" if self.verdict.vouched_by else ""
        return f"{self.verdict.status}{vouched}: {self.verdict.detail}"


def check_sender(mail: IncomingMail, env: WorkflowEnv) -> SenderCheck:
    """The strict From reading and the configured trust model's verdict, as checks."""
    identity = mail.sender_identity
    verdict = verdict_for(env.sender_policy, mail)
    checks = [
        Check(
            "sender_parsed",
            identity.parsed_cleanly,
            f"From is one clean mailbox, {identity.address}."
            if identity.parsed_cleanly
            else identity.problem or "From names no sender.",
        )
    ]
    if identity.parsed_cleanly:
        checks.append(
            Check(
                "sender_authenticated",
                verdict.trusted,
                f"{env.sender_policy.profile}: {verdict.detail}",
            )
        )
    ours = {a.lower() for a in env.our_addresses}
    addressed = any(a.lower() in ours for a in mail.to_addresses)
    return SenderCheck(identity.address, verdict, tuple(checks), addressed)


# --------------------------------------------------------------------------- answers


@dataclass
class Verification:
    """The outcome of checking an answer's token and sender; `checks` go to the history."""

    token: str
    approval: ApprovalRequest | None
    case: Case | None
    sender: SenderCheck
    checks: list[Check] = field(default_factory=list)

    @property
    def authentication(self) -> str:
        return self.sender.authentication

    @property
    def accepted(self) -> bool:
        return self.approval is not None and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def refusal(self) -> str:
        failed = self.failures
        return " ".join(c.detail for c in failed) if failed else ""


def referenced_case(session: Session, subject: str, case_id: int | None) -> Case | None:
    """The case a message says it is about: intake's classification, else the subject's ref."""
    if case_id is not None:
        return session.get(Case, case_id)
    match = CASE_REF_RE.search(subject or "")
    if match is None:
        return None
    return session.scalars(select(Case).where(Case.ref == match.group(1).upper())).first()


def verify_answer(
    session: Session,
    env: WorkflowEnv,
    mail: IncomingMail,
    token: str,
    *,
    about: Case | None = None,
) -> Verification:
    """Every check an approval answer must pass, each recorded with its outcome.

    `about` is the case the message otherwise refers to (subject reference or thread);
    a token of another case is refused.
    """
    token = token.lower()
    now = env.clock.now()
    sender = check_sender(mail, env)
    approval = (
        session.scalars(select(ApprovalRequest).where(ApprovalRequest.token == token)).first()
        if token
        else None
    )
    if approval is None:
        return Verification(
            token,
            None,
            about,
            sender,
            [
                Check(
                    "token_known",
                    False,
                    "The message carries no approval code the system issued."
                    if not token
                    else f"{masked(token)} is not a code the system issued.",
                )
            ],
        )
    # The case and its organisation held before anything is checked: another answer, a
    # caseworker, or another case's changes at the organisation (the Main Contact this
    # request was to replace, say) wait or are seen, not changed between check and apply.
    # The case the message otherwise names is held with it (in order), as it is written on.
    held = hold_cases_by_id(session, {approval.case_id} | ({about.id} if about else set()))
    case = held[approval.case_id]
    session.refresh(approval)  # as it is now that its case is held
    found = Verification(token, approval, case, sender)
    checks = found.checks
    checks.append(
        Check(
            "token_known",
            True,
            f"{masked(token)} was issued on {case.ref} to {approval.approver_email}.",
        )
    )
    if about is not None:
        checks.append(
            Check(
                "token_case",
                about.id == case.id,
                f"The message is about {about.ref}; the code belongs to {case.ref}.",
            )
        )
    checks.append(
        Check(
            "token_open",
            approval.status == "open",
            f"The code is {approval.status}."
            + (" It can be used once only." if approval.status != "open" else ""),
        )
    )
    expires = as_utc(approval.expires_at)
    checks.append(
        Check(
            "token_unexpired",
            now < expires,
            f"The code expires at {expires.isoformat(timespec='minutes')}.",
        )
    )
    checks.append(
        Check(
            "case_waiting",
            CaseState(case.state) in ANSWERABLE_STATES,
            f"{case.ref} is {case.state}.",
        )
    )
    unchanged = approval.digest == approval_digest(session, case)
    checks.append(
        Check(
            "changes_unchanged",
            unchanged,
            "The changes are still those the approver was asked about."
            if unchanged
            else "The case, or the Main Contact its approval request said would be "
            "replaced, has changed since the approver was asked; this answer is about "
            "something that will no longer be applied.",
        )
    )
    checks.extend(sender.checks)
    checks.append(
        Check(
            "sender_is_approver",
            sender.address == approval.approver_email.lower(),
            f"Sent from {sender.address or '(no single address)'}; the approver asked is "
            f"{approval.approver_email}.",
        )
    )
    checks.append(still_recorded(session, case, approval))
    checks.append(independent(case, approval.approver_email))
    return found


def independent(case: Case, approver_email: str) -> Check:
    """Separation of duties: nobody approves a request they made or a role they would get."""
    email = approver_email.lower()
    # Compared by mailbox: jane+pcn@ and jane@ reach one person (core.addresses.mailbox_key).
    key = mailbox_key(email)
    nominees = {mailbox_key(c.email) for c in planned_changes(case.kind, case.fields or {})}
    if requester_conflicts(case.kind) and key == mailbox_key(case.requester or ""):
        return Check(
            "approver_independent", False, f"{email} made the request and cannot also approve it."
        )
    if key in nominees:
        return Check(
            "approver_independent",
            False,
            f"{email} is named for a role in the request and cannot approve it.",
        )
    return Check("approver_independent", True, f"{email} is neither the requester nor a nominee.")


def still_recorded(session: Session, case: Case, approval: ApprovalRequest) -> Check:
    """Is the approver asked still a recorded signer, or still on the AEL? A token outlives
    an import that removed its approver; the answer must not."""
    email = approval.approver_email
    org = directory.get_org(session, case.organisation_code or "")
    if approval.approver_source == "signer":
        where = f"a recorded signer of {case.organisation_code}"
        found = org is not None and directory.find_signer(session, org.code, email) is not None
    else:
        icb = (org.icb_code if org is not None else None) or "(unknown)"
        role = approval.capacity or AEL_GP_PAYMENTS_GENERAL
        where = f"on the Authorised Email List for ICB {icb} ({role})"
        found = (
            org is not None and directory.find_ael_contact(session, icb, email, role) is not None
        )
    return Check(
        "approver_still_recorded", found, f"{email} is {'still' if found else 'no longer'} {where}."
    )
