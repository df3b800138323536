"""Routing as pure functions: a parsed request and a snapshot of the directory in, a decision out.

Nothing here reads or writes the database. `workflow.facts.gather_facts` builds the
snapshot from a session; `workflow.outcomes.persist_decision` carries a decision out.
Every decision lists the checks it made, so the case history can say why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.addresses import mailbox_key
from core.catalogue import (
    AEL_GP_PAYMENTS_GENERAL,
    CATALOGUE,
    SIGNER_CAPACITIES,
    Service,
    ServiceInfo,
    admin_role,
)
from core.states import CaseKind, CaseState
from forms.model import Finding, ParsedRequest
from forms.normalise import name_problem, normalise_email, tidy_name
from workflow.reason_redaction import Signer
from workflow.replies import doubt_in_own_words, note_says_more

MARKET_ENTRY_ADDRESS = "pcse.marketentry@nhs.net"

# The finding a caseworker's question leaves on a case until the requester answers it.
CASEWORKER_REQUEST = "caseworker_request"

# The blank form to send back with a request for information, by kind.
BLANK_FORMS: dict[str, str] = {
    CaseKind.GPP_ADMIN_FORM: "gpp-user-admin-certification.pdf",
    CaseKind.USER_ADMIN_FORM: "user-admin-request-form.pdf",
    CaseKind.PCN_ADMIN_FORM: "pcn-user-admin-request.pdf",
}

# The service each single-service kind asks for.
KIND_SERVICE: dict[str, Service] = {
    CaseKind.GPP_ADMIN_FORM: Service.GPP,
    CaseKind.PCN_ADMIN_FORM: Service.PCN,
    CaseKind.PL_ADMIN: Service.PL,
    CaseKind.OPH_ADMIN: Service.OPH,
}

# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class Approver:
    """Someone recorded as able to authorise for an organisation (R6)."""

    name: str
    email: str
    source: str  # "signer" (a practice signer) or "ael" (an AEL contact of the ICB)
    capacity: str  # the signer capacity key, or the AEL role

    def describe(self) -> str:
        if self.source == "signer":
            title = SIGNER_CAPACITIES.get(self.capacity, self.capacity)
            return f"{self.name} <{self.email}>, recorded {title}"
        return f"{self.name} <{self.email}>, AEL contact ({self.capacity})"

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "email": self.email,
            "source": self.source,
            "capacity": self.capacity,
        }


@dataclass(frozen=True)
class Contact:
    name: str
    email: str


@dataclass(frozen=True)
class Facts:
    """What the directory knows that a decision needs, read once from the session."""

    organisation_code: str | None
    org_exists: bool = False
    org_name: str | None = None
    org_type: str | None = None
    org_closed: bool = False
    icb_code: str | None = None
    # Active admins per service value ("gpp", "pl", "oph", "pcn"): counts only.
    admin_counts: Mapping[str, int] = field(default_factory=dict)
    # (email, service value) pairs the request's nominees already hold.
    nominee_holdings: frozenset[tuple[str, str]] = frozenset()
    main_contact: Contact | None = None
    signers: tuple[Approver, ...] = ()
    ael_contacts: tuple[Approver, ...] = ()  # "GP Payments – General" contacts of the ICB
    # The message's sender when the From header held exactly one address.
    sender: str | None = None
    # True when the receiving mail server vouched for the sender (core.senderauth).
    sender_verified: bool = False
    # The text of the message that brought the request: read for doubt only where its
    # sending would be the approval (workflow.replies.doubt_in_own_words).
    sender_words: str = ""
    sender_subject: str = ""  # that message's subject, read for doubt with its text
    # Who asked (the case's requester): never asked to approve their own request.
    requester: str | None = None

    def admins(self, service: Service) -> int:
        return int(self.admin_counts.get(str(service), 0))


# --------------------------------------------------------------------------- the decision


class Action(StrEnum):
    NEEDS_INFO = "needs_info"
    ASK_APPROVERS = "ask_approvers"
    TRIAGE = "triage"
    APPROVE = "approve"
    REFUSE = "refuse"
    REDIRECT = "redirect"


TARGET_STATE: dict[Action, CaseState] = {
    Action.NEEDS_INFO: CaseState.NEEDS_INFO,
    Action.ASK_APPROVERS: CaseState.AWAITING_APPROVAL,
    Action.TRIAGE: CaseState.TRIAGE,
    Action.APPROVE: CaseState.APPROVED,
    Action.REFUSE: CaseState.REJECTED,
    Action.REDIRECT: CaseState.ANSWERED,
}


@dataclass(frozen=True)
class Check:
    """One check made while deciding, and what it found."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class PlannedChange:
    """A role change the request asks for, to be applied once authorised."""

    service: Service
    email: str
    name: str

    @property
    def role(self) -> str:
        return admin_role(self.service)

    def sentence(self, org_code: str | None) -> str:
        return f"{self.name} <{self.email}> to hold {self.role} at {org_code}"

    def as_dict(self) -> dict[str, str]:
        return {
            "service": str(self.service),
            "email": self.email,
            "name": self.name,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedChange:
        return cls(Service(data["service"]), data["email"], data["name"])


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # one sentence: why the case goes where it goes
    checks: tuple[Check, ...] = ()
    findings: tuple[Finding, ...] = ()  # what the requester must supply (NEEDS_INFO)
    approvers: tuple[Approver, ...] = ()  # who is asked (ASK_APPROVERS)
    reply: str | None = None  # the template of the reply to the requester, if any
    reply_context: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[PlannedChange, ...] = ()

    @property
    def target_state(self) -> CaseState:
        return TARGET_STATE[self.action]

    @property
    def finding_messages(self) -> list[str]:
        return [f.message for f in self.findings]


# --------------------------------------------------------------------------- the request


def planned_changes(kind: str, fields: Mapping[str, Any]) -> list[PlannedChange]:
    """The admin roles and main contact the request asks for, from its normalised fields."""
    changes: list[PlannedChange] = []
    seen: set[tuple[Service, str]] = set()

    def add(service: Service, email: str | None, name: str | None) -> None:
        address = normalise_email(email or "")
        if address and (service, address) not in seen:
            seen.add((service, address))
            changes.append(PlannedChange(service, address, tidy_name(name or "") or address))

    if kind == CaseKind.MAIN_CONTACT:
        contact = fields.get("main_contact") or _first(fields.get("nominees"))
        if contact:
            add(Service.MAIN_CONTACT, contact.get("email"), contact.get("name"))
        return changes
    for nominee in fields.get("nominees") or []:
        for service in _nominee_services(kind, nominee):
            add(service, nominee.get("email"), nominee.get("name"))
    contact = fields.get("main_contact")
    if kind == CaseKind.USER_ADMIN_FORM and contact:
        add(Service.MAIN_CONTACT, contact.get("email"), contact.get("name"))
    return changes


def changes_digest(kind: str, organisation_code: str | None, fields: Mapping[str, Any]) -> str:
    """A fingerprint of what applying the case would do: its kind, organisation, and each
    role with its nominee. An approval answers for this fingerprint only; any change to
    it (a correction, a new form, a change of kind) voids the answer."""
    changes = sorted(
        (str(c.service), c.role, c.email, c.name) for c in planned_changes(kind, fields)
    )
    canonical = json.dumps(
        {"kind": kind, "organisation": organisation_code or "", "changes": changes},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


def _nominee_services(kind: str, nominee: Mapping[str, Any]) -> list[Service]:
    if kind in KIND_SERVICE:
        return [KIND_SERVICE[kind]]
    services: list[Service] = []
    for value in nominee.get("services") or []:
        try:
            service = Service(str(value).lower())
        except ValueError:
            continue
        if service is not Service.MAIN_CONTACT and service not in services:
            services.append(service)
    return services


def structural_findings(kind: str, fields: Mapping[str, Any]) -> list[Finding]:
    """What any request of this kind must carry, whatever the reader noticed."""
    found: list[Finding] = []
    if not fields.get("organisation_code"):
        found.append(
            Finding(
                "missing_field", "The organisation code (ODS code) is missing.", "organisation_code"
            )
        )
    if kind == CaseKind.MAIN_CONTACT:
        contact = fields.get("main_contact") or _first(fields.get("nominees"))
        found += _person_findings(contact, "main_contact", "the new main contact")
        return found
    nominees = fields.get("nominees") or []
    if not nominees:
        found.append(
            Finding(
                "missing_field",
                "The name and email address of the person who should hold the role are missing.",
                "nominees",
            )
        )
    for index, nominee in enumerate(nominees):
        found += _person_findings(nominee, f"nominees.{index}", "the nominee")
        if kind == CaseKind.USER_ADMIN_FORM and not _nominee_services(kind, nominee):
            who = tidy_name(nominee.get("name") or "") or "the nominee"
            found.append(
                Finding(
                    "missing_field",
                    f"The form does not say which service {who} should administer.",
                    f"nominees.{index}.services",
                )
            )
    if kind in BLANK_FORMS and kind != CaseKind.PCN_ADMIN_FORM and not fields.get("signer"):
        found.append(
            Finding("not_signed", "Part B, the authorisation, is not completed.", "signer")
        )
    if kind == CaseKind.USER_ADMIN_FORM and fields.get("main_contact"):
        found += _person_findings(fields["main_contact"], "main_contact", "the main contact")
    return found


def _person_findings(person: Any, key: str, who: str) -> list[Finding]:
    if not person:
        return [Finding("missing_field", f"The name and email address of {who} are missing.", key)]
    found: list[Finding] = []
    name = (person.get("name") or "").strip()
    if not name:
        found.append(Finding("missing_field", f"The name of {who} is missing.", f"{key}.name"))
    elif why := name_problem(name):
        found.append(
            Finding(
                "invalid_name",
                f"The name of {who}, '{name}', is not a name ({why}).",
                f"{key}.name",
            )
        )
    email = person.get("email")
    if not (email or "").strip():
        found.append(
            Finding("missing_field", f"The email address of {who} is missing.", f"{key}.email")
        )
    elif normalise_email(email) is None:
        found.append(
            Finding(
                "invalid_email",
                f"The email address of {who}, {email!r}, is not a valid address.",
                f"{key}.email",
            )
        )
    return found


def all_findings(request: ParsedRequest) -> list[Finding]:
    """The reader's findings; when the reader found nothing wrong, the structural checks.

    The readers know each form's parts, so their list is the one to send; the structural
    checks are the backstop for what no reader flagged.
    """
    if request.findings:
        return list(request.findings)
    return structural_findings(request.kind or "", request.fields)


# --------------------------------------------------------------------------- deciding


def decide(request: ParsedRequest, facts: Facts) -> Decision:
    """Route a request: the one entry point, dispatching on its kind."""
    kind = request.kind or CaseKind.OTHER
    rule = RULES.get(kind, _decide_other)
    return rule(request, facts)


def _decide_other(request: ParsedRequest, facts: Facts) -> Decision:
    what = (
        "The email could not be read as a user-management request"
        if not request.kind
        else "The email is not a request the system handles by itself"
    )
    return Decision(
        Action.TRIAGE,
        f"{what}; a caseworker will read it.",
        (Check("kind", False, f"Request kind: {request.kind or 'unknown'}."),),
    )


def _decide_performer_registration(request: ParsedRequest, facts: Facts) -> Decision:
    return Decision(
        Action.REDIRECT,
        "Performer registration is not done by a user management role (R5); "
        "the requester was sent the directions.",
        (Check("kind", True, "Performer registration request."),),
        reply="redirect_performer_registration",
    )


def _decide_market_entry(request: ParsedRequest, facts: Facts) -> Decision:
    return Decision(
        Action.REDIRECT,
        f"Pharmacy market entry registration is handled at {MARKET_ENTRY_ADDRESS}; "
        "the requester was sent the directions.",
        (Check("kind", True, "Pharmacy market entry request."),),
        reply="redirect_market_entry",
        reply_context={"market_entry_address": MARKET_ENTRY_ADDRESS},
    )


@dataclass
class _Steps:
    """The checks common to every role request, gathered in order."""

    request: ParsedRequest
    facts: Facts
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append(Check(name, passed, detail))
        return passed

    def decision(self, action: Action, reason: str, **kwargs: Any) -> Decision:
        return Decision(action, reason, tuple(self.checks), **kwargs)


def _common(steps: _Steps, changes: list[PlannedChange]) -> Decision | None:
    """Findings, the organisation, and R1/R2 as known now. None when all is well."""
    request, facts = steps.request, steps.facts
    kind = request.kind or CaseKind.OTHER
    findings = all_findings(request)
    if findings and request.source == "ocr":
        # Read from a scan: a missing or wrong value may be the reading's fault, not the
        # practice's. A person compares what was read with the page images.
        steps.check("complete", False, f"{len(findings)} problem(s) with what was read.")
        return steps.decision(
            Action.TRIAGE,
            "The form is a scan and some values were not read clearly or do not check out "
            "(" + "; ".join(f.message for f in findings[:4]) + "); a caseworker must "
            "compare what was read with the page images.",
            findings=tuple(findings),
        )
    if findings:
        steps.check("complete", False, f"{len(findings)} problem(s) with what was sent.")
        return steps.decision(
            Action.NEEDS_INFO,
            "Information is missing or wrong; the requester was asked for it.",
            findings=tuple(findings),
            reply="needs_info",
            reply_context={
                "findings": [f.message for f in findings],
                "form_name": BLANK_FORMS.get(kind),
            },
        )
    steps.check("complete", True, "Every field the request needs is present.")
    code = facts.organisation_code
    if not steps.check(
        "organisation_known",
        facts.org_exists,
        f"Organisation {code} is in the directory."
        if facts.org_exists
        else f"Organisation {code} is not in the directory.",
    ):
        return steps.decision(
            Action.TRIAGE,
            f"Organisation {code} is not in the directory; a caseworker must confirm the code.",
        )
    if not steps.check(
        "organisation_open",
        not facts.org_closed,
        f"{code} ({facts.org_name}) is open."
        if not facts.org_closed
        else f"{code} ({facts.org_name}) is closed.",
    ):
        return steps.decision(
            Action.TRIAGE,
            f"Organisation {code} is closed; no role can be "
            "granted there without a caseworker's review.",
        )
    if not changes:
        return steps.decision(Action.TRIAGE, "The request names no role change to make.")
    misfit = _misfit(changes, facts.org_type)
    if not steps.check(
        "service_fits_organisation",
        misfit is None,
        f"{code} is of type {facts.org_type}"
        + (f"; {misfit.title} is not used there." if misfit else "."),
    ):
        assert misfit is not None  # the check above failed because there is one
        return steps.decision(
            Action.TRIAGE,
            f"{code} ({facts.org_name}) does not use "
            f"{misfit.title}; a caseworker must check the organisation "
            "code and the role asked for.",
            changes=tuple(changes),
        )
    return _limits(steps, changes)


def _misfit(changes: list[PlannedChange], org_type: str | None) -> ServiceInfo | None:
    """The first service asked for that this kind of organisation does not use."""
    for change in changes:
        info = CATALOGUE[change.service]
        if info.org_types and org_type not in info.org_types:
            return info
    return None


def _limits(steps: _Steps, changes: list[PlannedChange]) -> Decision | None:
    """R1 as far as it is known now: a fifth admin is refused at once."""
    facts = steps.facts
    pending = [c for c in changes if (c.email, str(c.service)) not in facts.nominee_holdings]
    if not pending:
        held = "; ".join(c.sentence(facts.organisation_code) for c in changes)
        steps.check("already_held", False, f"Already in place: {held}.")
        return steps.decision(
            Action.TRIAGE,
            "Every role asked for is already held; a caseworker will reply to the requester.",
        )
    for service in (Service.GPP, Service.PL, Service.OPH):
        limit = CATALOGUE[service].max_admins or 0
        adding = sum(1 for c in pending if c.service is service)
        if not adding:
            continue
        current = facts.admins(service)
        within = current + adding <= limit
        steps.check(
            "admin_limit",
            within,
            f"{facts.organisation_code} has {current} {admin_role(service)}(s); "
            f"the request adds {adding}; the most is {limit} (R1).",
        )
        if not within:
            return steps.decision(
                Action.REFUSE,
                f"{facts.organisation_code} would have more than {limit} "
                f"{admin_role(service)}s (R1).",
                reply="admin_limit_reached",
                reply_context={"service_title": CATALOGUE[service].title, "limit": limit},
                changes=tuple(changes),
            )
    return None


def requester_conflicts(kind: str) -> bool:
    """May the requester not approve this kind of request? A PCN request is submitted by
    an AEL contact of the ICB, and that submission is the approval (R6): when the
    receiving server did not vouch for it, the contact confirms it at their recorded address
    with a code. Every other request is approved by someone other than who asked."""
    return kind != CaseKind.PCN_ADMIN_FORM


def _decide_signed_form(request: ParsedRequest, facts: Facts) -> Decision:
    """GPP certification and User Administrator Request Form: the Part B signer must be
    recorded, and is asked at the recorded address (R6)."""
    steps = _Steps(request, facts)
    changes = planned_changes(request.kind or "", request.fields)
    early = _common(steps, changes)
    if early:
        return early
    signer = request.fields.get("signer") or {}
    matched = match_signer(signer, facts)
    stated = _describe_stated_signer(signer)
    if not matched:
        steps.check(
            "signer_recorded",
            False,
            f"The signer {stated} is not a recorded signer of {facts.organisation_code} "
            f"nor a '{AEL_GP_PAYMENTS_GENERAL}' AEL contact of ICB "
            f"{facts.icb_code or '(unknown)'}.",
        )
        return steps.decision(
            Action.TRIAGE,
            f"The signer {stated} is not recorded as an approver for "
            f"{facts.organisation_code} (R6); a caseworker must check the authorisation.",
            changes=tuple(changes),
        )
    for approver in matched:
        steps.check("signer_recorded", True, f"The signer {stated} matches {approver.describe()}.")
    stated_email = normalise_email(signer.get("email") or "")
    if stated_email and stated_email not in {a.email for a in matched}:
        steps.check(
            "signer_address",
            False,
            f"The form gives {stated_email}; the request goes to the recorded address instead.",
        )
    independent = _independent(steps, matched, changes)
    if independent is None:
        # The signer is a nominee or the requester: another recorded approver is asked.
        others = _independent(steps, [*facts.signers, *facts.ael_contacts], changes, quiet=True)
        if not others:
            return steps.decision(
                Action.TRIAGE,
                "The form's signer would be approving their own nomination or "
                "request, and no other recorded approver can be asked; a caseworker must "
                "decide.",
                changes=tuple(changes),
            )
        return steps.decision(
            Action.ASK_APPROVERS,
            "The form's signer cannot approve their own nomination; "
            "approval was requested from " + _names(others) + " instead.",
            approvers=tuple(others),
            changes=tuple(changes),
        )
    return steps.decision(
        Action.ASK_APPROVERS,
        "Approval was requested from " + _names(independent) + ", at the recorded address.",
        approvers=tuple(independent),
        changes=tuple(changes),
    )


def _independent(
    steps: _Steps,
    approvers: list[Approver] | tuple[Approver, ...],
    changes: list[PlannedChange],
    *,
    quiet: bool = False,
) -> list[Approver] | None:
    """The approvers who are neither the requester nor a nominee; None when there are none.
    Nobody approves their own request or their own role."""
    # Compared by mailbox: jane+pcn@ and jane@ reach one person (core.addresses.mailbox_key).
    conflicted = {mailbox_key(c.email) for c in changes}
    if requester_conflicts(steps.request.kind or ""):
        conflicted.add(mailbox_key(steps.facts.requester or ""))
    kept = [a for a in approvers if mailbox_key(a.email) not in conflicted]
    for approver in approvers:
        if mailbox_key(approver.email) in conflicted:
            steps.check(
                "approver_independent",
                False,
                f"{approver.describe()} is the requester or a nominee and cannot "
                "approve this request.",
            )
    if kept and not quiet:
        steps.check(
            "approver_independent", True, f"{_names(kept)}: neither the requester nor a nominee."
        )
    return kept or None


def _decide_pcn(request: ParsedRequest, facts: Facts) -> Decision:
    """PCN user admin: an AEL contact of the PCN's ICB approves (R6)."""
    steps = _Steps(request, facts)
    changes = planned_changes(request.kind or "", request.fields)
    early = _common(steps, changes)
    if early:
        return early
    if not steps.check(
        "organisation_type",
        facts.org_type == "pcn",
        f"{facts.organisation_code} is of type {facts.org_type}.",
    ):
        return steps.decision(
            Action.TRIAGE,
            f"{facts.organisation_code} is not a PCN; a caseworker must check the form.",
            changes=tuple(changes),
        )
    if not facts.ael_contacts:
        steps.check(
            "ael_contacts",
            False,
            f"No '{AEL_GP_PAYMENTS_GENERAL}' AEL contact is recorded for ICB "
            f"{facts.icb_code or '(unknown)'}.",
        )
        return steps.decision(
            Action.TRIAGE,
            "No AEL contact of the PCN's ICB is recorded to approve the request (R9).",
            changes=tuple(changes),
        )
    steps.check(
        "ael_contacts",
        True,
        f"{len(facts.ael_contacts)} AEL contact(s) of ICB "
        f"{facts.icb_code}: {_names(facts.ael_contacts)}.",
    )
    nominees = {mailbox_key(c.email) for c in changes}
    sender = next((a for a in facts.ael_contacts if a.email == facts.sender), None)
    if sender and mailbox_key(sender.email) in nominees:
        others = _independent(steps, facts.ael_contacts, changes)
        if not others:
            return steps.decision(
                Action.TRIAGE,
                f"{sender.name}, an AEL contact, asks for a PCN role for "
                "themself, and no other AEL contact of the ICB can approve it; a caseworker "
                "must decide.",
                changes=tuple(changes),
            )
        return steps.decision(
            Action.ASK_APPROVERS,
            f"{sender.name} cannot approve a role for themself; approval "
            f"was requested from the other AEL contacts of ICB {facts.icb_code}.",
            approvers=tuple(others),
            changes=tuple(changes),
        )
    said: str | None = None  # what a vouched sender's note says beyond a covering line
    if sender and facts.sender_verified:
        doubt = doubt_in_own_words(facts.sender_words) or doubt_in_own_words(facts.sender_subject)
        if doubt is not None:
            steps.check(
                "sender_raises_no_doubt",
                False,
                f"The form was sent by {sender.describe()}, but their email says "
                f'"{doubt}": it may not be their approval.',
            )
            return steps.decision(
                Action.TRIAGE,
                f"{sender.name}, an AEL contact, sent the form with words that may negate, "
                "condition or question it; a caseworker must read their email before it "
                "counts as their approval.",
                changes=tuple(changes),
            )
        said = note_says_more(facts.sender_words, Signer(sender.name, sender.email))
        if said is None:
            steps.check(
                "sent_by_ael_contact",
                True,
                f"The form was sent by {sender.describe()} and passed the sender checks; "
                "that is the approval.",
            )
            return steps.decision(
                Action.APPROVE,
                f"Submitted by {sender.name}, an AEL contact of ICB {facts.icb_code}.",
                approvers=(sender,),
                changes=tuple(changes),
            )
    if sender and said is not None:
        steps.check(
            "sender_note_is_plain",
            False,
            f"The form was sent by {sender.describe()}, whose email also says "
            f'"{said[:80]}": asking the AEL contacts, the sender among them, to confirm '
            "what was read.",
        )
    elif sender:
        steps.check(
            "sent_by_ael_contact",
            False,
            f"The form came from {sender.email}, an AEL contact, but did not pass the "
            "sender checks; asking the AEL contacts instead.",
        )
    else:
        steps.check(
            "sent_by_ael_contact", False, "The form was not sent by an AEL contact of the ICB."
        )
    asked = _independent(steps, facts.ael_contacts, changes)
    if not asked:
        return steps.decision(
            Action.TRIAGE,
            "Every AEL contact of the PCN's ICB is the "
            "requester or a nominee; a caseworker must decide.",
            changes=tuple(changes),
        )
    return steps.decision(
        Action.ASK_APPROVERS,
        f"Approval was requested from the AEL contacts of ICB {facts.icb_code}; the first "
        "valid answer decides.",
        approvers=tuple(asked),
        changes=tuple(changes),
    )


def _decide_by_email(request: ParsedRequest, facts: Facts) -> Decision:
    """PL, OPH and Main Contact by email: existing admins add people themselves; otherwise
    the organisation's recorded signers approve."""
    steps = _Steps(request, facts)
    kind = request.kind or ""
    changes = planned_changes(kind, request.fields)
    early = _common(steps, changes)
    if early:
        return early
    service = KIND_SERVICE.get(kind)
    # R3: a Main Contact cannot hand the role on, so that request always needs approval.
    if service is not None:
        existing = facts.admins(service)
        if not steps.check(
            "existing_admins",
            existing == 0,
            f"{facts.organisation_code} has {existing} {admin_role(service)}(s).",
        ):
            return steps.decision(
                Action.REDIRECT,
                f"{facts.organisation_code} already has a {admin_role(service)}, who can add "
                "the nominee in PCSE Online; the requester was told to ask them.",
                reply="redirect_existing_admins",
                reply_context={"service_title": CATALOGUE[service].title},
                changes=tuple(changes),
            )
    if not facts.signers:
        steps.check(
            "signers", False, f"No practice signer is recorded for {facts.organisation_code}."
        )
        return steps.decision(
            Action.TRIAGE,
            f"No approver is recorded for {facts.organisation_code} (R9).",
            changes=tuple(changes),
        )
    steps.check("signers", True, f"Recorded signers: {_names(facts.signers)}.")
    asked = _independent(steps, facts.signers, changes)
    if not asked:
        return steps.decision(
            Action.TRIAGE,
            f"Every recorded signer of "
            f"{facts.organisation_code} is the requester or a nominee; a "
            "caseworker must decide (R9).",
            changes=tuple(changes),
        )
    return steps.decision(
        Action.ASK_APPROVERS,
        f"Approval was requested from the recorded signers of {facts.organisation_code}; the "
        "first valid answer decides.",
        approvers=tuple(asked),
        changes=tuple(changes),
    )


RULES: dict[str, Callable[[ParsedRequest, Facts], Decision]] = {
    CaseKind.GPP_ADMIN_FORM: _decide_signed_form,
    CaseKind.USER_ADMIN_FORM: _decide_signed_form,
    CaseKind.PCN_ADMIN_FORM: _decide_pcn,
    CaseKind.PL_ADMIN: _decide_by_email,
    CaseKind.OPH_ADMIN: _decide_by_email,
    CaseKind.MAIN_CONTACT: _decide_by_email,
    CaseKind.PERFORMER_REGISTRATION: _decide_performer_registration,
    CaseKind.MARKET_ENTRY: _decide_market_entry,
    CaseKind.OTHER: _decide_other,
}


# --------------------------------------------------------------------------- signers


def match_signer(signer: Mapping[str, Any], facts: Facts) -> list[Approver]:
    """The recorded approvers the form's signer is: by address, else by name.

    A practice signer is preferred to an AEL contact for the same address. The result
    carries the recorded addresses, never the form's.
    """
    candidates = [*facts.signers, *facts.ael_contacts]
    email = normalise_email(signer.get("email") or "")
    matched = [a for a in candidates if email and a.email == email]
    if not matched:
        name = _fold_name(signer.get("name"))
        matched = [a for a in candidates if name and _fold_name(a.name) == name]
    unique: dict[str, Approver] = {}
    for approver in matched:
        unique.setdefault(approver.email, approver)
    return list(unique.values())


def _fold_name(name: Any) -> str:
    words = tidy_name(str(name or "")).casefold().replace(".", " ").split()
    # Titles people add on forms and leave off in the directory.
    return " ".join(w for w in words if w not in {"dr", "mr", "mrs", "ms", "miss", "prof"})


def _describe_stated_signer(signer: Mapping[str, Any]) -> str:
    name = tidy_name(str(signer.get("name") or "")) or "(no name)"
    email = signer.get("email")
    return f"{name} <{email}>" if email else name


def _names(approvers: tuple[Approver, ...] | list[Approver]) -> str:
    return ", ".join(f"{a.name} <{a.email}>" for a in approvers)
