"""What the workflow does with each message intake hands it (contract: Handler).

NEW_REQUEST opens a case, reads the form or the body, acknowledges and decides.
CASE_REPLY on a needs_info case merges what the requester sent and reads the case again;
other replies are noted, and sent to triage when a person must look. APPROVAL_ANSWER is
verified (token, sender, DMARC) and, when every check passes, decides the case. Every
step is a row in the case's history. The handler runs inside intake's transaction.

The work is in workflow.opening (new requests), workflow.case_replies (replies on a case,
with workflow.merging) and workflow.answers (approval answers)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from core.inbound import Classification, IncomingMail, MessageKind
from intake.models import InboundMessage
from workflow.answers import approval_answer
from workflow.case_replies import case_reply
from workflow.env import WorkflowEnv
from workflow.opening import new_request

Handler = Callable[[Session, InboundMessage, IncomingMail, Classification], str]


def handle_message(env: WorkflowEnv) -> Handler:
    """The handler intake calls for NEW_REQUEST, CASE_REPLY and APPROVAL_ANSWER messages."""

    def handler(
        session: Session,
        inbound: InboundMessage,
        mail: IncomingMail,
        classification: Classification,
    ) -> str:
        if classification.kind is MessageKind.NEW_REQUEST:
            return new_request(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.CASE_REPLY:
            return case_reply(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.APPROVAL_ANSWER:
            return approval_answer(session, env, inbound, mail, classification)
        return f"Not for the workflow: {classification.kind}."

    return handler
