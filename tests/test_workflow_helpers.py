"""Shared pieces of the workflow tests: a small directory, mails built in the test, delivery.

`Mail` implements core.inbound.IncomingMail; `deliver` stores a ledger row for it and
calls the workflow's handler exactly as intake does, inside one transaction.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caseworker.accounts import account_of, is_supervisor
from core.addresses import Mailbox, SenderIdentity
from core.clock import FixedClock
from core.db import Database
from core.inbound import Classification, MessageKind
from core.senderauth import Profile, SenderPolicy
from forms.model import ParsedRequest
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow import directory
from workflow.env import WorkflowEnv
from workflow.handler import handle_message
from workflow.models import AelContact, Case, Organisation, Signer
from workflow.opening import start_case

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OUR = "pcse.portalenquiries@nhs.net"
TRUSTED = "mx.nhs.net"
AEL = "GP Payments – General"

PARTNER = ("Anil Patel", "a.patel@nhs.net")
GUARDIAN = ("Beth Jones", "beth.jones@nhs.net")
ICB_CONTACT = ("Chris Green", "chris.green@nhs.net")
ICB_CONTACT_2 = ("Dana White", "dana.white@nhs.net")
MANAGER = ("Mo Manager", "practice.manager@nhs.net")
NOMINEE = ("Jane Smith", "jane.smith@nhs.net")

_uids = itertools.count(1)


@dataclass
class Mail:
    """An email as intake hands it to the workflow."""

    from_addresses: list[tuple[str, str]]
    subject: str = ""
    text: str = ""
    html: str | None = None
    message_id: str | None = field(default_factory=lambda: f"<{uuid.uuid4().hex}@example.org>")
    to_addresses: list[str] = field(default_factory=lambda: [OUR])
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    authentication_results: list[str] = field(default_factory=list)
    attachments: list[Any] = field(default_factory=list)
    auth_as: list[str] = field(default_factory=list)
    on_behalf: list[str] = field(default_factory=list)
    repeated_headers: list[str] = field(default_factory=list)
    header_break: str | None = None
    text_from_html: bool = False
    unread_parts: list[str] = field(default_factory=list)
    # Set by a test that forges a From header intake's strict parser would refuse.
    sender_problem: str | None = None

    @property
    def sender_identity(self) -> SenderIdentity:
        return SenderIdentity.of(
            [Mailbox(n, a.lower()) for n, a in self.from_addresses], self.sender_problem
        )


def passed_dmarc(address: str, authserv: str = TRUSTED) -> str:
    domain = address.rsplit("@", 1)[1]
    return (
        f"{authserv}; spf=pass smtp.mailfrom={domain}; dkim=pass header.d={domain}; "
        f"dmarc=pass (p=reject) header.from={domain}"
    )


def mail_from(
    person: tuple[str, str], *, subject: str = "", text: str = "", dmarc: bool = True, **kwargs: Any
) -> Mail:
    name, address = person
    results = [passed_dmarc(address)] if dmarc else []
    return Mail(
        from_addresses=[(name, address)],
        subject=subject,
        text=text,
        authentication_results=kwargs.pop("authentication_results", results),
        **kwargs,
    )


def make_env(
    clock: FixedClock | None = None, *, trusted: tuple[str, ...] = (TRUSTED,)
) -> WorkflowEnv:
    policy = (
        SenderPolicy(Profile.AUTHSERV_ID, trusted_authserv_ids=trusted)
        if trusted
        else SenderPolicy(Profile.NONE)
    )
    return WorkflowEnv(
        clock=clock or FixedClock(NOW),
        sender_policy=policy,
        from_address=OUR,
        our_addresses=frozenset({OUR}),
        is_supervisor=is_supervisor,
        account_of=account_of,
    )


def ms365_env() -> WorkflowEnv:
    """NHSmail's profile: Exchange Online's AuthAs and Authentication-Results vouch."""
    env = make_env()
    env.sender_policy = SenderPolicy(Profile.MICROSOFT365, internal_domains=("nhs.net",))
    return env


def seed(session: Session) -> None:
    """Three practices, a PCN and an optical contractor in ICB QHM, signers for A81001, two
    AEL contacts."""
    session.add_all(
        [
            Organisation(code="A81001", name="The Surgery", type="gp_practice", icb_code="QHM"),
            Organisation(code="B82002", name="Hill Practice", type="gp_practice", icb_code="QHM"),
            Organisation(
                code="C83003", name="No Signer Practice", type="gp_practice", icb_code="QHM"
            ),
            Organisation(code="U12345", name="North PCN", type="pcn", icb_code="QHM"),
            Organisation(code="QHM", name="The ICB", type="icb", icb_code=None),
            Organisation(
                code="OC4567", name="Clear Sight Opticians", type="optical", icb_code="QHM"
            ),
        ]
    )
    session.flush()
    surgery = directory.get_org(session, "A81001")
    hill = directory.get_org(session, "B82002")
    session.add_all(
        [
            Signer(
                organisation_id=surgery.id, name=PARTNER[0], email=PARTNER[1], capacity="gp_partner"
            ),
            Signer(
                organisation_id=surgery.id,
                name=GUARDIAN[0],
                email=GUARDIAN[1],
                capacity="caldicott_guardian",
            ),
            Signer(
                organisation_id=hill.id,
                name="Hal Hill",
                email="hal.hill@nhs.net",
                capacity="gp_partner",
            ),
            AelContact(icb_code="QHM", name=ICB_CONTACT[0], email=ICB_CONTACT[1], ael_role=AEL),
            AelContact(icb_code="QHM", name=ICB_CONTACT_2[0], email=ICB_CONTACT_2[1], ael_role=AEL),
        ]
    )
    session.flush()


def grant_admins(session: Session, org: str, role: str, count: int, start: int = 1) -> None:
    for number in range(start, start + count):
        directory.grant_role(
            session,
            org_code=org,
            email=f"admin{number}@nhs.net",
            name=f"Admin {number}",
            role=role,
            actor="test",
            reason="setup",
        )


def gpp_form(**fields: Any) -> ParsedRequest:
    values: dict[str, Any] = {
        "organisation_code": "A81001",
        "organisation_name": "The Surgery",
        "nominees": [{"name": NOMINEE[0], "email": NOMINEE[1], "services": ["gpp"]}],
        "main_contact": None,
        "signer": {
            "name": "Dr Anil Patel",
            "email": PARTNER[1],
            "capacity": "gp_partner",
            "date": "2026-03-01",
            "declaration": True,
        },
    }
    values.update(fields)
    return ParsedRequest(
        kind="gpp_admin_form", fields=values, source="acroform", form_version="PCSE-UMF-GPP v1"
    )


def pcn_form() -> ParsedRequest:
    """A PCN user admin request for U12345, naming NOMINEE, with no signer."""
    request = gpp_form(
        organisation_code="U12345",
        signer=None,
        nominees=[{"name": NOMINEE[0], "email": NOMINEE[1], "services": ["pcn"]}],
    )
    request.kind = "pcn_admin_form"
    return request


def email_request(kind: str, **fields: Any) -> ParsedRequest:
    values: dict[str, Any] = {
        "organisation_code": "A81001",
        "organisation_name": None,
        "nominees": [{"name": NOMINEE[0], "email": NOMINEE[1], "services": []}],
        "main_contact": None,
        "signer": None,
    }
    values.update(fields)
    return ParsedRequest(kind=kind, fields=values, source="email_body")


def inbound_row(session: Session, mail: Mail) -> InboundMessage:
    row = InboundMessage(
        mailbox="enquiries",
        uidvalidity=1,
        uid=next(_uids),
        message_id=mail.message_id,
        sha256=uuid.uuid4().hex * 2,
        size=100,
        from_address=mail.from_addresses[0][1] if mail.from_addresses else None,
        subject=mail.subject[:300],
        status="pending",
    )
    session.add(row)
    session.flush()
    return row


def open_request(
    db: Database,
    env: WorkflowEnv,
    request: ParsedRequest,
    sender: tuple[str, str] = MANAGER,
    **mail_args: Any,
) -> str:
    """A request read from a form or body arrives from `sender`; returns the case ref."""
    mail = mail_from(sender, subject=mail_args.pop("subject", "User admin request"), **mail_args)
    with db.transaction() as session:
        row = inbound_row(session, mail)
        start_case(session, env, request, inbound=row, mail=mail)
        return session.get(Case, row.case_id).ref


def deliver(
    db: Database,
    env: WorkflowEnv,
    mail: Mail,
    kind: MessageKind,
    *,
    case_ref: str | None = None,
    token: str | None = None,
) -> str:
    """Hand one message to the handler as intake does; returns the handler's outcome."""
    with db.transaction() as session:
        row = inbound_row(session, mail)
        case_id = None
        if case_ref:
            case_id = session.scalar(select(Case.id).where(Case.ref == case_ref))
        classification = Classification(kind, "test", case_id=case_id, token=token)
        return handle_message(env)(session, row, mail, classification)


def outbox(db: Database, purpose: str | None = None, to: str | None = None) -> list[OutboxMessage]:
    with db.transaction() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if purpose:
            query = query.where(OutboxMessage.purpose == purpose)
        if to:
            query = query.where(OutboxMessage.to_address == to)
        return list(session.scalars(query))


TOKEN_IN_SUBJECT = re.compile(r"APV-([0-9a-f]{20})")


def token_for(db: Database, ref: str, approver: str) -> str:
    """The token in the approval request sent to `approver` on case `ref`."""
    with db.transaction() as session:
        case_id = session.scalar(select(Case.id).where(Case.ref == ref))
        message = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.case_id == case_id,
                OutboxMessage.purpose == "approval_request",
                OutboxMessage.to_address == approver,
            )
            .order_by(OutboxMessage.id.desc())
        ).first()
        assert message is not None, f"no approval request to {approver} on {ref}"
        match = TOKEN_IN_SUBJECT.search(message.subject)
        assert match, message.subject
        return match.group(1)


def asked_with(db: Database, token: str) -> str:
    """The text of the approval request that carried `token` (what a reply quotes)."""
    with db.transaction() as session:
        body = session.scalar(
            select(OutboxMessage.body_text).where(OutboxMessage.subject.contains(f"APV-{token}"))
        )
    return body or ""


def answer(
    db: Database,
    env: WorkflowEnv,
    ref: str,
    person: tuple[str, str],
    text: str,
    *,
    token: str | None = None,
    **mail_args: Any,
) -> str:
    """The approver replies to the approval request with `text` above the quoted original."""
    token = token or token_for(db, ref, person[1])
    quoted = (
        "\n\nOn Mon, 2 Mar 2026 at 09:00, PCSE <pcse.portalenquiries@nhs.net> wrote:\n"
        + "".join(f"> {line}\n" for line in asked_with(db, token).splitlines())
    )
    mail = mail_from(
        person,
        subject=mail_args.pop("subject", f"RE: [{ref}] Approval needed APV-{token}"),
        text=text + quoted,
        **mail_args,
    )
    return deliver(db, env, mail, MessageKind.APPROVAL_ANSWER, token=token)


def case_of(db: Database, ref: str) -> Case:
    with db.transaction() as session:
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        _ = case.events  # load the history while the session is open
        return case


def holders(db: Database, org: str, service: str) -> list[str]:
    with db.transaction() as session:
        return sorted(p.email for p in directory.admins(session, org, service))


def events(db: Database, ref: str, event: str | None = None) -> list[dict[str, Any]]:
    case = case_of(db, ref)
    return [
        {
            "event": e.event,
            "detail": e.detail,
            "data": e.data,
            "actor": e.actor,
            "to_state": e.to_state,
        }
        for e in case.events
        if event is None or e.event == event
    ]


def failed_checks(db: Database, ref: str) -> set[str]:
    """The names of the checks recorded on the case that did not pass."""
    return {e["data"]["check"] for e in events(db, ref, "check") if not e["data"]["passed"]}
