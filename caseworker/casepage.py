"""What the case page shows, read in one transaction: the case, what was read and found,
the original email, the directory's view of the organisation, history and emails."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caseworker.helpdesk_view import helpdesk_view
from caseworker.labels import ACTION_LABELS, KIND_LABELS
from caseworker.mailview import MailView, message_view
from caseworker.newreply import history_steps, new_reply_view
from caseworker.scanview import scan_view
from core.catalogue import CATALOGUE, SIGNER_CAPACITIES, Service
from core.patterns import mask_tokens
from core.timeutil import as_utc
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow import actions, directory, rekind
from workflow.approval_plan import open_proposal
from workflow.cases import get_case
from workflow.models import ApprovalRequest, Case
from workflow.retention import retention_summary

FIELD_LABELS = {
    "organisation_code": "Organisation code",
    "organisation_name": "Organisation name",
    "nominees": "Nominees",
    "main_contact": "Main contact",
    "signer": "Signed by",
}
# Kept with the reading but shown apart (per-field sources and confidences, scan details).
NOT_SHOWN = frozenset({"readings", "scan"})
SERVICE_NAMES = {
    "gpp": "GP Payments and Pensions",
    "pl": "Performers Lists",
    "oph": "Ophthalmic Payments",
    "pcn": "PCN payments",
    "main_contact": "Supplies and Medical Records",
}


def describe(value: Any) -> list[str]:
    """A field's value as lines of plain text."""
    if value is None or value == "" or value == []:
        return ["Not given"]
    if isinstance(value, bool):
        return ["Yes" if value else "No"]
    if isinstance(value, list):
        return [line for item in value for line in describe(item)]
    if isinstance(value, dict):
        return (
            [_describe_person(value)]
            if "email" in value or "name" in value
            else [f"{str(k).replace('_', ' ')}: {', '.join(describe(v))}" for k, v in value.items()]
        )
    return [str(value)]


def _describe_person(value: dict[str, Any]) -> str:
    parts = [str(value.get("name") or "(no name)")]
    if value.get("email"):
        parts.append(str(value["email"]))
    if value.get("services"):
        parts.append("for " + ", ".join(SERVICE_NAMES.get(s, str(s)) for s in value["services"]))
    if value.get("capacity"):
        parts.append(SIGNER_CAPACITIES.get(value["capacity"], str(value["capacity"])))
    if value.get("date"):
        parts.append(f"dated {value['date']}")
    if "declaration" in value:
        parts.append("declaration ticked" if value["declaration"] else "declaration NOT ticked")
    return " – ".join(parts)


def _field_of(finding: dict[str, Any], keys: list[str]) -> str | None:
    name = str(finding.get("field") or "")
    for key in keys:
        if name == key or name.startswith((f"{key}.", f"{key}[", f"{key}_")):
            return key
    return None


def fields_with_findings(fields: dict[str, Any], findings: list[dict[str, Any]]) -> dict:
    """Each field read, beside the findings about it; the rest of the findings apart."""
    keys = list(FIELD_LABELS) + [k for k in fields if k not in FIELD_LABELS and k not in NOT_SHOWN]
    about: dict[str, list[str]] = {}
    general: list[str] = []
    for finding in findings:
        message = str(finding.get("message") or finding.get("code") or finding)
        key = _field_of(finding, keys)
        if key is None:
            general.append(message)
        else:
            about.setdefault(key, []).append(message)
    rows = [
        {
            "key": key,
            "label": FIELD_LABELS.get(key, key.replace("_", " ").capitalize()),
            "lines": describe(fields.get(key)),
            "findings": about.get(key, []),
        }
        for key in keys
        if key in fields or key in about
    ]
    return {"rows": rows, "general": general}


def directory_view(session: Session, code: str | None) -> dict[str, Any] | None:
    org = directory.get_org(session, code) if code else None
    if org is None:
        return None
    services = []
    for service in (Service.GPP, Service.PL, Service.OPH, Service.PCN):
        info = CATALOGUE[service]
        holders = directory.admins(session, org.code, service)
        services.append(
            {
                "title": info.title,
                "role": info.admin_role,
                "limit": info.max_admins,
                "people": [{"name": p.name, "email": p.email} for p in holders],
            }
        )
    main = directory.main_contact(session, org.code)
    signers = [
        {
            "name": s.name,
            "email": s.email,
            "capacity": SIGNER_CAPACITIES.get(s.capacity, s.capacity),
        }
        for s in directory.signers_for(session, org.code)
    ]
    ael = [
        {"name": a.name, "email": a.email, "role": a.ael_role}
        for a in (directory.ael_contacts_for(session, org.icb_code) if org.icb_code else [])
    ]
    return {
        "code": org.code,
        "name": org.name,
        "type": org.type,
        "icb_code": org.icb_code,
        "status": org.status,
        "services": services,
        "main_contact": {"name": main.name, "email": main.email} if main else None,
        "signers": signers,
        "ael": ael,
    }


def approver_choices(view: dict[str, Any] | None) -> list[dict[str, str]]:
    """Recorded approvers of the organisation: its signers, then its ICB's AEL contacts."""
    if view is None:
        return []
    choices = [
        {"value": s["email"], "text": f"{s['name']} ({s['capacity']}) – {s['email']}"}
        for s in view["signers"]
    ]
    choices += [
        {
            "value": a["email"],
            "text": f"{a['name']} (AEL contact, ICB {view['icb_code']}) – {a['email']}",
        }
        for a in view["ael"]
    ]
    return choices


@dataclass(frozen=True)
class EmailRow:
    direction: str  # "in" or "out"
    at: Any
    who: str  # the address (strictly read, for inbound mail)
    subject: str
    status: str
    href: str
    label: str
    name: str | None = None  # the display name, shown apart from the address
    sender_status: str | None = None  # inbound: what vouched for the sender
    sender_detail: str | None = None


def emails(session: Session, case: Case) -> list[EmailRow]:
    received = session.scalars(select(InboundMessage).where(InboundMessage.case_id == case.id))
    sent = session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case.id))
    rows = [
        EmailRow(
            "in",
            as_utc(m.received_at),
            m.from_address or "(no single address)",
            mask_tokens(m.subject or "(no subject)"),
            m.status,
            f"/messages/{m.id}",
            "Received",
            m.from_name,
            m.sender_status,
            m.sender_detail,
        )
        for m in received
    ]
    rows += [
        EmailRow(
            "out",
            as_utc(m.created_at),
            m.to_address,
            mask_tokens(m.subject),
            m.status,
            f"/outbox/{m.id}",
            "Sent" if m.status == "sent" else "To send",
        )
        for m in sent
    ]
    return sorted(rows, key=lambda r: r.at)


def original_email(
    session: Session, raw_dir: Path, case: Case, seconds: float
) -> tuple[int | None, MailView]:
    if case.source_message_id is None:
        return None, MailView(missing="This case was not opened from an email.")
    message = session.get(InboundMessage, case.source_message_id)
    if message is None:
        return None, MailView(missing="The message that opened this case is not in the ledger.")
    if message.purged_at is not None:
        removed = as_utc(message.purged_at).date().isoformat()
        return message.id, MailView(
            missing=f"The original email was removed on {removed} under the retention policy."
        )
    return message.id, message_view(session, raw_dir, message, seconds)


def approval_requests(session: Session, case: Case) -> list[dict[str, Any]]:
    """Who was asked to approve, and what became of it."""
    rows = session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.case_id == case.id)
        .order_by(ApprovalRequest.created_at, ApprovalRequest.id)
    )
    return [
        {
            "name": r.approver_name,
            "email": r.approver_email,
            "source": "practice signer" if r.approver_source == "signer" else "AEL contact",
            "capacity": SIGNER_CAPACITIES.get(r.capacity or "", r.capacity or ""),
            "created_at": as_utc(r.created_at),
            "expires_at": as_utc(r.expires_at),
            "status": r.status,
            "used_at": as_utc(r.used_at),
        }
        for r in rows
    ]


def allowed_actions(case: Case, *, supervisor: bool) -> list[dict[str, str]]:
    names = [n for n in actions.allowed_actions(case) if supervisor or n != "reopen"]
    return [{"name": n, "label": ACTION_LABELS.get(n, n)} for n in names]


def plan_parts(case: Case) -> dict[str, Any]:
    """An approval waiting for a second caseworker, and the kinds the case may change to."""
    return {
        "proposal": open_proposal(case) if "approve" in actions.allowed_actions(case) else None,
        "kind_changeable": rekind.can_change_kind(case),
        "kind_options": [{"value": k, "text": t} for k, t in KIND_LABELS.items()],
    }


def case_page(
    session: Session, ref: str, raw_dir: Path, *, supervisor: bool, seconds: float
) -> dict[str, Any]:
    """Everything the case page shows; `seconds` of CPU may go on reading its email."""
    case = get_case(session, ref)
    source_id, mail = original_email(session, raw_dir, case, seconds)
    org = directory_view(session, case.organisation_code)
    return {
        "case": {
            "ref": case.ref,
            "kind": case.kind,
            "state": case.state,
            "organisation_code": case.organisation_code,
            "requester": case.requester,
            "requester_name": case.requester_name,
            "subject": case.subject,
            "reason": case.reason,
            "created_at": as_utc(case.created_at),
            "updated_at": as_utc(case.updated_at),
            "assigned_to": case.assigned_to,
            "retention": retention_summary(case),
        },
        "read": fields_with_findings(case.fields or {}, case.findings or []),
        "scan": scan_view(case),
        "source_id": source_id,
        "mail": asdict(mail),
        "org": org,
        "approvers": approver_choices(org),
        "events": [
            {
                "at": as_utc(e.at),
                "actor": e.actor,
                "event": e.event,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "detail": e.detail,
            }
            for e in case.events
        ],
        "history_steps": history_steps(case.events),
        "new_reply": new_reply_view(session, case),
        "emails": emails(session, case),
        "approval_requests": approval_requests(session, case),
        "actions": allowed_actions(case, supervisor=supervisor),
        "helpdesk": helpdesk_view(session, case),
        **plan_parts(case),
    }
