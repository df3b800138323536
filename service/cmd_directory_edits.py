"""Editing the directory from the command line, each change under PCSE's rules and
recorded with who (`--by`) and why (`--reason`):

    pcse directory grant CODE EMAIL ROLE [--name NAME]
    pcse directory restore CODE EMAIL ROLE
    pcse directory end-role CODE EMAIL ROLE
    pcse directory deactivate EMAIL | reactivate EMAIL
    pcse directory signer add|change|remove CODE EMAIL …
    pcse directory ael add|change|remove ICB EMAIL …

A refusal is one sentence on stderr, the rule's own words, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.clitools import emit_json, with_app
from service.cmd_directory import _by_option, directory
from service.context import AppContext
from workflow import directory as entries
from workflow import directory_edits
from workflow.models import Organisation, Person, RoleAssignment
from workflow.rules import RuleViolation, require_email, require_role

REASON = click.option("--reason", required=True, help="Why, for the directory's history.")


def register(cli: click.Group) -> None:
    """The commands join the `directory` group, which service.cmd_directory registers."""
    for command in (grant, restore, end_role, deactivate, reactivate, signer, ael):
        directory.add_command(command)


def _done(app: AppContext, work: Callable[[Session], dict[str, Any]], json_output: bool) -> None:
    """Run one edit in one transaction and print what it did."""
    with app.db().transaction() as session:
        result = work(session)
    if json_output:
        emit_json(result)
        return
    click.echo(result["done"])
    for warning in result.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)


def _role_result(done: str, change: entries.Change) -> dict[str, Any]:
    return {
        "done": done,
        "assignments": [
            {
                "organisation": a.organisation.code,
                "email": a.person.email,
                "role": a.role,
                "ended": a.ended_at is not None,
            }
            for a in change.assignments
        ],
        "warnings": change.warnings,
    }


# --------------------------------------------------------------------------- roles


@click.command("grant")
@click.argument("code")
@click.argument("email")
@click.argument("role")
@click.option("--name", default="", help="The person's full name (for someone new).")
@REASON
@_by_option
@with_app(json_flag=True)
def grant(
    app: AppContext,
    code: str,
    email: str,
    role: str,
    name: str,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Give EMAIL the ROLE at organisation CODE (the rules R1 to R4 apply)."""

    def work(session: Session) -> dict[str, Any]:
        change = entries.grant_role(
            session, org_code=code, email=email, name=name, role=role, actor=actor, reason=reason
        )
        a = change.assignments[0]
        return _role_result(
            f"Granted {a.role} at {a.organisation.code} to {a.person.email}.", change
        )

    _done(app, work, json_output)


def _last_ended(session: Session, code: str, email: str, role: str) -> int:
    canonical, address = require_role(role), require_email(email)
    found = session.scalars(
        select(RoleAssignment.id)
        .join(Person, RoleAssignment.person_id == Person.id)
        .join(Organisation, RoleAssignment.organisation_id == Organisation.id)
        .where(
            Organisation.code == code.strip().upper(),
            Person.email == address,
            RoleAssignment.role == canonical,
            RoleAssignment.ended_at.is_not(None),
        )
        .order_by(RoleAssignment.ended_at.desc(), RoleAssignment.id.desc())
    ).first()
    if found is None:
        raise RuleViolation("not_held", f"{address} has never held {canonical} at {code}.")
    return found


@click.command("restore")
@click.argument("code")
@click.argument("email")
@click.argument("role")
@REASON
@_by_option
@with_app(json_flag=True)
def restore(
    app: AppContext, code: str, email: str, role: str, reason: str, actor: str, json_output: bool
) -> None:
    """Grant again a ROLE that EMAIL held at CODE and that was ended."""

    def work(session: Session) -> dict[str, Any]:
        change = directory_edits.restore_role(
            session,
            assignment_id=_last_ended(session, code, email, role),
            actor=actor,
            reason=reason,
        )
        a = change.assignments[0]
        return _role_result(
            f"Restored {a.role} at {a.organisation.code} to {a.person.email}.", change
        )

    _done(app, work, json_output)


@click.command("end-role")
@click.argument("code")
@click.argument("email")
@click.argument("role")
@REASON
@_by_option
@with_app(json_flag=True)
def end_role(
    app: AppContext, code: str, email: str, role: str, reason: str, actor: str, json_output: bool
) -> None:
    """End EMAIL's ROLE at CODE; warns when the last admin of a service goes (R7)."""

    def work(session: Session) -> dict[str, Any]:
        change = entries.revoke_role(
            session, org_code=code, email=email, role=role, actor=actor, reason=reason
        )
        a = change.assignments[0]
        return _role_result(f"Ended {a.person.email}'s {a.role} at {a.organisation.code}.", change)

    _done(app, work, json_output)


@click.command("deactivate")
@click.argument("email")
@REASON
@_by_option
@with_app(json_flag=True)
def deactivate(app: AppContext, email: str, reason: str, actor: str, json_output: bool) -> None:
    """End every role EMAIL holds and keep the history (R8)."""

    def work(session: Session) -> dict[str, Any]:
        change = entries.deactivate_person(session, email=email, actor=actor, reason=reason)
        ended = len(change.assignments)
        return _role_result(f"Deactivated {email}; {ended} role(s) ended.", change)

    _done(app, work, json_output)


@click.command("reactivate")
@click.argument("email")
@REASON
@_by_option
@with_app(json_flag=True)
def reactivate(app: AppContext, email: str, reason: str, actor: str, json_output: bool) -> None:
    """Allow a deactivated person to be granted roles again."""

    def work(session: Session) -> dict[str, Any]:
        person = entries.reactivate_person(session, email=email, actor=actor, reason=reason)
        return {"done": f"Reactivated {person.email}.", "email": person.email}

    _done(app, work, json_output)


# --------------------------------------------------------------------------- signers


@click.group("signer")
def signer() -> None:
    """A practice's recorded signers (GP Partner, Caldicott Guardian, Company Director)."""


def _signer_result(done: str, s: Any) -> dict[str, Any]:
    return {
        "done": done,
        "organisation": s.organisation.code,
        "name": s.name,
        "email": s.email,
        "capacity": s.capacity,
        "active": s.active,
    }


@signer.command("add")
@click.argument("code")
@click.argument("email")
@click.option("--name", required=True, help="The signer's full name.")
@click.option(
    "--capacity", required=True, help="gp_partner, caldicott_guardian or company_director."
)
@REASON
@_by_option
@with_app(json_flag=True)
def signer_add(
    app: AppContext,
    code: str,
    email: str,
    name: str,
    capacity: str,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Record EMAIL as a signer of organisation CODE."""

    def work(session: Session) -> dict[str, Any]:
        s = directory_edits.add_signer(
            session,
            org_code=code,
            name=name,
            email=email,
            capacity=capacity,
            actor=actor,
            reason=reason,
        )
        return _signer_result(f"Added {s.email} as a signer of {s.organisation.code}.", s)

    _done(app, work, json_output)


@signer.command("change")
@click.argument("code")
@click.argument("email")
@click.option("--name", help="A new full name.")
@click.option("--new-email", help="A new email address.")
@click.option("--capacity", help="A new capacity.")
@REASON
@_by_option
@with_app(json_flag=True)
def signer_change(
    app: AppContext,
    code: str,
    email: str,
    name: str | None,
    new_email: str | None,
    capacity: str | None,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Change the name, address or capacity of a signer of CODE."""

    def work(session: Session) -> dict[str, Any]:
        s = directory_edits.change_signer(
            session,
            org_code=code,
            email=email,
            name=name,
            new_email=new_email,
            capacity=capacity,
            actor=actor,
            reason=reason,
        )
        return _signer_result(f"Changed the signer {s.email} of {s.organisation.code}.", s)

    _done(app, work, json_output)


@signer.command("remove")
@click.argument("code")
@click.argument("email")
@REASON
@_by_option
@with_app(json_flag=True)
def signer_remove(
    app: AppContext, code: str, email: str, reason: str, actor: str, json_output: bool
) -> None:
    """Stop EMAIL approving for CODE (the entry's history stays)."""

    def work(session: Session) -> dict[str, Any]:
        s = directory_edits.remove_signer(
            session, org_code=code, email=email, actor=actor, reason=reason
        )
        return _signer_result(f"Removed {s.email} as a signer of {s.organisation.code}.", s)

    _done(app, work, json_output)


# --------------------------------------------------------------------------- AEL


@click.group("ael")
def ael() -> None:
    """An ICB's contacts on the Authorised Email List."""


AEL_ROLE = click.option("--ael-role", help="The AEL role (default: GP Payments – General).")
REQUESTED_BY = click.option(
    "--requested-by",
    help="The AEL contact who asked for the change; must be one for the same role and ICB. "
    "Needed for a new address, unless the ICB has never had a contact for the role.",
)


def _ael_result(done: str, c: Any) -> dict[str, Any]:
    return {
        "done": done,
        "icb_code": c.icb_code,
        "name": c.name,
        "email": c.email,
        "ael_role": c.ael_role,
        "active": c.active,
    }


@ael.command("add")
@click.argument("icb")
@click.argument("email")
@click.option("--name", required=True, help="The contact's full name.")
@AEL_ROLE
@REQUESTED_BY
@REASON
@_by_option
@with_app(json_flag=True)
def ael_add(
    app: AppContext,
    icb: str,
    email: str,
    name: str,
    ael_role: str | None,
    requested_by: str | None,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Record EMAIL as an AEL contact of ICB."""

    def work(session: Session) -> dict[str, Any]:
        c = directory_edits.add_ael_contact(
            session,
            icb_code=icb,
            name=name,
            email=email,
            ael_role=ael_role,
            requested_by=requested_by,
            actor=actor,
            reason=reason,
        )
        return _ael_result(f"Added {c.email} to the AEL for {c.icb_code} ({c.ael_role}).", c)

    _done(app, work, json_output)


@ael.command("change")
@click.argument("icb")
@click.argument("email")
@click.option("--name", help="A new full name.")
@click.option("--new-email", help="A new email address.")
@AEL_ROLE
@REQUESTED_BY
@REASON
@_by_option
@with_app(json_flag=True)
def ael_change(
    app: AppContext,
    icb: str,
    email: str,
    name: str | None,
    new_email: str | None,
    ael_role: str | None,
    requested_by: str | None,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Change the name or address of an AEL contact of ICB."""

    def work(session: Session) -> dict[str, Any]:
        c = directory_edits.change_ael_contact(
            session,
            icb_code=icb,
            email=email,
            name=name,
            new_email=new_email,
            ael_role=ael_role,
            requested_by=requested_by,
            actor=actor,
            reason=reason,
        )
        return _ael_result(f"Changed the AEL contact {c.email} of {c.icb_code}.", c)

    _done(app, work, json_output)


@ael.command("remove")
@click.argument("icb")
@click.argument("email")
@AEL_ROLE
@REQUESTED_BY
@REASON
@_by_option
@with_app(json_flag=True)
def ael_remove(
    app: AppContext,
    icb: str,
    email: str,
    ael_role: str | None,
    requested_by: str | None,
    reason: str,
    actor: str,
    json_output: bool,
) -> None:
    """Stop EMAIL approving for the ICB's organisations (the entry's history stays)."""

    def work(session: Session) -> dict[str, Any]:
        c = directory_edits.remove_ael_contact(
            session,
            icb_code=icb,
            email=email,
            ael_role=ael_role,
            requested_by=requested_by,
            actor=actor,
            reason=reason,
        )
        return _ael_result(f"Removed {c.email} from the AEL for {c.icb_code}.", c)

    _done(app, work, json_output)
