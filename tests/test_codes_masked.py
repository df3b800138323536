"""An approval code still open is a key: pages and commands show it only as a label.

After an answer that could not be read the approver's code stays open; the emails on the
case (in and out), the new reply, `pcse case show` and `pcse outbox list` show it cut.
"""

from __future__ import annotations

from sqlalchemy import select

from caseworker.casepage import emails
from caseworker.newreply import new_reply_view
from core.db import Database
from core.patterns import mask_tokens
from notifications.models import OutboxMessage
from service.cmd_cases import case_messages
from service.cmd_outbox import _row
from tests.test_workflow_helpers import PARTNER, answer, gpp_form, open_request, token_for
from workflow.env import WorkflowEnv
from workflow.models import ApprovalRequest, Case


def test_an_open_code_is_shown_cut_wherever_its_emails_are_listed(
    db: Database, env: WorkflowEnv
) -> None:
    ref = open_request(db, env, gpp_form())
    token = token_for(db, ref, PARTNER[1])
    answer(db, env, ref, PARTNER, "Approve? I don't know her")
    with db.transaction() as session:
        assert [a.status for a in session.scalars(select(ApprovalRequest))] == ["open"]
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        listed = [
            *map(str, emails(session, case)),
            *map(str, case_messages(session, case)),
            *(str(_row(m, ref)) for m in session.scalars(select(OutboxMessage))),
            str(new_reply_view(session, case)),
        ]
    cut = f"APV-{token[:6]}…"
    assert sum(cut in line for line in listed) >= 4  # in and out, on the page and the command
    assert not any(token in line for line in listed)


def test_a_code_inside_a_link_is_cut_too() -> None:
    """The approval request's buttons are mailto links: the code follows "%20" there."""
    code = "APV-c8af7e5b7a0fb2cf855e"
    link = f"mailto:pcse.portalenquiries@nhs.net?subject=APPROVE%20%5BPCSE-2026-000001%5D%20{code}"
    quoted = f"subject=3D{code}"  # quoted-printable, as a raw message holds it
    masked = mask_tokens(f'<a href="{link}">Approve</a> or reply with {code}. %0A{code} {quoted}')
    assert code not in masked
    assert masked.count("APV-c8af7e…") == 4
