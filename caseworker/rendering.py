"""Jinja2 with the NHS.UK frontend macros; autoescaping on for every template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, FileSystemLoader, PackageLoader
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from caseworker.caselinks import case_links
from caseworker.formitems import select_items
from caseworker.labels import (
    ACTION_HINTS,
    ACTION_PROMPTS,
    STATE_COLOURS,
    kind_label,
    state_label,
)
from caseworker.security import CSRF_FIELD, csrf_token
from caseworker.timeutil import when
from core.patterns import mask_tokens
from core.senderauth import Profile
from core.visible import visible

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _as_drawn(value: Any) -> Any:
    """Every value a page prints, without the characters that draw nothing or move what
    follows (core.visible): a sender's right-to-left override would show "\u202efdp.exe"
    as "exe.pdf", in a file's name, a subject or a case's fields alike."""
    if isinstance(value, Markup):
        return Markup(visible(str(value)))
    if isinstance(value, str):
        return visible(value)
    return value


def make_environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(TEMPLATES_DIR),
                PackageLoader("nhsuk_frontend_jinja"),
            ]
        ),
        # Every template, whatever its extension: nothing a sender wrote is ever markup.
        autoescape=True,
        # The NHS.UK macros read optional nested parameters (params.a.b) freely.
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_as_drawn,
    )
    env.filters["when"] = when
    env.filters["state_label"] = state_label
    env.filters["kind_label"] = kind_label
    env.filters["case_links"] = case_links
    env.filters["masked"] = mask_tokens  # approval codes shown as labels, never whole
    env.globals["select_items"] = select_items
    env.globals["STATE_COLOURS"] = STATE_COLOURS
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["ACTION_PROMPTS"] = ACTION_PROMPTS
    env.globals["ACTION_HINTS"] = ACTION_HINTS
    return env


def make_templates() -> Jinja2Templates:
    return Jinja2Templates(env=make_environment())


def flash(request: Request, text: str, *, kind: str = "success") -> None:
    """A message for the next page shown to this caseworker (after a redirect)."""
    request.session["flash"] = {"text": text, "kind": kind}


def _senders_unchecked(request: Request) -> bool:
    web = getattr(request.app.state, "web", None)
    return web is not None and web.env.sender_policy.profile == Profile.NONE


def _operator_warnings(request: Request) -> list[str]:
    web = getattr(request.app.state, "web", None)
    return web.operator_warnings() if web is not None else []


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    page = {
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request),
        "flash": request.session.pop("flash", None),
        "cspNonce": getattr(request.state, "csp_nonce", None),
        "assetPath": "/assets",
        "current_path": request.url.path,
        # Said on every page: with profile "none", anyone can write any From address.
        "senders_unchecked": _senders_unchecked(request),
        "operator_warnings": _operator_warnings(request),
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, page, status_code=status_code)
