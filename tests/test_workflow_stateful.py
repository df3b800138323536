"""A Hypothesis state machine of the workflow: random requests, answers (genuine, forged,
replayed, misdirected), caseworker actions, directory changes and clock steps never break a
rule, never approve without a valid answer, and never leave a case outside the state table."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from core.catalogue import ADMIN_CAPPED_SERVICES, CATALOGUE, Service
from core.clock import FixedClock
from core.db import Base, Database
from core.inbound import MessageKind
from core.states import FINAL_STATES, TRANSITIONS, CaseState
from core.timeutil import as_utc
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from tests.test_workflow_helpers import (
    GUARDIAN,
    ICB_CONTACT,
    ICB_CONTACT_2,
    MANAGER,
    NOW,
    PARTNER,
    deliver,
    email_request,
    gpp_form,
    mail_from,
    make_env,
    open_request,
    seed,
)
from workflow import actions, directory
from workflow.models import ApprovalRequest, Case, CaseEvent, Organisation, RoleAssignment
from workflow.reminders import run_due
from workflow.rules import RuleViolation

STRANGER = ("Mallory", "mallory@evil.example")
PEOPLE = [PARTNER, GUARDIAN, ICB_CONTACT, ICB_CONTACT_2, ("Hal Hill", "hal.hill@nhs.net"), STRANGER]
NOMINEES = [(f"Nominee {n}", f"nominee{n}@nhs.net") for n in range(1, 7)]
ORGS = ["A81001", "B82002", "C83003", "U12345", "ZZ999"]
KINDS = [
    "gpp_admin_form",
    "user_admin_form",
    "pcn_admin_form",
    "pl_admin",
    "oph_admin",
    "main_contact",
    "performer_registration",
    "other",
]
ANSWERS = {
    "approve": "APPROVE",
    "reject": "REJECT not known to us",
    "unclear": "Please call me",
    "quoted": "",
}
ACTIONS = ["approve", "reject", "request_info", "withdraw", "reopen", "send_approval_request"]


def reset(db: Database) -> None:
    with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        seed(session)


def make_request(
    kind: str,
    org: str,
    nominees: list[tuple[str, str]],
    services: list[str],
    signer: tuple[str, str] | None,
    with_contact: bool,
) -> Any:
    people = [{"name": n, "email": e, "services": services} for n, e in nominees]
    contact = {"name": "New Contact", "email": "new.contact@nhs.net"} if with_contact else None
    if kind in ("gpp_admin_form", "user_admin_form", "pcn_admin_form"):
        request = gpp_form(
            organisation_code=org,
            nominees=people,
            main_contact=contact,
            signer={
                "name": signer[0],
                "email": signer[1],
                "capacity": "gp_partner",
                "date": None,
                "declaration": True,
            }
            if signer
            else None,
        )
        request.kind = kind
        return request
    return email_request(kind, organisation_code=org, nominees=people, main_contact=contact)


class Workflow(RuleBasedStateMachine):
    db: Database

    def __init__(self) -> None:
        super().__init__()
        reset(self.db)
        self.clock = FixedClock(NOW)
        self.env = make_env(self.clock)
        self.refs: list[str] = []
        # Tokens answered "approve" by their approver, authenticated, while open and in time.
        self.genuine_approvals: set[str] = set()

    # ----------------------------------------------------------------------- rules

    # Mostly requests that can go all the way, with the odd broken one.
    @rule(
        kind=st.sampled_from(KINDS),
        org=st.sampled_from(["A81001", "A81001", *ORGS]),
        nominees=st.lists(st.sampled_from(NOMINEES), min_size=1, max_size=3, unique=True),
        services=st.lists(
            st.sampled_from(["gpp", "pl", "oph", "pcn"]), min_size=1, max_size=2, unique=True
        ),
        broken=st.sampled_from([None, None, None, None, "nominees", "services"]),
        signer=st.sampled_from([PARTNER, PARTNER, GUARDIAN, ICB_CONTACT, STRANGER, None]),
        contact=st.booleans(),
        sender=st.sampled_from([MANAGER, MANAGER, ICB_CONTACT]),
        dmarc=st.sampled_from([True, True, False]),
    )
    def request_arrives(
        self,
        kind: str,
        org: str,
        nominees: list[tuple[str, str]],
        services: list[str],
        broken: str | None,
        signer: tuple[str, str] | None,
        contact: bool,
        sender: tuple[str, str],
        dmarc: bool,
    ) -> None:
        request = make_request(
            kind,
            org,
            [] if broken == "nominees" else nominees,
            [] if broken == "services" else services,
            signer,
            contact,
        )
        self.refs.append(open_request(self.db, self.env, request, sender=sender, dmarc=dmarc))

    def _tokens(self, only_open: bool) -> list[tuple[str, str, str, str]]:
        """(token, approver email, approver name, case ref) of the approval requests."""
        with self.db.transaction() as session:
            query = (
                select(
                    ApprovalRequest.token,
                    ApprovalRequest.approver_email,
                    ApprovalRequest.approver_name,
                    Case.ref,
                )
                .join(Case, Case.id == ApprovalRequest.case_id)
                .order_by(ApprovalRequest.id)
            )
            if only_open:
                query = query.where(ApprovalRequest.status == "open")
            return [tuple(row) for row in session.execute(query)]

    def _answer(
        self, token: str, person: tuple[str, str], verdict: str, *, dmarc: bool, about: str
    ) -> None:
        text = (
            ANSWERS[verdict] + "\n\nOn Mon, PCSE <pcse.portalenquiries@nhs.net> wrote:\n"
            "> Reply APPROVE to approve, or REJECT followed by your reason.\n"
        )
        mail = mail_from(
            person, subject=f"RE: [{about}] Approval needed APV-{token}", text=text, dmarc=dmarc
        )
        deliver(self.db, self.env, mail, MessageKind.APPROVAL_ANSWER, token=token)

    @precondition(lambda self: self._tokens(only_open=True))
    @rule(
        data=st.data(),
        verdict=st.sampled_from(["approve", "approve", "reject", "unclear", "quoted"]),
    )
    def approver_answers(self, data: st.DataObject, verdict: str) -> None:
        """The asked approver answers an open request, authenticated."""
        token, email, name, ref = data.draw(st.sampled_from(self._tokens(only_open=True)))
        if verdict == "approve" and self._open_in_time(token):
            self.genuine_approvals.add(token)
        self._answer(token, (name, email), verdict, dmarc=True, about=ref)

    @precondition(lambda self: self._tokens(only_open=False))
    @rule(
        data=st.data(),
        attack=st.sampled_from(["stranger", "other_approver", "no_dmarc", "misdirected", "replay"]),
    )
    def forged_answer(self, data: st.DataObject, attack: str) -> None:
        """An answer that must approve nothing: wrong sender, no DMARC pass, another case's
        reference, or a token already used."""
        token, email, name, ref = data.draw(st.sampled_from(self._tokens(only_open=False)))
        person, dmarc, about = (name, email), True, ref
        if attack == "stranger":
            person = STRANGER
        elif attack == "other_approver":
            person = data.draw(st.sampled_from([p for p in PEOPLE[:5] if p[1] != email]))
        elif attack == "no_dmarc":
            dmarc = False
        elif attack == "misdirected":
            others = [r for r in self.refs if r != ref]
            if not others:
                return
            about = data.draw(st.sampled_from(others))
        elif self._open_in_time(token):
            return  # a replay needs a token already used or expired
        self._answer(token, person, "approve", dmarc=dmarc, about=about)

    def _open_in_time(self, token: str) -> bool:
        with self.db.transaction() as session:
            row = session.scalars(
                select(ApprovalRequest).where(ApprovalRequest.token == token)
            ).one()
            state = session.get(Case, row.case_id).state
            return (
                row.status == "open"
                and self.clock.now() < as_utc(row.expires_at)
                and state in ("awaiting_approval", "triage")
            )

    @rule(
        data=st.data(),
        action=st.sampled_from(ACTIONS),
        approver=st.sampled_from([p[1] for p in PEOPLE]),
    )
    def caseworker_acts(self, data: st.DataObject, action: str, approver: str) -> None:
        if not self.refs:
            return
        ref = data.draw(st.sampled_from(self.refs))
        with self.db.transaction() as session:
            try:
                if action == "send_approval_request":
                    actions.send_approval_request(
                        session, self.env, ref, by="casey", approver_email=approver
                    )
                elif action == "request_info":
                    actions.request_info(
                        session,
                        self.env,
                        ref,
                        by="casey",
                        message="Please confirm the nominee's role.",
                    )
                else:
                    getattr(actions, action)(
                        session, self.env, ref, by="casey", reason="Checked by phone."
                    )
            except actions.ActionRefused:
                session.rollback()

    @rule(
        org=st.sampled_from(ORGS[:4]),
        service=st.sampled_from(["gpp", "pl", "main"]),
        person=st.sampled_from(NOMINEES),
    )
    def directory_changes(self, org: str, service: str, person: tuple[str, str]) -> None:
        """Someone is given a role outside the workflow (an admin, in the portal)."""
        with self.db.transaction() as session:
            try:
                if service == "main":
                    directory.set_main_contact(
                        session,
                        org_code=org,
                        email=person[1],
                        name=person[0],
                        actor="portal",
                        reason="portal",
                    )
                else:
                    directory.grant_role(
                        session,
                        org_code=org,
                        email=person[1],
                        name=person[0],
                        role=CATALOGUE[Service(service)].admin_role,
                        actor="portal",
                        reason="portal",
                    )
            except RuleViolation:
                session.rollback()

    @rule(days=st.integers(0, 6), hours=st.integers(0, 23))
    def time_passes(self, days: int, hours: int) -> None:
        self.clock.advance(days=days, hours=hours)
        run_due(self.db, self.env)

    # ----------------------------------------------------------------------- invariants

    @invariant()
    def cases_follow_the_state_table(self) -> None:
        with self.db.transaction() as session:
            for case in session.scalars(select(Case)):
                state = CaseState(case.state)
                moves = [e for e in case.events if e.event == "transition"]
                for event in moves:
                    assert CaseState(event.to_state) in TRANSITIONS[CaseState(event.from_state)]
                last = moves[-1].to_state if moves else "received"
                assert last == state, (case.ref, last, state)

    @invariant()
    def rules_r1_and_r2_hold(self) -> None:
        with self.db.transaction() as session:
            for org in session.scalars(select(Organisation.code)):
                for service in ADMIN_CAPPED_SERVICES:
                    assert len(directory.admins(session, org, service)) <= 4
                assert len(directory.admins(session, org, Service.MAIN_CONTACT)) <= 1

    @invariant()
    def nothing_approved_without_a_genuine_answer(self) -> None:
        with self.db.transaction() as session:
            approved = session.execute(
                select(
                    ApprovalRequest.token,
                    ApprovalRequest.approver_email,
                    InboundMessage.from_address,
                )
                .join(
                    InboundMessage,
                    InboundMessage.id == ApprovalRequest.answer_message_id,
                    isouter=True,
                )
                .where(ApprovalRequest.status == "approved")
            ).all()
            for token, approver, sender in approved:
                assert token in self.genuine_approvals, token
                assert sender == approver
            for case in session.scalars(select(Case).where(Case.state == "completed")):
                by_email = any(
                    e.event == "approval" and e.data.get("verdict") == "approved"
                    for e in case.events
                )
                by_sender = any(
                    e.event == "approval" and e.data.get("by") == "sender" for e in case.events
                )
                by_caseworker = any(
                    e.event == "caseworker_action" and e.data.get("action") == "approve"
                    for e in case.events
                )
                assert by_email or by_sender or by_caseworker, case.ref

    @invariant()
    def granted_roles_belong_to_completed_cases(self) -> None:
        with self.db.transaction() as session:
            reasons = session.scalars(
                select(RoleAssignment.grant_reason).where(
                    RoleAssignment.grant_reason.like("PCSE-%")
                )
            ).all()
            for ref in reasons:
                assert session.scalar(select(Case.state).where(Case.ref == ref)) == "completed"

    @invariant()
    def tokens_close_with_their_case(self) -> None:
        with self.db.transaction() as session:
            final = [str(s) for s in FINAL_STATES]
            open_on_final = session.scalars(
                select(ApprovalRequest.id)
                .join(Case, Case.id == ApprovalRequest.case_id)
                .where(ApprovalRequest.status == "open", Case.state.in_(final))
            ).all()
            assert open_on_final == []

    @invariant()
    def approval_requests_go_to_recorded_approvers_only(self) -> None:
        recorded = {p[1] for p in PEOPLE[:5]}
        with self.db.transaction() as session:
            sent = session.scalars(
                select(OutboxMessage.to_address).where(
                    OutboxMessage.purpose.in_(["approval_request", "approval_reminder"])
                )
            ).all()
            assert set(sent) <= recorded
            assert (
                session.scalar(
                    select(CaseEvent.id).where(
                        CaseEvent.event == "approval_requested",
                        CaseEvent.detail.like(f"%{STRANGER[1]}%"),
                    )
                )
                is None
            )


@pytest.mark.slow
def test_workflow_state_machine(database: Database) -> None:
    Workflow.db = database
    # PostgreSQL is slower per step; fewer runs there still cover its locking and types.
    examples = 20 if database.url.startswith("sqlite") else 8
    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
