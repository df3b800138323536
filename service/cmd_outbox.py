"""`pcse outbox send|list|retry|dismiss|check-templates`: outgoing mail, for operators and
caseworkers."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from core.errors import PcseError
from core.patterns import mask_tokens
from notifications.claims import is_unconfirmed
from notifications.models import OutboxMessage
from notifications.outbox import STATUSES
from notifications.sender import send_pending
from notifications.smtp import TokenProvider
from service.clitools import emit_json, table, with_app
from service.config import Config
from service.context import AppContext
from workflow.models import Case


class OutboxTemplatesBroken(PcseError):
    pass


def register(cli: click.Group) -> None:
    cli.add_command(outbox)


def smtp_token_provider(config: Config) -> TokenProvider | None:
    """The intake's OAuth2 token provider when [smtp] signs in with XOAUTH2."""
    if config.smtp.auth != "oauth2":
        return None
    from intake.oauth2 import smtp_token_provider as provider_for

    return provider_for(config)


# The caseworker actions, the list's case references and the template check import what
# they need when they run: `pcse outbox send`, run from cron every minute in some set-ups,
# loads only the sender.


@click.group()
def outbox() -> None:
    """Outgoing email: send what is due, list it, send again or dismiss."""


@outbox.command("send")
@with_app(json_flag=True)
def outbox_send(app: AppContext, json_output: bool) -> None:
    """Send every email that is due now, over one SMTP connection."""
    report = send_pending(app.db(), app.config, token_provider=smtp_token_provider(app.config))
    if json_output:
        emit_json({"sent": report.sent, "failed": report.failed, "pending": report.pending})
    else:
        click.echo(f"sent {report.sent}, failed {report.failed}, still to send {report.pending}")
    if report.error:
        click.echo(report.error, err=True)
        sys.exit(1)


def _row(message: OutboxMessage, ref: str | None) -> dict:
    return {
        "id": message.id,
        "case": ref,
        "purpose": message.purpose,
        "to": message.to_address,
        "subject": mask_tokens(message.subject),
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at,
        "last_error": message.last_error,
        "created_at": message.created_at,
        "sent_at": message.sent_at,
        # Handed to the server, its answer never read (the sender stopped in between):
        # it may not have been delivered.
        # The server's answer not read: the sender is still at it or died (claim held), or
        # a later sender found it so and flagged it.
        "unconfirmed": (message.status == "sent" and message.claimed_by is not None)
        or is_unconfirmed(message.status, message.last_error),
        "message_id": message.message_id,
    }


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only emails in this status.")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many.")
@with_app(json_flag=True)
def outbox_list(app: AppContext, status: str | None, limit: int, json_output: bool) -> None:
    """Outgoing emails, newest first."""
    with app.db().transaction() as session:
        query = (
            select(OutboxMessage, Case.ref)
            .outerjoin(Case, Case.id == OutboxMessage.case_id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(OutboxMessage.status == status)
        rows = [_row(message, ref) for message, ref in session.execute(query)]
    if json_output:
        emit_json(rows)
        return
    if not rows:
        click.echo("No emails.")
        return
    click.echo(
        table(
            [
                [
                    r["id"],
                    r["case"] or "-",
                    r["purpose"],
                    r["to"],
                    f"{r['status']} (unconfirmed)" if r["unconfirmed"] else r["status"],
                    r["attempts"],
                    (r["last_error"] or "")[:70],
                ]
                for r in rows
            ],
            ["id", "case", "purpose", "to", "status", "tries", "last error"],
        )
    )


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@click.option("--by", required=True, help="Who decided to send it (your email address).")
@with_app()
def outbox_retry(app: AppContext, outbox_id: int, by: str) -> None:
    """Send a held, failed or unconfirmed email again."""
    from workflow.mail import retry

    with app.db().transaction() as session:
        row = retry(session, outbox_id, by=by)
        click.echo(f"Email {row.id} to {row.to_address} will be sent with the next batch.")


@outbox.command("dismiss")
@click.argument("outbox_id", type=int)
@click.option("--by", required=True, help="Who decided not to send it (your email address).")
@click.option("--reason", required=True, help="Why it should not be sent.")
@with_app()
def outbox_dismiss(app: AppContext, outbox_id: int, by: str, reason: str) -> None:
    """Decide not to send a pending, held or failed email."""
    from workflow.mail import dismiss

    with app.db().transaction() as session:
        row = dismiss(session, outbox_id, by=by, reason=reason)
        click.echo(f"Email {row.id} to {row.to_address} will not be sent.")


@outbox.command("accept")
@click.argument("outbox_id", type=int)
@click.option("--by", required=True, help="Who decided (your email address).")
@click.option("--reason", required=True, help="Why it can be left as sent.")
@with_app()
def outbox_accept(app: AppContext, outbox_id: int, by: str, reason: str) -> None:
    """Leave an email whose delivery is unconfirmed as sent."""
    from workflow.mail import accept_as_sent

    with app.db().transaction() as session:
        row = accept_as_sent(session, outbox_id, by=by, reason=reason)
        click.echo(f"Email {row.id} to {row.to_address} is left as sent.")


@outbox.command("check-templates")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    help="Folder to check (default: [notifications] templates_dir).",
)
@with_app()
def outbox_check_templates(app: AppContext, folder: str | None) -> None:
    """Render every template, with any overrides, from sample data; report what fails."""
    from notifications.purposes import PURPOSES
    from notifications.rendering import check_templates
    from notifications.samples import sample_template_context

    chosen = folder or app.config.notifications.templates_dir
    samples = {purpose: sample_template_context(purpose) for purpose in PURPOSES}
    problems = check_templates(chosen, samples)
    for problem in problems:
        click.echo(problem, err=True)
    where = f"{chosen} over the shipped templates" if chosen else "the shipped templates"
    if problems:
        raise OutboxTemplatesBroken(f"{len(problems)} template(s) in {where} do not render.")
    click.echo(f"All {len(PURPOSES)} purposes render from {where}.")
