"""Sample data for every purpose: used to check templates (shipped or overridden) and by the bench.

The values come from the catalogue, so a renamed role shows up here too.
"""

from __future__ import annotations

from typing import Any

from core.catalogue import CATALOGUE, Service, ServiceInfo

_GPP = CATALOGUE[Service.GPP]
_MAIN = CATALOGUE[Service.MAIN_CONTACT]

SAMPLE_CASE: dict[str, Any] = {
    "ref": "PCSE-2026-000123",
    "kind": "gpp_admin_form",
    "kind_title": f"{_GPP.admin_role} Certification form",
    "organisation_code": "A81001",
    "organisation_name": "The Riverside Surgery",
    "requester": "practice.manager@riverside.nhs.net",
    "requester_name": "Pat Jones",
}


def _nominee(name: str, email: str, *services: ServiceInfo) -> dict[str, Any]:
    return {"name": name, "email": email, "roles": [info.admin_role for info in services]}


_APPROVAL: dict[str, Any] = {
    "approver_name": "Dr Sam Patel",
    "asker": "Pat Jones (practice.manager@riverside.nhs.net)",
    "capacity": "as a GP Partner recorded for The Riverside Surgery",
    "nominees": [
        _nominee("Alex Smith", "alex.smith@riverside.nhs.net", _GPP),
        _nominee("Jo Brown", "jo.brown@riverside.nhs.net", _GPP, CATALOGUE[Service.PL]),
    ],
    "main_contact": {
        "name": "Jo Brown",
        "email": "jo.brown@riverside.nhs.net",
        "replaces": "Chris Green",
    },
    "requested_by": "Pat Jones (practice.manager@riverside.nhs.net)",
    "token": "APV-0123456789abcdef0123",
    "expires_on": "6 March 2026",
    "approve_link": "mailto:pcse.portalenquiries@nhs.net?subject=APPROVE%20%5BPCSE-2026-000123"
    "%5D%20APV-0123456789abcdef0123",
    "reject_link": "mailto:pcse.portalenquiries@nhs.net?subject=REJECT%20%5BPCSE-2026-000123"
    "%5D%20APV-0123456789abcdef0123&body=Reason%20for%20rejecting%3A%20",
}

SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "acknowledgement": {
        "summary": [
            "Organisation: The Riverside Surgery (A81001)",
            f"{_GPP.admin_role}: Alex Smith (alex.smith@riverside.nhs.net)",
            "Signed by Dr Sam Patel, GP Partner, on 2 March 2026",
        ],
        "approvers": ["Dr Sam Patel (GP Partner)"],
    },
    "needs_info": {
        "findings": [
            "Part B of the form is not signed.",
            "The email address of the nominee in Part A is not a valid address.",
        ],
        "form_name": "User Administrator Request Form",
    },
    "approval_request": dict(_APPROVAL),
    "approval_reminder": dict(_APPROVAL),
    "approval_void": {
        "approver_name": "Dr Sam Patel",
        "reason": "The practice sent a corrected form naming a different nominee.",
    },
    "requester_reminder": {"findings": ["Part B of the form is not signed."]},
    "outcome_completed": {
        "changes": [
            f"Alex Smith (alex.smith@riverside.nhs.net) is now {_GPP.admin_role} for "
            "The Riverside Surgery (A81001).",
            f"Jo Brown (jo.brown@riverside.nhs.net) is now the {_MAIN.admin_role} for "
            "The Riverside Surgery (A81001).",
        ],
    },
    "outcome_rejected": {"reason": "The approver answered that the nominee has left the practice."},
    "outcome_expired": {},
    "outcome_triage": {
        "reason": f"The practice already has four {_GPP.admin_role}s, the most allowed.",
    },
    "welcome_admin": {
        "organisation_name": "The Riverside Surgery",
        "roles": [
            {
                "role": _GPP.admin_role,
                "service_title": _GPP.title,
                "assignable_roles": list(_GPP.assignable_roles),
            }
        ],
    },
    "welcome_main_contact": {
        "organisation_name": "The Riverside Surgery",
        "assignable_roles": list(_MAIN.assignable_roles),
    },
    "main_contact_replaced": {
        "organisation_name": "The Riverside Surgery",
        "new_contact_name": "Jo Brown",
    },
    "redirect_performer_registration": {},
    "redirect_market_entry": {"market_entry_address": "pcse.marketentry@nhs.net"},
    "redirect_existing_admins": {"service_title": _GPP.title},
    "admin_limit_reached": {"service_title": _GPP.title, "limit": _GPP.max_admins},
    "attachment_unreadable": {
        "filename": "certification.pdf",
        # As forms.pdf_reader words it.
        "problem": "The PDF is protected by a password, so we cannot open it. "
        "Please send the form again without a password.",
    },
    "answer_unclear": {"approver_name": "Dr Sam Patel"},
    "caseworker_reply": {
        "message": "Thank you for your email.\n\nWe have checked with the practice and the "
        "form is now complete.",
        "caseworker": "Chris Ward",
    },
    "case_merged": {"duplicate_ref": "PCSE-2026-000124"},
}


def sample_template_context(purpose: str, *, with_case: bool = True) -> dict[str, Any]:
    """Everything a template sees, as enqueue would build it, for a sample message."""
    from notifications.rendering import Site, site_context

    return {
        **SAMPLE_CONTEXTS[purpose],
        "case": dict(SAMPLE_CASE) if with_case else None,
        "recipient_name": "Alex Smith",
        "recipient_address": "alex.smith@riverside.nhs.net",
        "pcse": site_context(Site()),
    }
