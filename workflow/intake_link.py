"""What intake asks of the cases above it (intake.process.CaseLink), answered here.

Intake reads and classifies mail and keeps the ledger; it knows nothing of cases. The
classifier asks a `Knowledge` which case a reference, a thread or a token belongs to,
and the processor asks for a bounce or an automatic reply to be noted on its case and
for the case's reference and state (for the log). The service hands a `WorkflowLink`
to intake (service.jobs, service.cmd_poll).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.inbound import Classification, MessageKind
from intake import ledger
from intake.classify import LedgerKnowledge, bracket_variants
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from workflow.cases import hold_case_by_id, record
from workflow.models import ApprovalRequest, Case

# How many merges are followed from a reference to the case it now belongs to.
MERGE_HOPS = 5


class DatabaseKnowledge(LedgerKnowledge):
    """The ledger, the cases, the outbox and the approval tokens."""

    def case_by_ref(self, ref: str) -> int | None:
        found = self.session.execute(
            select(Case.id, Case.merged_into_id).where(Case.ref == ref)
        ).first()
        # A duplicate merged into another case: its mail belongs to the case it joined.
        for _ in range(MERGE_HOPS):
            if found is None or found.merged_into_id is None:
                break
            found = self.session.execute(
                select(Case.id, Case.merged_into_id).where(Case.id == found.merged_into_id)
            ).first()
        return found.id if found else None

    def case_for_message_ids(self, message_ids: list[str]) -> int | None:
        variants = bracket_variants(message_ids)
        if not variants:
            return None
        sent = self.session.scalar(
            select(OutboxMessage.case_id)
            .where(OutboxMessage.message_id.in_(variants), OutboxMessage.case_id.is_not(None))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        if sent is not None:
            return sent
        return self.inbound_case(variants)

    def case_for_token(self, token: str) -> int | None:
        return self.session.scalar(
            select(ApprovalRequest.case_id).where(ApprovalRequest.token == token)
        )


class WorkflowLink:
    """intake.process.CaseLink, backed by the workflow's tables."""

    def knowledge(self, session: Session) -> DatabaseKnowledge:
        return DatabaseKnowledge(session)

    def note(self, session: Session, row: InboundMessage, found: Classification) -> None:
        """Show a bounce or an automatic reply on its case, in the case's history."""
        case = session.get(Case, found.case_id) if found.case_id is not None else None
        if case is None:
            return
        # Held, as any work on a case is: the history line's reference to the case's row
        # locks it (KEY SHARE), and the batch must end here as after any other hold.
        case = hold_case_by_id(session, case.id)
        ledger.link_case(session, row, case.id)
        what = (
            "A delivery failure report came back for an email sent on this case."
            if found.kind == MessageKind.BOUNCE
            else "An automatic reply (such as an out-of-office) came in on this case."
        )
        record(
            session,
            case,
            "message",
            what,
            actor="intake",
            data={"inbound_id": row.id, "classification": str(found.kind)},
        )

    def describe(self, session: Session, case_id: int) -> tuple[str, str] | None:
        # A case the handler has in the session is kept in step with every move
        # (workflow.cases.move): read it there rather than ask the database again.
        held = session.identity_map.get(session.identity_key(Case, case_id))
        if isinstance(held, Case):
            return held.ref, held.state
        found = session.execute(
            select(Case.ref, Case.state).where(Case.id == case_id)
        ).one_or_none()
        return (found[0], found[1]) if found is not None else None
