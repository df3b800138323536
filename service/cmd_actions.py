"""Caseworker actions on the command line: `pcse case reject|request-info|reopen|
withdraw|ask-approver REF --by NAME …`, the same operations the web pages call."""

from __future__ import annotations

from collections.abc import Callable

import click

from service.clitools import emit_json, with_app
from service.cmd_cases import case
from service.context import AppContext, workflow_env
from workflow import actions, new_replies
from workflow.cases import case_summary, get_case
from workflow.models import Case

BY = click.option("--by", required=True, help="Who is acting (a caseworker's name or address).")
REASON = click.option("--reason", required=True, help="Why, for the case history.")


def register(cli: click.Group) -> None:
    """The commands join the `case` group, which service.cmd_cases registers."""
    # `approve`, with its preview, is service.cmd_case_plan's.
    for command in (reject, request_info, reopen, clear_reply, withdraw, ask_approver, assign):
        case.add_command(command)


def _report(row: Case, json_output: bool) -> None:
    summary = case_summary(row) | {"allowed_actions": actions.allowed_actions(row)}
    if json_output:
        emit_json(summary)
        return
    click.echo(f"{row.ref} is now {row.state}" + (f": {row.reason}" if row.reason else "."))


def _reason_command(name: str, operation: Callable[..., Case], help_text: str) -> click.Command:
    """`pcse case NAME REF --by WHO --reason WHY`: one workflow action with its reason."""

    @click.command(name, help=help_text)
    @click.argument("ref")
    @BY
    @REASON
    @with_app(json_flag=True)
    def command(app: AppContext, ref: str, by: str, reason: str, json_output: bool) -> None:
        with app.db().transaction() as session:
            row = operation(session, workflow_env(app.config), ref, by=by, reason=reason)
            _report(row, json_output)

    return command


reject = _reason_command(
    "reject", actions.reject, "Reject a case; the requester is sent the reason."
)
reopen = _reason_command(
    "reopen",
    new_replies.reopen_case,
    "Reopen a closed case into triage: one with a new reply, or (supervisors) an expired one.",
)
clear_reply = _reason_command(
    "clear-reply",
    new_replies.clear,
    "Clear a case's new reply marker once the reply is read; the case keeps its state.",
)
withdraw = _reason_command(
    "withdraw", actions.withdraw, "Close a duplicate, spam or withdrawn request without a reply."
)


@click.command("request-info")
@click.argument("ref")
@BY
@click.option("--message", required=True, help="What the requester must send.")
@with_app(json_flag=True)
def request_info(app: AppContext, ref: str, by: str, message: str, json_output: bool) -> None:
    """Ask the requester for missing information."""
    with app.db().transaction() as session:
        row = actions.request_info(session, workflow_env(app.config), ref, by=by, message=message)
        _report(row, json_output)


@click.command("ask-approver")
@click.argument("ref")
@BY
@click.option(
    "--approver",
    "approver_email",
    required=True,
    help="The address of a recorded signer or AEL contact of the organisation.",
)
@with_app(json_flag=True)
def ask_approver(
    app: AppContext, ref: str, by: str, approver_email: str, json_output: bool
) -> None:
    """Send an approval request to a recorded signer or AEL contact."""
    with app.db().transaction() as session:
        actions.send_approval_request(
            session, workflow_env(app.config), ref, by=by, approver_email=approver_email
        )
        _report(get_case(session, ref), json_output)


@click.command("assign")
@click.argument("ref")
@BY
@click.option("--to", "to", help="The caseworker to work on it (an email address).")
@click.option("--release", is_flag=True, help="Nobody works on it any more.")
@with_app(json_flag=True)
def assign(
    app: AppContext, ref: str, by: str, to: str | None, release: bool, json_output: bool
) -> None:
    """Assign a case to a caseworker (--to), or release it (--release)."""
    if bool(to) == release:
        raise click.UsageError("Give either --to EMAIL or --release.")
    with app.db().transaction() as session:
        row = actions.assign(session, workflow_env(app.config), ref, to=to, by=by)
        if json_output:
            _report(row, json_output)
        else:
            click.echo(
                f"{row.ref} is now with {row.assigned_to}."
                if row.assigned_to
                else f"{row.ref} is now with nobody."
            )
