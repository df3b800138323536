"""`pcse case approve REF --by … --reason … [--dry-run] [--plan DIGEST]` and
`pcse case change-kind REF KIND --by … --reason …`.

`--dry-run` prints what approving would change (the plan and its digest) and writes
nothing; `--plan DIGEST` applies only if the plan is still that one. A case with open
findings needs a supervisor, or a second caseworker confirming the plan the first one
approved (workflow.approval_plan).
"""

from __future__ import annotations

from pathlib import Path

import click

from caseworker import source_mail
from service.clitools import emit_json, with_app
from service.cmd_actions import BY
from service.cmd_cases import case
from service.context import AppContext, workflow_env
from workflow import actions
from workflow.approval_plan import plan_for
from workflow.cases import case_summary, get_case


def register(cli: click.Group) -> None:
    """The commands join the `case` group, which service.cmd_cases registers."""
    for command in (approve, change_kind):
        case.add_command(command)


@click.command("approve")
@click.argument("ref")
@BY
@click.option("--reason", help="Why, for the case history (not needed with --dry-run).")
@click.option("--dry-run", is_flag=True, help="Print what approving would change; change nothing.")
@click.option("--plan", "plan_digest", help="Apply only if the plan is still this digest.")
@with_app(json_flag=True)
def approve(
    app: AppContext,
    ref: str,
    by: str,
    reason: str | None,
    dry_run: bool,
    plan_digest: str | None,
    json_output: bool,
) -> None:
    """Approve a case in triage or awaiting approval, and apply its changes."""
    env = workflow_env(app.config)
    if dry_run:
        with app.db().transaction() as session:
            plan = plan_for(session, env, get_case(session, ref), actor=by)
        if json_output:
            emit_json(plan.as_dict())
            return
        click.echo(f"Approving {plan.ref} would:")
        for line in plan.lines() or ["change nothing."]:
            click.echo(f"  {line}")
        if plan.findings:
            click.echo("  Open findings: a supervisor or a second caseworker must confirm.")
        click.echo(f"plan: {plan.digest}")
        return
    if not (reason or "").strip():
        raise click.UsageError("Give --reason (or --dry-run to see the changes).")
    with app.db().transaction() as session:
        done = actions.approve_plan(
            session, env, ref, by=by, reason=reason or "", plan_digest=plan_digest
        )
        summary = case_summary(done.case) | {
            "allowed_actions": actions.allowed_actions(done.case),
            "plan": done.plan.as_dict(),
            "proposed": done.proposed,
        }
    if json_output:
        emit_json(summary)
    elif done.proposed:
        click.echo(
            f"{ref} has open findings: your approval of plan {done.plan.digest[:12]} is "
            "recorded; a second caseworker or a supervisor must confirm it (pcse case "
            f"approve {ref} --by … --reason … --plan {done.plan.digest})."
        )
    else:
        click.echo(
            f"{ref} is now {summary['state']}"
            + (f": {done.case.reason}" if done.case.reason else ".")
        )


@click.command("change-kind")
@click.argument("ref")
@click.argument("kind")
@BY
@click.option("--reason", required=True, help="Why, for the case history.")
@with_app(json_flag=True)
def change_kind(
    app: AppContext, ref: str, kind: str, by: str, reason: str, json_output: bool
) -> None:
    """Re-route a misread case to KIND, reading its email again as that kind."""
    with app.db().transaction() as session:
        row = source_mail.change_kind(
            session,
            workflow_env(app.config),
            Path(app.config.storage.raw_dir),
            ref,
            kind=kind,
            by=by,
            reason=reason,
            seconds=float(app.config.limits.message_seconds),
        )
        summary = case_summary(row) | {"allowed_actions": actions.allowed_actions(row)}
    if json_output:
        emit_json(summary)
    else:
        click.echo(f"{ref} is now a {row.kind} case in {row.state}.")
