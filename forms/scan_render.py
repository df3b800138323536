"""render_page: one page of an attached form as a PNG, drawn in the sandboxed worker, for the
case page to show beside the fields read from it."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from forms.sandbox import POOL, PdfLimits, WorkerFailure

MAX_WIDTH = 1800


@dataclass(frozen=True)
class RenderedPage:
    png: bytes
    pages: int  # how many pages the document has


class PageUnavailable(Exception):
    """The page cannot be drawn (no such page, or the file cannot be read)."""


def render_page(
    data: bytes, page: int, width: int = 900, limits: PdfLimits | None = None
) -> RenderedPage:
    """Page `page` (from 0) of a PDF or image, `width` pixels wide."""
    limits = limits or PdfLimits()
    job = {
        "op": "render",
        "page": int(page),
        "width": max(100, min(int(width), MAX_WIDTH)),
        "max_pages": max(limits.max_pages, limits.ocr_max_pages),
    }
    result = POOL.run(data, limits, [], job)
    if isinstance(result, WorkerFailure) or not result.get("ok"):
        detail = result.detail if isinstance(result, WorkerFailure) else result.get("detail")
        raise PageUnavailable(str(detail or "the page cannot be drawn"))
    return RenderedPage(base64.b64decode(result["png"]), int(result["pages"]))
