"""`pcse case correct|note|reply|merge`: a caseworker corrects a value that was read wrong,
notes something for colleagues, replies to the requester in their own words, or merges a
duplicate case into the original. The same operations the case page calls."""

from __future__ import annotations

from typing import Any

import click

from caseworker.accounts import name_of
from service.clitools import emit_json, with_app
from service.cmd_cases import case
from service.context import AppContext, workflow_env
from workflow import actions, corrections, merge_cases, notes
from workflow.cases import case_summary, get_case
from workflow.models import Case

BY = click.option("--by", required=True, help="Who is acting (a caseworker's name or address).")


def register(cli: click.Group) -> None:
    """The commands join the `case` group, which service.cmd_cases registers."""
    for command in (correct, note, reply, merge):
        case.add_command(command)


def _summary(row: Case, **extra: Any) -> dict[str, Any]:
    return case_summary(row) | {"allowed_actions": actions.allowed_actions(row)} | extra


@click.command("correct")
@click.argument("ref")
@click.argument("field")
@click.argument("value")
@BY
@click.option("--reason", required=True, help="Why the value is corrected, for the history.")
@with_app(json_flag=True)
def correct(
    app: AppContext, ref: str, field: str, value: str, by: str, reason: str, json_output: bool
) -> None:
    """Correct a value that was read wrong or not read (FIELD as organisation_code,
    main_contact.email, nominees.0.name, signer.capacity …); the case is decided again."""
    with app.db().transaction() as session:
        done = corrections.correct(
            session, workflow_env(app.config), ref, field=field, value=value, by=by, reason=reason
        )
        document = _summary(
            done.case,
            correction={"field": done.field, "old": done.old, "new": done.new},
            voided_approval_requests=done.voided,
        )
    if json_output:
        emit_json(document)
        return
    click.echo(
        f"{document['ref']}: {done.field} is now {done.new!r}. The case is now "
        f"{document['state']}" + (f": {document['reason']}" if document["reason"] else ".")
    )


@click.command("note")
@click.argument("ref")
@BY
@click.option("--text", required=True, help="The note (caseworkers only; never emailed).")
@with_app(json_flag=True)
def note(app: AppContext, ref: str, by: str, text: str, json_output: bool) -> None:
    """Add an internal note to a case's history; only caseworkers see it."""
    with app.db().transaction() as session:
        row = notes.add_note(session, workflow_env(app.config), ref, by=by, text=text)
        document = _summary(
            get_case(session, ref), note={"at": row.at.isoformat(), "by": by, "text": row.detail}
        )
    if json_output:
        emit_json(document)
        return
    click.echo(f"{document['ref']}: note added.")


NO_ACCOUNT = "--by names no caseworker account (pcse caseworker list)"


@click.command("reply")
@click.argument("ref")
@BY
@click.option("--message", required=True, help="What to tell the requester, in your words.")
@with_app(json_flag=True)
def reply(app: AppContext, ref: str, by: str, message: str, json_output: bool) -> None:
    """Reply to the requester in your own words, threaded with the case."""
    with app.db().transaction() as session:
        signature = name_of(session, by)
        row = notes.reply(
            session, workflow_env(app.config), ref, by=by, message=message, signature=signature
        )
        sent = {
            "outbox_id": row.id,
            "to": row.to_address,
            "status": row.status,
            "signed_by": signature,
        }
        document = _summary(get_case(session, ref), reply=sent)
    if json_output:
        emit_json(document)
        return
    signed = f"signed by {signature}" if signature else f"signed by the team: {NO_ACCOUNT}"
    click.echo(f"{document['ref']}: reply to {sent['to']} queued ({sent['status']}), {signed}.")


@click.command("merge")
@click.argument("ref")
@click.option("--into", "into", required=True, help="The original case to keep.")
@BY
@click.option("--reason", required=True, help="Why the cases are one, for the history.")
@with_app(json_flag=True)
def merge(app: AppContext, ref: str, into: str, by: str, reason: str, json_output: bool) -> None:
    """Merge a duplicate case (REF) into the original (--into); the requester is told the
    one reference to keep."""
    with app.db().transaction() as session:
        original = merge_cases.merge(
            session, workflow_env(app.config), ref, into=into, by=by, reason=reason
        )
        document = _summary(original, merged_from=ref.strip().upper())
    if json_output:
        emit_json(document)
        return
    click.echo(f"{document['merged_from']} is merged into {document['ref']} ({document['state']}).")
