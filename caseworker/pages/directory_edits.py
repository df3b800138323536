"""Editing the directory from its pages: grant or restore a role at an organisation; add,
change or remove a signer or (at an ICB) an AEL contact; reactivate a person. Each goes
through workflow.directory or workflow.directory_edits, which check PCSE's rules and record
who and why; a refusal is shown in the rules' own words and changes nothing.

Whatever makes someone an approver or a role holder (a grant, a restored role, a new signer
or AEL contact, a changed address of one) needs a supervisor: else one caseworker could
make their own mailbox an approver and get round the two-person rule on approvals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.ids import is_row_id
from caseworker.pages.directory import _show_org, _show_person, org_href, person_href
from caseworker.pages.forms import Problems, refusal, text
from caseworker.rendering import flash
from caseworker.security import form_post
from caseworker.webcontext import in_transaction
from core.errors import PcseError
from workflow import directory, directory_edits
from workflow.rules import RuleViolation

Outcome = tuple[str, str]  # the message shown, and its kind ("success" or "warning")

SUPERVISOR_EDIT = (
    "Only a supervisor can grant or restore a role, add a signer or AEL contact, or change "
    "the address of one: ask a supervisor to make this change."
)


def _always(_posted: dict[str, str]) -> bool:
    return True


def _never(_posted: dict[str, str]) -> bool:
    return False


def _new_address(posted: dict[str, str]) -> bool:
    """A change of address makes a new address an approver; a name or capacity does not."""
    return bool(posted.get("new_email"))


@dataclass(frozen=True)
class Edit:
    """One form on the organisation page: its posted fields, each with the id of its
    input and the error when it is left empty (None: optional), and what it does."""

    prefix: str
    fields: dict[str, tuple[str, str | None]]
    run: Callable[[Session, str, dict[str, str], str], Outcome]
    opens: tuple[str, str] | None = None  # the values key that reopens its <details>
    anchor: str = ""
    limits: dict[str, int] = field(default_factory=dict)
    # Given the posted values: does this edit need a supervisor?
    supervisor: Callable[[dict[str, str]], bool] = _never


def _outcome(done: str, warnings: list[str]) -> Outcome:
    if warnings:
        return done + " Warning: " + " ".join(warnings), "warning"
    return done, "success"


def _grant(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    change = directory.grant_role(
        session,
        org_code=code,
        email=v["email"],
        name=v["name"],
        role=v["role"],
        actor=by,
        reason=v["reason"],
    )
    a = change.assignments[0]
    return _outcome(f"Granted {a.role} at {code} to {a.person.name} ({a.person.email}).", [])


def _restore(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    if not is_row_id(v["assignment"]):
        raise RuleViolation("not_held", "There is no ended role with that number to restore.")
    change = directory_edits.restore_role(
        session, assignment_id=int(v["assignment"]), actor=by, reason=v["reason"]
    )
    a = change.assignments[0]
    if a.organisation.code != code:
        raise RuleViolation("not_held", f"That role was not held at {code}.")
    return _outcome(f"Restored {a.role} at {code} to {a.person.name} ({a.person.email}).", [])


def _add_signer(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    s = directory_edits.add_signer(
        session,
        org_code=code,
        name=v["name"],
        email=v["email"],
        capacity=v["capacity"],
        actor=by,
        reason=v["reason"],
    )
    return _outcome(f"Added {s.name} ({s.email}) as a signer of {code}.", [])


def _change_signer(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    s = directory_edits.change_signer(
        session,
        org_code=code,
        email=v["signer"],
        name=v["name"],
        new_email=v["new_email"],
        capacity=v["capacity"],
        actor=by,
        reason=v["reason"],
    )
    return _outcome(f"Changed the signer {s.name} ({s.email}) of {code}.", [])


def _remove_signer(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    s = directory_edits.remove_signer(
        session, org_code=code, email=v["signer"], actor=by, reason=v["reason"]
    )
    return _outcome(f"Removed {s.name} ({s.email}) as a signer of {code}.", [])


def _contact(value: str) -> tuple[str, str]:
    email, _, role = value.partition("|")
    return email, role


def _add_ael(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    c = directory_edits.add_ael_contact(
        session,
        icb_code=code,
        name=v["name"],
        email=v["email"],
        ael_role=v["ael_role"],
        requested_by=v["requested_by"],
        actor=by,
        reason=v["reason"],
    )
    return _outcome(f"Added {c.name} ({c.email}) to the AEL for {code} ({c.ael_role}).", [])


def _change_ael(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    email, role = _contact(v["contact"])
    c = directory_edits.change_ael_contact(
        session,
        icb_code=code,
        email=email,
        ael_role=role,
        name=v["name"],
        new_email=v["new_email"],
        requested_by=v["requested_by"],
        actor=by,
        reason=v["reason"],
    )
    return _outcome(f"Changed the AEL contact {c.name} ({c.email}) of {code}.", [])


def _remove_ael(session: Session, code: str, v: dict[str, str], by: str) -> Outcome:
    email, role = _contact(v["contact"])
    c = directory_edits.remove_ael_contact(
        session,
        icb_code=code,
        email=email,
        ael_role=role,
        requested_by=v["requested_by"],
        actor=by,
        reason=v["reason"],
    )
    return _outcome(f"Removed {c.name} ({c.email}) from the AEL for {code}.", [])


def _reason(what: str) -> tuple[str, str]:
    return ("reason", f"Enter why {what}")


EDITS: dict[str, Edit] = {
    "grant": Edit(
        "grant",
        {
            "role": ("role", "Choose the role to grant"),
            "name": ("name", None),
            "email": ("email", "Enter the email address of the person"),
            "reason": _reason("the role is granted"),
        },
        _grant,
        anchor="grant",
        supervisor=_always,
    ),
    "restore": Edit(
        "restore",
        {
            "assignment": ("assignment", "Choose the role to restore"),
            "reason": _reason("the role is restored"),
        },
        _restore,
        anchor="restore",
        supervisor=_always,
    ),
    "signers/add": Edit(
        "signer-add",
        {
            "name": ("name", "Enter the signer's full name"),
            "email": ("email", "Enter the signer's email address"),
            "capacity": ("capacity", "Choose the signer's capacity"),
            "reason": _reason("the signer is added"),
        },
        _add_signer,
        opens=("signer-form", "add"),
        anchor="signers",
        supervisor=_always,
    ),
    "signers/change": Edit(
        "signer-change",
        {
            "signer": ("signer", "Choose the signer to change"),
            "name": ("name", None),
            "new_email": ("email", None),
            "capacity": ("capacity", None),
            "reason": _reason("the signer is changed"),
        },
        _change_signer,
        opens=("signer-form", "change"),
        anchor="signers",
        supervisor=_new_address,
    ),
    "signers/remove": Edit(
        "signer-remove",
        {
            "signer": ("signer", "Choose the signer to remove"),
            "reason": _reason("the signer is removed"),
        },
        _remove_signer,
        opens=("signer-form", "remove"),
        anchor="signers",
    ),
    "ael/add": Edit(
        "ael-add",
        {
            "name": ("name", "Enter the contact's full name"),
            "email": ("email", "Enter the contact's email address"),
            "ael_role": ("role", "Choose the AEL role"),
            "requested_by": ("requested-by", None),
            "reason": _reason("the contact is added"),
        },
        _add_ael,
        opens=("ael-form", "add"),
        anchor="ael",
        supervisor=_always,
    ),
    "ael/change": Edit(
        "ael-change",
        {
            "contact": ("contact", "Choose the contact to change"),
            "name": ("name", None),
            "new_email": ("email", None),
            "requested_by": ("requested-by", None),
            "reason": _reason("the contact is changed"),
        },
        _change_ael,
        opens=("ael-form", "change"),
        anchor="ael",
        supervisor=_new_address,
    ),
    "ael/remove": Edit(
        "ael-remove",
        {
            "contact": ("contact", "Choose the contact to remove"),
            "requested_by": ("requested-by", None),
            "reason": _reason("the contact is removed"),
        },
        _remove_ael,
        opens=("ael-form", "remove"),
        anchor="ael",
    ),
}


def _handler(edit: Edit) -> Callable:
    @form_post
    async def handle(request: Request) -> Response:
        code = request.path_params["code"]
        posted = {name: text(request, name, limit=2000) for name in edit.fields}
        values = {f"{edit.prefix}-{i}": posted[name] for name, (i, _) in edit.fields.items()}
        if edit.opens:
            values[edit.opens[0]] = edit.opens[1]
        user = current_user(request)
        if edit.supervisor(posted) and not user.is_supervisor:
            errors = refusal(SUPERVISOR_EDIT, edit.anchor)
            return await _show_org(request, errors=errors, values=values, status_code=403)
        problems = Problems()
        for name, (i, missing) in edit.fields.items():
            if missing and not posted[name]:
                problems.add(f"{edit.prefix}-{i}", missing)
        if problems:
            return await _show_org(request, problems=problems, values=values, status_code=400)
        try:
            message, kind = await in_transaction(request, edit.run, code, posted, user.email)
        except PcseError as refused:
            return await _show_org(
                request, errors=refusal(str(refused), edit.anchor), values=values, status_code=409
            )
        flash(request, message, kind=kind)
        return RedirectResponse(org_href(code), status_code=303)

    handle.__name__ = f"directory_{edit.prefix.replace('-', '_')}"
    return handle


def _reactivate(session: Session, email: str, by: str, reason: str) -> Outcome:
    person = directory.reactivate_person(session, email=email, actor=by, reason=reason)
    return f"Reactivated {person.email}; grant or restore their roles as needed.", "success"


@form_post
async def reactivate(request: Request) -> Response:
    email = request.path_params["email"]
    reason = text(request, "reason", limit=2000)
    values = {"reactivate-reason": reason}
    if not reason:
        problems = Problems()
        problems.add("reactivate-reason", "Enter why the person is reactivated")
        return await _show_person(request, problems=problems, values=values, status_code=400)
    try:
        message, kind = await in_transaction(
            request, _reactivate, email, current_user(request).email, reason
        )
    except PcseError as refused:
        return await _show_person(
            request, errors=refusal(str(refused), "reactivate"), values=values, status_code=409
        )
    flash(request, message, kind=kind)
    return RedirectResponse(person_href(email), status_code=303)


routes = [
    *(
        Route(f"/directory/organisations/{{code}}/{path}", _handler(edit), methods=["POST"])
        for path, edit in EDITS.items()
    ),
    Route("/directory/people/{email}/reactivate", reactivate, methods=["POST"]),
]
