"""`pcse serve` (the caseworker web pages) and `pcse caseworker add|list|set-password|activate`."""

from __future__ import annotations

import sys

import click

from caseworker.accounts import (
    AccountError,
    activate_caseworker,
    add_caseworker,
    check_new_password,
    find_caseworker,
    hash_password,
    list_caseworkers,
    set_password,
)
from service.clitools import emit_json, table, with_app
from service.context import AppContext
from service.web import app_from_config


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(caseworker)


@click.command()
@click.option("--host", help="Address to listen on (default: [web] host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port to listen on (default: [web] port)."
)
@click.option(
    "--uds",
    type=click.Path(dir_okay=False),
    help="Listen on this Unix socket instead of a port (default: [web] unix_socket).",
)
@click.option(
    "--certfile",
    type=click.Path(exists=True, dir_okay=False),
    help="TLS certificate (PEM); with --keyfile, serve HTTPS and mark cookies Secure.",
)
@click.option(
    "--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM)."
)
@with_app()
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    uds: str | None,
    certfile: str | None,
    keyfile: str | None,
) -> None:
    """Serve the caseworker web pages."""
    import uvicorn

    if bool(certfile) != bool(keyfile):
        raise click.UsageError("Give both --certfile and --keyfile, or neither.")
    unix_socket = uds or app.config.web.unix_socket or None
    if unix_socket and (certfile or host or port):
        raise click.UsageError(
            "A Unix socket is served to the reverse proxy in plain HTTP: give --host, "
            "--port and --certfile without it."
        )
    from caseworker.serving import server_config

    web = app_from_config(app.config, app.db())
    uvicorn.Server(
        server_config(
            web,
            host=host or app.config.web.host,
            port=port or app.config.web.port,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            trusted_proxies=app.config.web.trusted_proxies,
            unix_socket=unix_socket,
        )
    ).run()


@click.group()
def caseworker() -> None:
    """Caseworker accounts for the web pages."""


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@caseworker.command("add")
@click.argument("email")
@click.option("--name", required=True, help="The caseworker's name.")
@click.option(
    "--supervisor", is_flag=True, help="Can also reopen expired cases and manage accounts."
)
@with_app()
def caseworker_add(app: AppContext, email: str, name: str, supervisor: bool) -> None:
    """Add an account; the password is read from a prompt, or from stdin when piped."""
    password = _read_password()
    with app.db().transaction() as session:
        account = add_caseworker(
            session, email=email, name=name, password=password, supervisor=supervisor
        )
        summary = f"Added {'supervisor' if supervisor else 'caseworker'} {account.email}."
    click.echo(summary)


@caseworker.command("set-password")
@click.argument("email")
@click.option(
    "--temporary", is_flag=True, help="The account must choose a new password at its next sign-in."
)
@with_app()
def caseworker_set_password(app: AppContext, email: str, temporary: bool) -> None:
    """Set an account's password, read from a prompt, or from stdin when piped; ends its
    sessions and clears a lock-out."""
    password = _read_password()
    check_new_password(password)
    password_hash = hash_password(password)
    with app.db().transaction() as session:
        account = find_caseworker(session, email)
        if account is None:
            raise AccountError(f"There is no account for {email.strip().lower()}.")
        set_password(session, account.id, password_hash, must_change=temporary)
        summary = f"Set the password for {account.email}; its sessions have ended."
        if not account.active:
            summary += f" The account is deactivated: pcse caseworker activate {account.email}"
    click.echo(summary)


@caseworker.command("activate")
@click.argument("email")
@with_app()
def caseworker_activate(app: AppContext, email: str) -> None:
    """Reactivate a deactivated account."""
    with app.db().transaction() as session:
        summary = f"Reactivated {activate_caseworker(session, email).email}."
    click.echo(summary)


@caseworker.command("list")
@with_app(json_flag=True)
def caseworker_list(app: AppContext, json_output: bool) -> None:
    """Every account, active ones first."""
    with app.db().transaction() as session:
        accounts = [
            {"email": a.email, "name": a.name, "supervisor": a.is_supervisor, "active": a.active}
            for a in list_caseworkers(session)
        ]
    if json_output:
        emit_json(accounts)
        return
    rows = [
        [
            str(a["email"]),
            str(a["name"]),
            "supervisor" if a["supervisor"] else "caseworker",
            "active" if a["active"] else "deactivated",
        ]
        for a in accounts
    ]
    click.echo(table(rows, ["email", "name", "role", "status"]) if rows else "No accounts.")
