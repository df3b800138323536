"""The workflow's tables: the directory (organisations, people, roles, signers, the AEL, its
events) and the cases (references, cases, their history, approval requests).

Timestamps are UTC. Rows that record history are never updated in place. The tables of
the other packages live with them (intake.models, notifications.models, caseworker.models,
service.models); service.schema gathers them for Alembic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# The cases' foreign keys to inbound_messages take their column type from it: without it
# loaded, statements built from the cases table would bind those columns untyped.
import intake.models  # noqa: F401
from core.db import Base, Timestamp
from core.timeutil import utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))  # catalogue.ORG_TYPES
    icb_code: Mapped[str | None] = mapped_column(String(8), index=True)
    # active, closed, dormant, proposed (from ODS); hand-loaded organisations are active.
    status: Mapped[str] = mapped_column(String(12), default="active")
    prescribing_setting: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    # When an NHS ODS import last listed the organisation (None: never, e.g. hand-loaded).
    ods_refreshed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RoleAssignment(Base):
    """A role held by a person in an organisation. Ended, never deleted (R8)."""

    __tablename__ = "role_assignments"
    __table_args__ = (Index("ix_roles_org_service_open", "organisation_id", "service", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    service: Mapped[str] = mapped_column(String(20))  # catalogue.Service
    role: Mapped[str] = mapped_column(String(80))
    granted_by: Mapped[str] = mapped_column(String(254))
    granted_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    grant_reason: Mapped[str] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_by: Mapped[str | None] = mapped_column(String(254))
    end_reason: Mapped[str | None] = mapped_column(Text)

    person: Mapped[Person] = relationship()
    organisation: Mapped[Organisation] = relationship()


class Signer(Base):
    """A practice signer (GP Partner, Caldicott Guardian, Company Director)."""

    __tablename__ = "signers"
    __table_args__ = (UniqueConstraint("organisation_id", "email", "capacity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    capacity: Mapped[str] = mapped_column(String(30))  # catalogue.SIGNER_CAPACITIES key
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organisation: Mapped[Organisation] = relationship()


class AelContact(Base):
    """An entry on NHS England's Authorised Email List."""

    __tablename__ = "ael_contacts"
    __table_args__ = (UniqueConstraint("icb_code", "email", "ael_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    icb_code: Mapped[str] = mapped_column(String(8), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    ael_role: Mapped[str] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DirectoryEvent(Base):
    """Append-only record of every change to the directory: who, when, what, why (R8)."""

    __tablename__ = "directory_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))
    organisation_code: Mapped[str | None] = mapped_column(String(16), index=True)
    person_email: Mapped[str | None] = mapped_column(String(254), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text)


class RefCounter(Base):
    """The last case number issued in a year on SQLite; case refs are PCSE-YYYY-NNNNNN.

    On PostgreSQL each year's numbers come from a sequence (migration 0008), which starts
    after the number kept here by earlier versions."""

    __tablename__ = "ref_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_state_updated", "state", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(30))  # states.CaseKind
    state: Mapped[str] = mapped_column(String(20))  # states.CaseState
    organisation_code: Mapped[str | None] = mapped_column(String(16), index=True)
    requester: Mapped[str] = mapped_column(String(254), index=True)
    requester_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(300))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(Text)
    # The inbound message that opened the case.
    source_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # When the case last entered a waiting state; reminders and expiry count from here.
    waiting_since: Mapped[datetime | None] = mapped_column(Timestamp)
    reminded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The caseworker working on the case (an address), so that two do not work one case.
    assigned_to: Mapped[str | None] = mapped_column(String(254), index=True)
    # A reply a person has not yet read (workflow.new_replies): set by the workflow when a
    # message comes in on a closed case, or from the requester on an open one; cleared
    # only by a caseworker, with a reason.
    new_reply_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    new_reply_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # A duplicate merged into another case points at it; mail quoting its reference goes there.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Retention (workflow.retention): when the original emails, then the personal
    # values, were removed; the case's skeleton stays.
    raw_purged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    personal_purged_at: Mapped[datetime | None] = mapped_column(Timestamp)

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseEvent(Base):
    """The case's history: every move, check and decision, append-only."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    actor: Mapped[str] = mapped_column(String(254))
    # "transition", "check", "decision", "note", "message", "approval", "applied" ...
    event: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")


class ApprovalRequest(Base):
    """A single-use token bound to one case and one approver."""

    __tablename__ = "approval_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    approver_email: Mapped[str] = mapped_column(String(254))
    approver_name: Mapped[str] = mapped_column(String(200))
    # "signer" or "ael": where the address came from (never from the form).
    approver_source: Mapped[str] = mapped_column(String(10))
    capacity: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    reminded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # open, approved, rejected, cancelled, expired
    status: Mapped[str] = mapped_column(String(12), default="open")
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    answer_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # sha256 of the changes the request asked about (workflow.digest); an answer applies
    # only while the case's planned changes still have this digest.
    digest: Mapped[str | None] = mapped_column(String(64))


class RoleChange(Base):
    """The change feed (workflow.changefeed): one row per role granted or ended, written in
    the transaction that changed the role. `seq`, the consumers' cursor, is given once the
    row is committed, in order, so that a reader never skips a row committed late."""

    __tablename__ = "role_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # grant, revoke, main_contact_change
    action: Mapped[str] = mapped_column(String(30))
    case_ref: Mapped[str | None] = mapped_column(String(20), index=True)
    organisation_code: Mapped[str] = mapped_column(String(16))
    person_email: Mapped[str] = mapped_column(String(254), index=True)
    person_name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(80))
    actor: Mapped[str] = mapped_column(String(254))
    assignment_id: Mapped[int] = mapped_column(Integer)


class FeedCounter(Base):
    """The last cursor given to the change feed; its row is the lock that orders them."""

    __tablename__ = "role_change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)
