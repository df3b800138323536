"""Approval tokens and the checks an approver's answer must pass (design: "Approvals by email").

A token is 20 lower-case hex characters, shown to people as APV-<hex>, bound to one case
and one approver whose address came from the directory or the AEL. An answer counts only
when the token is open and unexpired and belongs to the case the message is about, the
From header holds exactly one address, that address is the approver's, and (where
trusted authserv-ids are configured) the topmost Authentication-Results header from a
trusted authserv-id shows dmarc=pass for the From domain. Tokens are closed with a
guarded UPDATE, so a token is used once even if two workers read the same answer.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import authres
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workflow import directory
from workflow.catalogue import AEL_GP_PAYMENTS_GENERAL
from workflow.decisions import Approver, Check
from workflow.env import WorkflowEnv
from workflow.inbound import IncomingMail
from workflow.models import ApprovalRequest, Case
from workflow.states import CaseState

TOKEN_RE = re.compile(r"\bAPV-([0-9a-f]{20})\b", re.IGNORECASE)
CASE_REF_RE = re.compile(r"\[(PCSE-\d{4}-\d{6})\]", re.IGNORECASE)

# Case states in which an approver's answer may still decide the case.
ANSWERABLE_STATES = frozenset({CaseState.AWAITING_APPROVAL, CaseState.TRIAGE})


def new_token() -> str:
    return secrets.token_hex(10)


def shown(token: str) -> str:
    """The token as people see it in subjects and bodies."""
    return f"APV-{token}"


def find_token(text: str) -> str | None:
    match = TOKEN_RE.search(text or "")
    return match.group(1).lower() if match else None


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    )
    session.add(row)
    session.flush()
    return row


def open_requests(session: Session, case: Case) -> list[ApprovalRequest]:
    return list(session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.case_id == case.id, ApprovalRequest.status == "open")
        .order_by(ApprovalRequest.id)
    ))


def close(
    session: Session, approval: ApprovalRequest, status: str, *, now: datetime,
    answer_message_id: int | None = None,
) -> bool:
    """Close an open token; False when someone else closed it first (it is single-use)."""
    result = session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == approval.id, ApprovalRequest.status == "open")
        .values(status=status, used_at=now, answer_message_id=answer_message_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        approval.status, approval.used_at = status, now
        approval.answer_message_id = answer_message_id
        return True
    return False


def close_all_open(session: Session, case: Case, status: str, *, now: datetime) -> list[str]:
    """Close every open token of the case (the case was decided another way); their tokens."""
    closed = [a for a in open_requests(session, case) if close(session, a, status, now=now)]
    return [shown(a.token) for a in closed]


# --------------------------------------------------------------------------- sender checks


@dataclass(frozen=True)
class SenderCheck:
    """Who sent a message, and whether the sender checks passed."""

    address: str | None  # the one From address; None when From did not hold exactly one
    passed: bool
    checks: tuple[Check, ...]
    authentication: str  # what the Authentication-Results said, for the history


def check_sender(mail: IncomingMail, env: WorkflowEnv) -> SenderCheck:
    """Exactly one From address and, where trusted authserv-ids are set, dmarc=pass."""
    addresses = [address.lower() for _, address in mail.from_addresses if address]
    checks: list[Check] = []
    single = len(addresses) == 1
    checks.append(Check("single_from", single,
                        f"The From header holds {len(addresses)} address(es)"
                        + (f": {', '.join(addresses)}." if addresses else ".")))
    address = addresses[0] if single else None
    if not env.trusted_authserv_ids:
        checks.append(Check("dmarc", True, "No trusted authserv-id is configured; DMARC is not "
                            "checked."))
        return SenderCheck(address, single, tuple(checks), "not checked")
    domain = address.rsplit("@", 1)[-1] if address else ""
    passed, said = dmarc_passes(mail.authentication_results, env.trusted_authserv_ids, domain)
    checks.append(Check("dmarc", passed, said))
    return SenderCheck(address, single and passed, tuple(checks), said)


def dmarc_passes(
    headers: Sequence[str], trusted: Sequence[str], from_domain: str
) -> tuple[bool, str]:
    """Does the topmost Authentication-Results from a trusted authserv-id say dmarc=pass
    for `from_domain`? Returns the verdict and a sentence saying what was found.

    Headers from other authserv-ids are ignored (anyone can write one). A header that
    claims a trusted id but cannot be parsed fails the check rather than being skipped.
    """
    trusted_ids = {t.strip().casefold() for t in trusted if t.strip()}
    ignored: list[str] = []
    for raw in headers:
        value = _unfold(raw)
        words = value.split(";", 1)[0].split()
        claimed = words[0].casefold() if words else ""
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(value)
        except authres.AuthResError as exc:
            if claimed in trusted_ids:
                return False, (f"The Authentication-Results header from {claimed} could not be "
                               f"read ({exc}).")
            ignored.append(claimed or "(unreadable)")
            continue
        serv_id = (parsed.authserv_id or "").casefold()
        if serv_id not in trusted_ids:
            ignored.append(serv_id)
            continue
        return _dmarc_verdict(parsed, serv_id, from_domain, ignored)
    note = f" (ignored headers from untrusted {', '.join(ignored)})" if ignored else ""
    return False, f"No Authentication-Results header from a trusted authserv-id{note}."


def _dmarc_verdict(
    parsed: authres.AuthenticationResultsHeader, serv_id: str, from_domain: str,
    ignored: list[str],
) -> tuple[bool, str]:
    note = f"; ignored headers from untrusted {', '.join(ignored)}" if ignored else ""
    dmarcs = [r for r in parsed.results if (r.method or "").casefold() == "dmarc"]
    if not dmarcs:
        return False, f"{serv_id} reported no DMARC result{note}."
    for result in dmarcs:
        header_from = next((p.value for p in result.properties
                            if (p.type, p.name) == ("header", "from")), None)
        verdict = (result.result or "").casefold()
        if verdict == "pass" and (header_from or "").casefold() == from_domain.casefold():
            return True, f"{serv_id}: dmarc=pass header.from={header_from}{note}."
    said = ", ".join(
        f"dmarc={r.result} header.from="
        + str(next((p.value for p in r.properties if (p.type, p.name) == ("header", "from")),
                   "?"))
        for r in dmarcs
    )
    return False, f"{serv_id}: {said}; the From domain is {from_domain or '(none)'}{note}."


def _unfold(raw: str) -> str:
    value = re.sub(r"\r?\n[ \t]+", " ", raw or "").strip()
    if value.lower().startswith("authentication-results:"):
        value = value.split(":", 1)[1].strip()
    return value


# --------------------------------------------------------------------------- answers


@dataclass
class Verification:
    """The outcome of checking an answer's token and sender; `checks` go to the history."""

    token: str
    approval: ApprovalRequest | None
    case: Case | None
    checks: list[Check] = field(default_factory=list)
    authentication: str = "not checked"

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
    approval = session.scalars(
        select(ApprovalRequest).where(ApprovalRequest.token == token)
    ).first()
    if approval is None:
        return Verification(token, None, about, [Check(
            "token_known", False, f"{shown(token)} is not a token the system issued.")])
    case = session.get(Case, approval.case_id)
    found = Verification(token, approval, case)
    checks = found.checks
    checks.append(Check("token_known", True,
                        f"{shown(token)} was issued on {case.ref} to {approval.approver_email}."))
    if about is not None:
        checks.append(Check("token_case", about.id == case.id,
                            f"The message is about {about.ref}; the token belongs to {case.ref}."))
    checks.append(Check("token_open", approval.status == "open",
                        f"The token is {approval.status}."
                        + (" It can be used once only." if approval.status != "open" else "")))
    expires = as_utc(approval.expires_at)
    checks.append(Check("token_unexpired", now < expires,
                        f"The token expires at {expires.isoformat(timespec='minutes')}."))
    checks.append(Check("case_waiting", CaseState(case.state) in ANSWERABLE_STATES,
                        f"{case.ref} is {case.state}."))
    sender = check_sender(mail, env)
    found.authentication = sender.authentication
    checks.extend(sender.checks)
    from_addresses = [a.lower() for _, a in mail.from_addresses]
    checks.append(Check(
        "sender_is_approver", sender.address == approval.approver_email.lower(),
        f"Sent from {', '.join(from_addresses) or '(no address)'}; the approver asked is "
        f"{approval.approver_email}."))
    checks.append(still_recorded(session, case, approval))
    return found


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
        found = org is not None and directory.find_ael_contact(session, icb, email,
                                                               role) is not None
    return Check("approver_still_recorded", found,
                 f"{email} is {'still' if found else 'no longer'} {where}.")
