"""`pcse queue` and `pcse case show`."""

from __future__ import annotations

import click
from sqlalchemy import select

from core.states import CaseState
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from service.clitools import emit_json, table, with_app
from service.context import AppContext
from workflow.cases import case_summary, get_case, history
from workflow.models import Case
from workflow.retention import retention_line, retention_summary


def register(cli: click.Group) -> None:
    cli.add_command(queue)
    cli.add_command(case)


@click.command()
@click.option("--state", type=click.Choice([s.value for s in CaseState]), help="Only this state.")
@with_app(json_flag=True)
def queue(app: AppContext, state: str | None, json_output: bool) -> None:
    """Every case, newest first."""
    with app.db().transaction() as session:
        query = select(Case).order_by(Case.created_at.desc(), Case.id.desc())
        if state:
            query = query.where(Case.state == state)
        cases = [case_summary(c) for c in session.scalars(query)]
    if json_output:
        emit_json(cases)
        return
    if not cases:
        click.echo("No cases.")
        return
    rows = [
        [
            c["ref"],
            c["kind"],
            c["state"],
            c["organisation"] or "-",
            c["requester"],
            c["updated_at"][:16].replace("T", " "),
            (c["reason"] or "")[:60],
        ]
        for c in cases
    ]
    click.echo(table(rows, ["ref", "kind", "state", "org", "requester", "updated", "reason"]))


@click.group()
def case() -> None:
    """Look at a case, or act on it as a caseworker."""


def case_messages(session, case_row: Case) -> list[dict]:
    """The emails received and sent on a case, oldest first."""
    received = session.scalars(
        select(InboundMessage).where(InboundMessage.case_id == case_row.id)
    ).all()
    sent = session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case_row.id)).all()
    messages = [
        {
            "direction": "in",
            "at": m.received_at.isoformat(),
            "from": m.from_address,
            "from_name": m.from_name,
            "sender_status": m.sender_status,
            "sender_detail": m.sender_detail,
            "subject": m.subject,
            "message_id": m.message_id,
            "classification": m.classification,
            "status": m.status,
        }
        for m in received
    ] + [
        {
            "direction": "out",
            "at": m.created_at.isoformat(),
            "to": m.to_address,
            "subject": m.subject,
            "message_id": m.message_id,
            "purpose": m.purpose,
            "status": m.status,
        }
        for m in sent
    ]
    return sorted(messages, key=lambda m: m["at"])


@case.command("show")
@click.argument("ref")
@with_app(json_flag=True)
def case_show(app: AppContext, ref: str, json_output: bool) -> None:
    """One case: what was read, what was decided and why, and its emails."""
    with app.db().transaction() as session:
        row = get_case(session, ref)
        document = case_summary(row) | {
            "fields": row.fields,
            "findings": row.findings,
            "history": history(row),
            "messages": case_messages(session, row),
            "retention": retention_summary(row),
        }
    if json_output:
        emit_json(document)
        return
    click.echo(f"{document['ref']}  {document['kind']}  {document['state']}")
    click.echo(
        f"organisation: {document['organisation'] or '-'}   requester: {document['requester']}"
    )
    if document["reason"]:
        click.echo(f"reason: {document['reason']}")
    if document["retention"]:
        click.echo(retention_line(document["retention"]))
    if document["fields"]:
        click.echo("\nfields:")
        for key, value in document["fields"].items():
            click.echo(f"  {key}: {value}")
    if document["findings"]:
        click.echo("\nfindings:")
        for finding in document["findings"]:
            click.echo(f"  - {finding.get('message', finding)}")
    click.echo("\nhistory:")
    for event in document["history"]:
        move = f" {event['from_state'] or ''}->{event['to_state']}" if event["to_state"] else ""
        click.echo(
            f"  {event['at'][:19]} {event['actor']}: {event['event']}{move} {event['detail']}"
        )
    if document["messages"]:
        click.echo("\nmessages:")
        for m in document["messages"]:
            who = m.get("from") if m["direction"] == "in" else m.get("to")
            sender = (
                f" (sender: {m['sender_status'] or 'not yet checked'})"
                if m["direction"] == "in"
                else ""
            )
            click.echo(
                f"  {m['at'][:19]} {m['direction']:3} {who}{sender}  {m['subject']}  "
                f"[{m['status']}]"
            )
