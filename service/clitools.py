"""Shared pieces of the command line: the --config and --json options, output helpers."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import click

from core.timeutil import as_utc
from service.config import load
from service.context import AppContext


def _config_path(ctx: click.Context, own: str | None) -> str | None:
    """A command's own --config wins over the one given before the command name."""
    if own:
        return own
    root = ctx.find_root()
    return root.params.get("config_path") if root is not ctx else None


def with_app(json_flag: bool = False) -> Callable:
    """Give a command `--config` (and `--json`) and pass it an AppContext first."""

    def decorate(func: Callable) -> Callable:
        @click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            envvar="PCSE_CONFIG",
            help="Configuration file (default: $PCSE_CONFIG, else the local defaults).",
        )
        @functools.wraps(func)
        def wrapper(*args: Any, config_path: str | None = None, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            app = AppContext(
                load(_config_path(ctx, config_path)), json_output=bool(kwargs.get("json_output"))
            )
            try:
                return func(app, *args, **kwargs)
            finally:
                if "database" in app.__dict__:
                    app.database.dispose()

        if json_flag:
            wrapper = click.option(
                "--json", "json_output", is_flag=True, help="Print one JSON document on stdout."
            )(wrapper)
        return wrapper

    return decorate


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()  # naive from SQLite, which keeps no zone
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_default))


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain text table, wide enough for its contents."""
    cells = [headers, *[[("" if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    sys.exit(code)
