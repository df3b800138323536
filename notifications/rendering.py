"""Render a purpose's three templates (subject, text, HTML) with Jinja2.

Templates are looked up first in the configured folder ([notifications] templates_dir),
then among the shipped files, so an operator can override any one file, the base
layouts included. Every variable must be defined (StrictUndefined): a template that
names something the caller did not pass fails loudly instead of sending a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from core.catalogue import CATALOGUE, Service, role_description
from core.errors import PcseError
from core.timeutil import day_in_words
from notifications.headers import one_line
from notifications.purposes import PURPOSES, TEMPLATE_SUFFIXES

SHIPPED_TEMPLATES = Path(__file__).parent / "templates"

# Public facts about PCSE used in the wording; one place to change them.
PCSE_WEBSITE = "https://pcse.england.nhs.uk"
PCSE_ONLINE = "PCSE Online"


class TemplatesFolderMissing(PcseError):
    def __init__(self, folder: str) -> None:
        super().__init__(
            f"The templates folder {folder} named in [notifications] templates_dir does not exist."
        )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def admin_role_for(service_title: str) -> str:
    """The admin role of the service with this title, e.g. for 'ask your ... admins'."""
    for info in CATALOGUE.values():
        if info.title == service_title:
            return info.admin_role
    return "user administrator"


def admin_limit_for(role: str) -> int | None:
    """How many holders of this admin role an organisation may have; None: no limit."""
    for info in CATALOGUE.values():
        if info.admin_role == role:
            return info.max_admins
    return None


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def words(number: int) -> str:
    """Small numbers in words, as PCSE writes them ("at most four")."""
    return _WORDS[number] if 0 <= number < len(_WORDS) else str(number)


def long_date(value: object) -> str:
    """An ISO date (or date/datetime) as people write it: "6 March 2026"; else unchanged."""
    if isinstance(value, datetime | date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError:
            return str(value)
    return day_in_words(day)


def _days(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class SiteSettings(Protocol):
    """What every template is told of the service (workflow.env.WorkflowEnv has it)."""

    @property
    def from_address(self) -> str: ...
    @property
    def reminder_after_days(self) -> float: ...
    @property
    def expire_after_days(self) -> float: ...


@dataclass(frozen=True)
class Site:
    """The built-in defaults, for samples and template checks."""

    from_address: str = "pcse.portalenquiries@nhs.net"
    reminder_after_days: float = 3
    expire_after_days: float = 10


def site_context(env: SiteSettings) -> dict[str, Any]:
    """The `pcse` variable: the service's own details, the same in every message."""
    return {
        "inbox_address": env.from_address,
        "website": PCSE_WEBSITE,
        "online": PCSE_ONLINE,
        "reminder_after_days": _days(env.reminder_after_days),
        "expire_after_days": _days(env.expire_after_days),
        "days_left_after_reminder": _days(max(env.expire_after_days - env.reminder_after_days, 1)),
    }


def _globals() -> dict[str, Any]:
    return {
        "admin_roles": {str(service): info.admin_role for service, info in CATALOGUE.items()},
        "main_contact_role": CATALOGUE[Service.MAIN_CONTACT].admin_role,
        "admin_role_for": admin_role_for,
        "admin_limit_for": admin_limit_for,
        "role_description": lambda role: role_description(role) or "",
    }


def _loader(templates_dir: str | None) -> ChoiceLoader:
    loaders = []
    if templates_dir:
        if not Path(templates_dir).is_dir():
            raise TemplatesFolderMissing(templates_dir)
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(FileSystemLoader(SHIPPED_TEMPLATES))
    return ChoiceLoader(loaders)


@lru_cache(maxsize=8)
def environments(templates_dir: str | None) -> tuple[Environment, Environment]:
    """The text environment (no escaping) and the HTML one (autoescaped), sharing a loader."""
    loader = _loader(templates_dir)
    common = {
        "loader": loader,
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
        # Templates are read once per process: checking each file's time on every email
        # cost more than rendering it. Edited templates take effect when the service restarts.
        "auto_reload": False,
    }
    text = Environment(autoescape=False, **common)  # type: ignore[arg-type]
    html = Environment(autoescape=True, **common)  # type: ignore[arg-type]
    for env in (text, html):
        env.globals.update(_globals())
        env.filters["words"] = words
        env.filters["long_date"] = long_date
    return text, html


def render(purpose: str, context: dict[str, Any], templates_dir: str | None = None) -> Rendered:
    """Render `<purpose>.subject`, `.txt` and `.html` with the same context."""
    text_env, html_env = environments(templates_dir)
    subject = text_env.get_template(f"{purpose}.subject").render(context)
    text = text_env.get_template(f"{purpose}.txt").render(context)
    html = html_env.get_template(f"{purpose}.html").render(context)
    return Rendered(subject=one_line(subject, 300), text=_tidy(text), html=html)


def _tidy(text: str) -> str:
    """No trailing spaces and at most one blank line in a row, whatever the template did."""
    lines = [line.rstrip() for line in text.splitlines()]
    tidied: list[str] = []
    for line in lines:
        if line or (tidied and tidied[-1]):
            tidied.append(line)
    return "\n".join(tidied).strip("\n") + "\n"


def purposes_on_disk(folder: Path = SHIPPED_TEMPLATES) -> set[str]:
    """Purposes with a file of any of the three kinds in `folder` (base layouts excluded)."""
    found = set()
    for path in folder.iterdir():
        if path.suffix in TEMPLATE_SUFFIXES and not path.stem.startswith("base"):
            found.add(path.stem)
    return found


def check_templates(templates_dir: str | None, samples: dict[str, dict[str, Any]]) -> list[str]:
    """Render every purpose with sample data; return one sentence per problem found."""
    problems = []
    for purpose in PURPOSES:
        try:
            render(purpose, samples[purpose], templates_dir)
        except Exception as exc:  # any template error is a problem to report, not to raise
            problems.append(f"{purpose}: {type(exc).__name__}: {exc}")
    return problems
