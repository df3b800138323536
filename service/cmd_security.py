"""`pcse security check-message FILE.eml`: prove the sender-authentication set-up on real mail.

Save a message from the real inbox (as it arrives over IMAP, headers untouched), run this
with the production configuration, and read which header vouched for the sender. Exit
status 0 when the sender is authenticated, 1 when not: a script can check a sample.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from core.senderauth import SenderVerdict, verdict_for
from intake.mailparse import ParsedMail, parse_mail
from service.clitools import emit_json, with_app
from service.config import ConfigError
from service.context import AppContext

# A saved message is read whole; anything larger than this is not a single email.
MAX_FILE_BYTES = 64 * 1024 * 1024


def register(cli: click.Group) -> None:
    cli.add_command(security)


@click.group()
def security() -> None:
    """Check how senders are authenticated."""


@security.command("check-message")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@with_app(json_flag=True)
def check_message(app: AppContext, path: str, json_output: bool) -> None:
    """Which header vouched for the sender of a saved message, and the verdict."""
    file = Path(path)
    if file.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(
            f"{file} is larger than {MAX_FILE_BYTES // 1048576} MB; it is not a single saved email."
        )
    mail = parse_mail(file.read_bytes())
    policy = app.config.security.policy()
    verdict = verdict_for(policy, mail)
    document = report(mail, verdict, policy.describe())
    if json_output:
        emit_json(document)
    else:
        _print(document)
    sys.exit(0 if verdict.authenticated else 1)


def report(mail: ParsedMail, verdict: SenderVerdict, profile: str) -> dict[str, Any]:
    identity = mail.sender_identity
    return {
        "from_address": identity.address,
        "from_name": identity.display_name or None,
        "from_problem": identity.problem,
        "profile": profile,
        "status": str(verdict.status),
        "authenticated": verdict.authenticated,
        "vouched_by": verdict.vouched_by,
        "detail": verdict.detail,
        "authentication_results": mail.authentication_results,
        "auth_as": mail.auth_as,
    }


def _print(document: dict[str, Any]) -> None:
    click.echo(
        f"From:        {document['from_address'] or '(no single address)'}"
        + (f"  (display name: {document['from_name']})" if document["from_name"] else "")
    )
    if document["from_problem"]:
        click.echo(f"From problem: {document['from_problem']}")
    click.echo(f"Profile:     {document['profile']}")
    click.echo(f"Verdict:     {document['status']}")
    click.echo(f"Vouched by:  {document['vouched_by'] or 'nothing'}")
    click.echo(f"Detail:      {document['detail']}")
    click.echo(
        f"Headers:     {len(document['authentication_results'])} Authentication-Results, "
        f"{len(document['auth_as'])} X-MS-Exchange-Organization-AuthAs"
    )
