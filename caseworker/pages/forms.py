"""Reading posted forms: trimmed text, and the NHS.UK error summary's list of problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request


def text(request: Request, name: str, *, limit: int = 5000) -> str:
    value = request.state.form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


@dataclass
class Problems:
    """Field errors for the form and the error summary at the top of the page."""

    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def summary(self) -> list[dict[str, str]]:
        return [{"text": message, "href": f"#{name}"} for name, message in self.fields.items()]


def refusal(message: str, anchor: str = "actions") -> list[dict[str, str]]:
    """An error summary entry for a refusal that belongs to no single field."""
    return [{"text": message, "href": f"#{anchor}"}]
