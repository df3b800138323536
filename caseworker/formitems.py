"""The items of an NHS.UK select: a first empty choice, then each choice, the chosen one
selected (a template global, `select_items`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def select_items(
    first: str, choices: Iterable[Mapping[str, Any]], chosen: str | None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"value": "", "text": first}]
    items += [
        {"value": c["value"], "text": c["text"], "selected": c["value"] == chosen} for c in choices
    ]
    return items
