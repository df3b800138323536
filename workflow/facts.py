"""Read, once, what the directory knows that a decision on a request needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from core.catalogue import AEL_GP_PAYMENTS_GENERAL, Service
from forms.normalise import clean_ods
from workflow import directory
from workflow.decisions import Approver, Contact, Facts, planned_changes

# The services whose admins are counted for a decision.
COUNTED_SERVICES = (Service.GPP, Service.PL, Service.OPH, Service.PCN, Service.MAIN_CONTACT)


def gather_facts(
    session: Session,
    kind: str | None,
    fields: Mapping[str, Any],
    *,
    sender: str | None = None,
    sender_verified: bool = False,
    sender_words: str = "",
    sender_subject: str = "",
    requester: str | None = None,
) -> Facts:
    """A plain snapshot of the organisation the request names, its ICB and approvers.

    `sender` is the one From address of the message that brought the request (None when
    the From header did not hold exactly one), `sender_verified` whether it passed the
    sender checks (workflow.approvals.check_sender), `sender_words` the text they wrote with it
    (read for doubt where their sending is the approval), `requester` who asked (never
    their own approver).
    """
    code = clean_ods(fields.get("organisation_code") or "") or None
    if code is None:
        return Facts(
            organisation_code=None,
            sender=sender,
            sender_verified=sender_verified,
            sender_words=sender_words,
            sender_subject=sender_subject,
            requester=requester,
        )
    org = directory.get_org(session, code)
    if org is None:
        return Facts(
            organisation_code=code,
            sender=sender,
            sender_verified=sender_verified,
            sender_words=sender_words,
            sender_subject=sender_subject,
            requester=requester,
        )
    holders = directory.admins_by_service(session, code, COUNTED_SERVICES)
    counts = {str(s): len(people) for s, people in holders.items()}
    contact = next(iter(holders[Service.MAIN_CONTACT]), None)
    icb = org.icb_code if org.type != "icb" else org.code
    signers = tuple(
        Approver(s.name, s.email.lower(), "signer", s.capacity)
        for s in directory.signers_for(session, code)
    )
    ael = tuple(
        Approver(a.name, a.email.lower(), "ael", a.ael_role)
        for a in (directory.ael_contacts_for(session, icb, AEL_GP_PAYMENTS_GENERAL) if icb else [])
    )
    return Facts(
        organisation_code=org.code,
        org_exists=True,
        org_name=org.name,
        org_type=org.type,
        org_closed=org.status == "closed",
        icb_code=icb,
        admin_counts=counts,
        nominee_holdings=_nominee_holdings(session, org.code, kind, fields, holders),
        main_contact=Contact(contact.name, contact.email) if contact else None,
        signers=signers,
        ael_contacts=ael,
        sender=sender,
        sender_verified=sender_verified,
        sender_words=sender_words,
        sender_subject=sender_subject,
        requester=requester,
    )


def _nominee_holdings(
    session: Session,
    code: str,
    kind: str | None,
    fields: Mapping[str, Any],
    read: Mapping[Service, list[Any]],
) -> frozenset[tuple[str, str]]:
    """Which of the roles the request asks for its nominees already hold; `read` holds the
    admins already read for the decision, by service (the others are read here)."""
    held: set[tuple[str, str]] = set()
    for change in planned_changes(kind or "", fields):
        holders = read.get(change.service)
        if holders is None:
            holders = directory.admins(session, code, change.service)
        if any(p.email == change.email for p in holders):
            held.add((change.email, str(change.service)))
    return frozenset(held)
