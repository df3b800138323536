"""`pcse queue` and `pcse case show`."""

from __future__ import annotations

import click
from sqlalchemy import select

from core.patterns import mask_tokens
from core.states import CaseState
from intake.models import InboundMessage
from notifications.models import OutboxMessage
from service.clitools import emit_json, table, with_app
from service.context import AppContext, workflow_env
from workflow.cases import case_summary, get_case, history
from workflow.models import Case
from workflow.retention import retention_line, retention_summary


def register(cli: click.Group) -> None:
    cli.add_command(queue)
    cli.add_command(case)


@click.command()
@click.option("--state", type=click.Choice([s.value for s in CaseState]), help="Only this state.")
@click.option(
    "--needs-person",
    is_flag=True,
    help="Exactly what the web queue's default view lists, in its order: cases in triage or "
    "with a new reply, then failed messages, then failed or held emails.",
)
@with_app(json_flag=True)
def queue(app: AppContext, state: str | None, needs_person: bool, json_output: bool) -> None:
    """Every case, newest first (or, with --needs-person, what needs a person)."""
    from caseworker.queue import case_row, needs_person_rows

    if state and needs_person:
        raise click.UsageError("Give either --state or --needs-person, not both.")
    env = workflow_env(app.config)
    now = env.clock.now()
    with app.db().transaction() as session:
        if needs_person:
            rows = needs_person_rows(session, now=now, targets=env.targets)
        else:
            query = select(Case).order_by(Case.created_at.desc(), Case.id.desc())
            if state:
                query = query.where(Case.state == state)
            rows = [case_row(c, now, env.targets) for c in session.scalars(query)]
        cases = [row.as_json() for row in rows]
    if json_output:
        emit_json(cases)
        return
    if not cases:
        click.echo("Nothing needs a person." if needs_person else "No cases.")
        return
    table_rows = [
        [
            c["ref"],
            c["kind"],
            c["state"] or "-",
            c["organisation"] or "-",
            c["requester"] or "-",
            (c["updated_at"] or "")[:16].replace("T", " "),
            _marks(c),
            (c["reason"] or "")[:60],
        ]
        for c in cases
    ]
    click.echo(
        table(
            table_rows,
            ["ref", "kind", "state", "org", "requester", "updated", "marks", "reason"],
        )
    )


def _marks(row: dict) -> str:
    marks = ["new reply"] if row["new_reply_at"] else []
    marks += [f"overdue: {name}" for name in row["overdue"]]
    return ", ".join(marks) or "-"


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
            "subject": mask_tokens(m.subject) if m.subject else m.subject,
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
            "subject": mask_tokens(m.subject),
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
            "new_reply_at": row.new_reply_at.isoformat() if row.new_reply_at else None,
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
    if document["new_reply_at"]:
        click.echo(
            f"new reply since {document['new_reply_at'][:16]}: read it, then "
            f"`pcse case clear-reply` or `pcse case reopen`"
        )
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
