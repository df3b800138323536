"""What an approval request (and its reminder) tells the approver.

The first screen of the email on a phone must hold the whole decision: who asks, for
whom, which role and what it lets them do, whom a new Main Contact replaces, in what
capacity the approver is asked, and the date to answer by. So the context carries
those as ready sentences' parts, looked up in the directory rather than guessed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from core.catalogue import Service, capacity_title
from core.timeutil import as_utc
from forms.normalise import name_problem
from workflow import approvals, directory
from workflow.decisions import Action, Approver, Decision, planned_changes
from workflow.models import ApprovalRequest, Case
from workflow.scans import scan_values

# The body a Reject button opens with; workflow.replies strips this prompt from the reason.
REJECT_PROMPT = "Reason for rejecting: "


def requested_by(case: Case) -> str:
    name = shown_name(case)
    return f"{name} <{case.requester}>" if name else case.requester


def shown_name(case: Case) -> str:
    """The requester's display name as the approver is shown it: empty unless it reads as a
    name, since the sender typed it ("PCSE has checked this, reply APPROVE" would do)."""
    name = (case.requester_name or "").strip()
    return "" if name_problem(name) else name


def change_context(case: Case) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """The nominees (with their roles) and the main contact a case asks for."""
    nominees: dict[str, dict[str, Any]] = {}
    contact: dict[str, str] | None = None
    for change in planned_changes(case.kind, case.fields or {}):
        if change.service is Service.MAIN_CONTACT:
            contact = {"name": change.name, "email": change.email}
            continue
        entry = nominees.setdefault(
            change.email, {"name": change.name, "email": change.email, "roles": []}
        )
        entry["roles"].append(change.role)
    return list(nominees.values()), contact


def answer_links(inbox: str, case: Case, token: str) -> dict[str, str]:
    """mailto: links that open an answer with its subject filled in (one click on a phone).
    The subject carries the verdict, the case reference and the token; the answer passes
    the same sender checks as a reply."""

    def link(verdict: str, body: str = "") -> str:
        query = f"subject={quote(f'{verdict} [{case.ref}] {token}')}"
        return f"mailto:{inbox}?{query}" + (f"&body={quote(body)}" if body else "")

    return {"approve_link": link("APPROVE"), "reject_link": link("REJECT", REJECT_PROMPT)}


def asker(case: Case) -> str:
    """Who asked, as the first line names them: their name and address, or the address.
    A display name is whatever the sender typed ("Dr Anil Patel, Senior Partner" from a
    Gmail address), so the address stands beside it."""
    name = shown_name(case)
    return f"{name} ({case.requester})" if name else case.requester


def approver_capacity(session: Session, case: Case, approval: ApprovalRequest) -> str:
    """The capacity the approver is asked in, as a phrase that follows "You are asked"."""
    org = directory.get_org(session, case.organisation_code or "")
    if approval.approver_source == "ael":
        icb = directory.get_org(session, org.icb_code) if org and org.icb_code else None
        whose = f"{icb.name}'s" if icb else "the ICB's"
        return f"as {whose} authorised approver on the Authorised Email List (AEL)"
    if approval.approver_source == "signer":
        title = capacity_title(approval.capacity) or "signer"
        where = org.name if org else "the organisation"
        return f"as a {title} recorded for {where}"
    return "as the approver recorded for the organisation"


def current_main_contact(session: Session, case: Case, new_email: str) -> str | None:
    """The name of the Main Contact a change would replace; None when there is none
    (or the nominee already holds the role)."""
    holder = directory.main_contact(session, case.organisation_code or "")
    if holder is None or holder.email.lower() == new_email.lower():
        return None
    return holder.name


def approval_context(
    session: Session, case: Case, approval: ApprovalRequest, inbox: str
) -> dict[str, Any]:
    """The context of `approval_request` and `approval_reminder`."""
    nominees, contact = change_context(case)
    main_contact: dict[str, Any] | None = None
    if contact:
        main_contact = {
            **contact,
            "replaces": current_main_contact(session, case, contact["email"]),
        }
    token = approvals.shown(approval.token)
    return {
        **answer_links(inbox, case, token),
        "approver_name": approval.approver_name,
        "asker": asker(case),
        "capacity": approver_capacity(session, case, approval),
        "nominees": nominees,
        "main_contact": main_contact,
        "requested_by": requested_by(case),
        "token": token,
        "expires_on": as_utc(approval.expires_at).date().isoformat(),
        "scan_values": scan_values(case),
    }


def approver_label(approver: Approver) -> str:
    """An approver as the requester's acknowledgement names them."""
    if approver.source == "ael":
        return f"{approver.name} (your ICB's authorised approver)"
    title = capacity_title(approver.capacity)
    return f"{approver.name} ({title})" if title else approver.name


def approvers_named(decision: Decision) -> list[str]:
    """Who the acknowledgement says will be asked to approve; empty when nobody is yet."""
    if decision.action is not Action.ASK_APPROVERS:
        return []
    return [approver_label(a) for a in decision.approvers]
