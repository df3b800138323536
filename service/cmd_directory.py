"""`pcse directory …`, `pcse approvers import` and `pcse ael import`."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from core.catalogue import (
    ADMIN_CAPPED_SERVICES,
    AEL_GP_PAYMENTS_GENERAL,
    CATALOGUE,
    SIGNER_CAPACITIES,
    service_of,
)
from service.clitools import emit_json, with_app
from service.context import AppContext
from workflow.directory import ael_contacts_for, get_org, main_contact, org_view, signers_for
from workflow.imports import (
    ImportReport,
    import_ael,
    import_ods,
    import_organisations,
    import_signers,
    import_users,
)


def register(cli: click.Group) -> None:
    cli.add_command(directory)
    cli.add_command(approvers)
    cli.add_command(ael)


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _by_option(func: Callable) -> Callable:
    return click.option(
        "--by",
        "actor",
        default=_default_actor,
        show_default="cli:<your login>",
        help="Who is making the change; recorded in the directory's history.",
    )(func)


def _run_import(
    app: AppContext,
    importer: Callable[..., ImportReport],
    path: str,
    actor: str,
    json_output: bool,
    **options: Any,
) -> None:
    """Run one import in one transaction; bad rows to stderr; exit 1 if any row failed."""
    with app.db().transaction() as session:
        report = importer(session, path, actor=actor, **options)
    name = Path(path).name
    for error in report.errors:
        click.echo(f"{name} {error}.", err=True)
    if json_output:
        emit_json(report.as_dict())
    else:
        click.echo(report.summary())
    if report.errors:
        raise SystemExit(1)


# --------------------------------------------------------------------------- directory


@click.group()
def directory() -> None:
    """The user directory: organisations, people and their roles."""


@directory.command("import-orgs")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False))
@_by_option
@with_app(json_flag=True)
def import_orgs_cmd(app: AppContext, csv_path: str, actor: str, json_output: bool) -> None:
    """Add or update organisations (header code,name,type,icb_code)."""
    _run_import(app, import_organisations, csv_path, actor, json_output)


@directory.command("import-users")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False))
@_by_option
@with_app(json_flag=True)
def import_users_cmd(app: AppContext, csv_path: str, actor: str, json_output: bool) -> None:
    """Load existing role holders (header org_code,name,email,role) under PCSE's rules."""
    _run_import(app, import_users, csv_path, actor, json_output)


@directory.command("import-ods")
@click.argument("file_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--include-non-gp",
    is_flag=True,
    help="Also load prescribing cost centres that are not GP practices.",
)
@_by_option
@with_app(json_flag=True)
def import_ods_cmd(
    app: AppContext, file_path: str, include_non_gp: bool, actor: str, json_output: bool
) -> None:
    """Load or refresh GP practices from NHS ODS's epraccur.csv."""
    _run_import(app, import_ods, file_path, actor, json_output, include_non_gp=include_non_gp)


@directory.command("show")
@click.argument("code")
@with_app(json_flag=True)
def show_cmd(app: AppContext, code: str, json_output: bool) -> None:
    """An organisation, its people and their roles, its signers and its ICB's AEL contacts."""
    with app.db().transaction() as session:
        view = org_view(session, code)
        text = None if json_output else describe(session, view)
    if json_output:
        emit_json(view)
    else:
        click.echo(text)


def describe(session: Session, view: dict[str, Any]) -> str:
    """The organisation as a person reads it: roles per service, then its approvers."""
    org = get_org(session, view["code"])
    assert org is not None  # the view was made from it
    lines = [
        f"{view['code']}  {view['name']}",
        f"type: {view['type']}   ICB: {view['icb_code'] or '-'}   status: {org.status}",
        f"last NHS ODS refresh: {(view['ods_refreshed_at'] or 'never')[:10]}",
    ]
    contact = main_contact(session, view["code"])
    lines.append(f"Main Contact: {_who(contact.name, contact.email) if contact else 'none'}")
    lines.append("")
    lines.extend(_roles_by_service(view["users"]))
    lines.extend(_people(view["users"]))
    lines.extend(_signers(session, view["code"]))
    lines.extend(_ael(session, view["icb_code"]))
    return "\n".join(lines).rstrip()


def _who(name: str, email: str) -> str:
    return f"{name} <{email}>"


def _roles_by_service(users: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for service, info in CATALOGUE.items():
        holders = [
            (role, user) for user in users for role in user["roles"] if service_of(role) is service
        ]
        if not holders:
            continue
        admins = sum(1 for role, _ in holders if role == info.admin_role)
        capped = service in ADMIN_CAPPED_SERVICES
        limit = f" ({admins} of {info.max_admins} admins)" if capped else ""
        lines.append(f"{info.title}{limit}:")
        for role in (info.admin_role, *info.assignable_roles):
            for held, user in holders:
                if held == role:
                    lines.append(f"  {role}: {_who(user['name'], user['email'])}")
        lines.append("")
    if not lines:
        lines = ["No one holds a role here.", ""]
    return lines


def _people(users: list[dict[str, Any]]) -> list[str]:
    if not users:
        return []
    lines = ["People:"]
    for user in users:
        state = "" if user["active"] else "  (deactivated)"
        roles = ", ".join(user["roles"]) or "no current role"
        lines.append(f"  {_who(user['name'], user['email'])}: {roles}{state}")
    return [*lines, ""]


def _signers(session: Session, code: str) -> list[str]:
    signers = signers_for(session, code)
    if not signers:
        return ["Signers: none recorded", ""]
    lines = ["Signers:"]
    for signer in signers:
        lines.append(
            f"  {SIGNER_CAPACITIES.get(signer.capacity, signer.capacity)}: "
            f"{_who(signer.name, signer.email)}"
        )
    return [*lines, ""]


def _ael(session: Session, icb_code: str | None) -> list[str]:
    if not icb_code:
        return []
    contacts = ael_contacts_for(session, icb_code)
    heading = f"AEL contacts of ICB {icb_code} ({AEL_GP_PAYMENTS_GENERAL})"
    if not contacts:
        return [f"{heading}: none recorded"]
    return [f"{heading}:", *(f"  {_who(c.name, c.email)}" for c in contacts)]


# --------------------------------------------------------------------------- approvers, AEL


@click.group()
def approvers() -> None:
    """Practice signers: GP Partners, Caldicott Guardians, Company Directors."""


_replace_option = click.option(
    "--replace",
    is_flag=True,
    help="The file is the whole list for each organisation or ICB it names: entries of "
    "those missing from it are removed (made inactive), so they can no longer approve. "
    "Nothing is removed if any row fails.",
)


@approvers.command("import")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False))
@_by_option
@_replace_option
@with_app(json_flag=True)
def approvers_import_cmd(
    app: AppContext, csv_path: str, actor: str, replace: bool, json_output: bool
) -> None:
    """Add or update practice signers (header org_code,name,email,capacity)."""
    _run_import(app, import_signers, csv_path, actor, json_output, replace=replace)


@click.group()
def ael() -> None:
    """NHS England's Authorised Email List of ICB contacts."""


@ael.command("import")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False))
@_by_option
@_replace_option
@with_app(json_flag=True)
def ael_import_cmd(
    app: AppContext, csv_path: str, actor: str, replace: bool, json_output: bool
) -> None:
    """Add or update AEL contacts (header icb_code,name,email,ael_role)."""
    _run_import(app, import_ael, csv_path, actor, json_output, replace=replace)
