"""`pcse poll --once`, `pcse status` and `pcse run`: intake and the service, for operators."""

from __future__ import annotations

import sys
import threading
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.timeutil import as_utc
from intake.models import InboundMessage, MailboxState
from intake.pipeline import run_round
from notifications.claims import count_unconfirmed
from notifications.models import OutboxMessage
from service.clitools import emit_json, table, with_app
from service.config import Config, require_sender_authentication
from service.context import AppContext
from service.jobs import build_handler
from service.notices import operator_warnings
from workflow.intake_link import WorkflowLink
from workflow.models import Case


def register(cli: click.Group) -> None:
    cli.add_command(poll)
    cli.add_command(status)
    cli.add_command(run)


@click.command()
@click.option("--once", is_flag=True, help="One poll of every mailbox, then process.")
@with_app(json_flag=True)
def poll(app: AppContext, once: bool, json_output: bool) -> None:
    """Poll every mailbox once, then process every message waiting."""
    if not once:
        raise click.UsageError(
            "Use `pcse poll --once` for one round, or `pcse run` for the "
            "service that polls on a schedule."
        )
    require_sender_authentication(app.config)
    report = run_round(app.db(), app.config, build_handler(app.config), cases=WorkflowLink())
    document = report.as_json()
    if json_output:
        emit_json(document)
    else:
        click.echo(
            "fetched {fetched}, processed {processed}, duplicates {duplicates}, "
            "ignored {ignored}, failed {failed}".format(**document)
        )
    for error in report.errors:
        click.echo(error, err=True)
    if report.errors:
        sys.exit(1)


def _counts(session: Session, column: Any) -> dict[str, int]:
    return {
        key: count for key, count in session.execute(select(column, func.count()).group_by(column))
    }


def status_document(session: Session, config: Config) -> dict[str, Any]:
    """Is it working? The last poll of each mailbox, the backlog, failures, cases by state."""
    states = {s.name: s for s in session.scalars(select(MailboxState))}
    mailboxes = []
    for box in config.mailboxes:
        state = states.get(box.name)
        mailboxes.append(
            {
                "name": box.name,
                "address": box.address,
                "last_poll_at": state.last_poll_at if state else None,
                "last_ok_at": state.last_ok_at if state else None,
                "last_error": state.last_error if state else None,
                "last_fetched": state.last_fetched if state else 0,
            }
        )
    messages = _counts(session, InboundMessage.status)
    outbox = _counts(session, OutboxMessage.status)
    return {
        "mailboxes": mailboxes,
        "messages_pending": messages.get("pending", 0),
        "messages_failed": messages.get("failed", 0),
        "messages": messages,
        "outbox_pending": outbox.get("pending", 0) + outbox.get("sending", 0),
        "outbox_held": outbox.get("held", 0),
        "outbox_failed": outbox.get("failed", 0),
        "outbox_last_error": _outbox_waiting_because(session),
        "outbox_unconfirmed": count_unconfirmed(session),
        "outbox": outbox,
        "cases": _counts(session, Case.state),
        "sender_authentication": config.security.sender_authentication,
        "senders_checked": not config.security.senders_unchecked,
        "warnings": _warnings(config),
    }


UNCHECKED_SENDERS = (
    'senders are NOT authenticated ([security] sender_authentication = "none"): anyone can '
    "write any From address."
)


def _warnings(config: Config) -> list[str]:
    """What an operator must act on, in words; `--json` carries the same list."""
    warnings = list(operator_warnings(config))
    if config.security.senders_unchecked:
        warnings.append(UNCHECKED_SENDERS)
    return warnings


def _outbox_waiting_because(session: Session) -> str | None:
    """Why email is waiting: the answer of the latest failed try of a row still to send
    (the mail server refusing, say), or None."""
    return session.scalar(
        select(OutboxMessage.last_error)
        .where(OutboxMessage.status == "pending", OutboxMessage.last_error.is_not(None))
        .order_by(OutboxMessage.next_attempt_at.desc())
        .limit(1)
    )


def _when(value: Any) -> str:
    return as_utc(value).isoformat(sep=" ", timespec="seconds") if value else "never"


@click.command()
@with_app(json_flag=True)
def status(app: AppContext, json_output: bool) -> None:
    """The last poll of each mailbox, messages waiting or failed, the outbox, cases by state."""
    with app.db().transaction() as session:
        document = status_document(session, app.config)
    if json_output:
        emit_json(document)
        return
    rows = [
        [m["name"], _when(m["last_poll_at"]), _when(m["last_ok_at"]), (m["last_error"] or "")[:70]]
        for m in document["mailboxes"]
    ]
    for warning in document["warnings"]:
        click.echo(f"WARNING: {warning}")
    click.echo(table(rows, ["mailbox", "last poll", "last good poll", "last error"]))
    click.echo(
        f"\nmessages: {document['messages_pending']} waiting, "
        f"{document['messages_failed']} failed (for a caseworker)"
    )
    click.echo(
        f"outbox: {document['outbox_pending']} to send, {document['outbox_held']} held, "
        f"{document['outbox_failed']} failed"
    )
    if document["outbox_last_error"]:
        click.echo(f"outbox waiting because: {document['outbox_last_error'][:200]}")
    if document["outbox_unconfirmed"]:
        click.echo(
            f"outbox: {document['outbox_unconfirmed']} handed to the mail server as "
            "the service stopped, delivery unconfirmed (see `pcse outbox list`)"
        )
    cases = ", ".join(f"{state} {n}" for state, n in sorted(document["cases"].items()))
    click.echo(f"cases: {cases or 'none'}")


@click.command()
@with_app()
def run(app: AppContext) -> None:
    """The service: poll (or IMAP IDLE), process, send the outbox, remind and expire."""
    # Imported here: `pcse poll --once` and `pcse status` need neither the scheduler nor the
    # metrics server.
    from service.monitoring.run import serve_metrics
    from service.runner import Service, stop_on_signals

    require_sender_authentication(app.config)
    stop = threading.Event()
    # Catch SIGTERM from the start: a stop asked for while the service is still loading
    # ends it cleanly too.
    with stop_on_signals(stop):
        service = Service(app.db(), app.config, build_handler(app.config), stop=stop)
        with serve_metrics(app.config, app.db(), service):
            status = service.run(signals=False)
    sys.exit(status)
