"""Internal notes and a caseworker's own reply to the requester.

A note is for caseworkers only: it is a row in the case's history and nothing else, and no
email is ever made from the history. A reply is the caseworker's own words, sent to the
requester through the outbox under the case's thread and kept in the history too.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import PcseError
from forms.normalise import normalise_email
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow.cases import get_case, record
from workflow.env import WorkflowEnv
from workflow.models import Case, CaseEvent
from workflow.persist import notify, source_message

NOTE_EVENT = "internal_note"
REPLY_EVENT = "caseworker_reply"
TEXT_LIMIT = 10_000


class HelpdeskRefused(PcseError):
    """A note, reply or merge that cannot be made; nothing was changed."""


def _require(by: str, text: str, what: str) -> str:
    if not by.strip():
        raise HelpdeskRefused("Say who is acting (--by).")
    text = (text or "").strip()
    if not text:
        raise HelpdeskRefused(f"Write the {what}.")
    if len(text) > TEXT_LIMIT:
        raise HelpdeskRefused(f"The {what} is longer than {TEXT_LIMIT} characters.")
    return text


def add_note(session: Session, env: WorkflowEnv, ref: str, *, by: str, text: str) -> CaseEvent:
    """An internal note on the case, in any state; caseworkers see it, nobody is emailed."""
    text = _require(by, text, "note")
    case = get_case(session, ref)
    line = record(
        session,
        case,
        NOTE_EVENT,
        text,
        actor=by,
        at=env.clock.now(),
        data={"by": by, "internal": True},
    )
    return CaseEvent(**line)  # not in the session: the line is written with the transaction


def latest_from_requester(session: Session, case: Case) -> InboundMessage | None:
    """The requester's latest message on the case (the one a reply answers), else the first."""
    latest = session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.case_id == case.id,
            InboundMessage.from_address == case.requester,
        )
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
    ).first()
    return latest or source_message(session, case)


def reply(
    session: Session,
    env: WorkflowEnv,
    ref: str,
    *,
    by: str,
    message: str,
    signature: str | None,
) -> OutboxMessage:
    """Send the requester the caseworker's own words, threaded under their latest message,
    signed with `signature` (the caseworker's account name) or, with none, by the team
    alone. The case does not move; the words are escaped in the email like any other value."""
    message = _require(by, message, "reply")
    case = get_case(session, ref)
    if normalise_email(case.requester or "") is None or case.requester.endswith(".invalid"):
        raise HelpdeskRefused(
            f"Case {case.ref} has no requester address a reply can go to ({case.requester})."
        )
    now = env.clock.now()
    record(
        session,
        case,
        REPLY_EVENT,
        message,
        actor=by,
        at=now,
        data={"by": by, "to": case.requester},
    )
    return notify(
        session,
        env,
        case,
        "caseworker_reply",
        to=case.requester,
        name=case.requester_name,
        context={"message": message, "caseworker": (signature or "").strip()},
        reply_to=latest_from_requester(session, case),
        auto_submitted="no",
    )
