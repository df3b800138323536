"""What the workflow does with each message intake hands it (contract: Handler).

NEW_REQUEST opens a case, reads the form or the body, acknowledges and decides.
CASE_REPLY on a needs_info case merges what the requester sent and reads the case again;
other replies are noted, and sent to triage when a person must look. APPROVAL_ANSWER is
verified (token, sender, DMARC) and, when every check passes, decides the case. Every
step is a row in the case's history. The handler runs inside intake's transaction.

The work is in workflow.opening (new requests), workflow.case_replies (replies on a case,
with workflow.merging) and workflow.answers (approval answers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from sqlalchemy.orm import Session

import forms
from core.inbound import Classification, IncomingMail, MessageKind
from intake.budget import WATCHDOG
from intake.models import InboundMessage
from workflow.answers import approval_answer
from workflow.case_replies import case_reply
from workflow.env import WorkflowEnv
from workflow.opening import form_files, new_request

Handler = Callable[[Session, InboundMessage, IncomingMail, Classification], str]

# The messages whose forms the workflow reads (workflow.opening.read_forms).
READS_FORMS = frozenset({MessageKind.NEW_REQUEST, MessageKind.CASE_REPLY})


class WorkflowHandler:
    """The handler intake calls for NEW_REQUEST, CASE_REPLY and APPROVAL_ANSWER messages
    (a Handler), which also reads a batch's forms ahead (intake.batch_reading.ReadsAhead)."""

    def __init__(self, env: WorkflowEnv) -> None:
        self.env = env

    def __call__(
        self,
        session: Session,
        inbound: InboundMessage,
        mail: IncomingMail,
        classification: Classification,
    ) -> str:
        env = self.env
        if classification.kind is MessageKind.NEW_REQUEST:
            return new_request(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.CASE_REPLY:
            return case_reply(session, env, inbound, mail, classification)
        if classification.kind is MessageKind.APPROVAL_ANSWER:
            return approval_answer(session, env, inbound, mail, classification)
        return f"Not for the workflow: {classification.kind}."

    def read_ahead(
        self, found: Sequence[tuple[IncomingMail, Classification]], message_seconds: float | None
    ) -> AbstractContextManager[object]:
        """The forms of the new requests and case replies among these messages (the others
        read none), read side by side while the messages before them are worked
        (workflow.opening.read_forms takes each from there): added to this thread's
        read-ahead, or a new one for the block."""
        documents = [
            a.data
            for mail, classification in found
            if classification.kind in READS_FORMS
            for a in form_files(mail)[0]
        ]
        limits = self.env.pdf_limits or forms.PdfLimits()
        ahead = forms.current_read_ahead()
        if ahead is not None and ahead.limits == limits:
            ahead.add(documents)
            return nullcontext()
        if not documents:
            return nullcontext()
        # The Python half of each reading (what the worker read, interpreted) runs in a
        # read-ahead thread, under the budget it had in the processing thread.
        return forms.reading(
            forms.read_ahead(documents, limits, lambda: WATCHDOG.limit(message_seconds))
        )


def handle_message(env: WorkflowEnv) -> Handler:
    """The handler intake calls for NEW_REQUEST, CASE_REPLY and APPROVAL_ANSWER messages."""
    return WorkflowHandler(env)
