"""The queue page: named views, filters, overdue and new-reply markers, and bulk actions on
a selection."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from caseworker.auth import current_user
from caseworker.bulk import ACTIONS as BULK_ACTIONS
from caseworker.bulk import BulkRefused, run_bulk
from caseworker.labels import KIND_LABELS, STATE_LABELS
from caseworker.pages.forms import text
from caseworker.queue import (
    ALL_STATES,
    ASSIGNED_TO_ME,
    ASSIGNED_TO_NOBODY,
    NEEDS_PERSON,
    QueueFilters,
    queue_page,
)
from caseworker.rendering import flash, render
from caseworker.security import form_post
from caseworker.webcontext import in_transaction, settings

# Saved views: links a caseworker can bookmark; any filter's address is one too.
VIEWS = [
    ("Needs a person", {}),
    ("New replies", {"new_reply": "1"}),
    ("Overdue", {"overdue": "1", "state": ALL_STATES}),
    ("Assigned to me", {"assigned": ASSIGNED_TO_ME}),
    ("Nobody has it", {"assigned": ASSIGNED_TO_NOBODY}),
    ("Awaiting approval", {"state": "awaiting_approval"}),
    ("All cases", {"state": ALL_STATES}),
]


def views(filters: QueueFilters) -> list[dict[str, Any]]:
    current = filters.as_query()
    return [
        {
            "text": label,
            "href": "/?" + urlencode(query) if query else "/",
            "current": query == current,
        }
        for label, query in VIEWS
    ]


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 100000))
    except ValueError:
        return 1


def _page_href(filters: QueueFilters, page: int) -> str:
    query = filters.as_query() | ({"page": str(page)} if page > 1 else {})
    return "/?" + urlencode(query) if query else "/"


def pagination(filters: QueueFilters, page: int, pages: int) -> dict | None:
    if pages <= 1:
        return None
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    items: list[dict] = []
    for number in shown:
        if items and number - items[-1].get("number", number) > 1:
            items.append({"ellipsis": True})
        items.append(
            {"number": number, "href": _page_href(filters, number), "current": number == page}
        )
    return {
        "items": items,
        "previous": {"href": _page_href(filters, page - 1)} if page > 1 else None,
        "next": {"href": _page_href(filters, page + 1)} if page < pages else None,
    }


async def queue(request: Request) -> Response:
    user = current_user(request)
    filters = QueueFilters.from_query(request.query_params, me=user.email)
    web = settings(request)
    result = await in_transaction(
        request,
        queue_page,
        filters,
        page=_page_number(request.query_params.get("page")),
        page_size=web.page_size,
        now=web.env.clock.now(),
        targets=web.env.targets,
    )
    state_options: list[dict[str, Any]] = [
        {"value": "", "text": "Needs a person"},
        {"value": ALL_STATES, "text": "All states"},
    ]
    state_options += [{"value": k, "text": v} for k, v in STATE_LABELS.items()]
    for option in state_options:
        option["selected"] = option["value"] == (
            "" if filters.state == NEEDS_PERSON else filters.state
        )
    kind_options: list[dict[str, Any]] = [{"value": "", "text": "All kinds"}]
    kind_options += [
        {"value": k, "text": v, "selected": k == filters.kind} for k, v in KIND_LABELS.items()
    ]
    assigned_options = [
        {"value": value, "text": label, "selected": value == filters.assigned}
        for value, label in (
            ("", "Anyone or nobody"),
            (ASSIGNED_TO_ME, "Me"),
            (ASSIGNED_TO_NOBODY, "Nobody"),
        )
    ]
    return render(
        request,
        "queue.html",
        {
            "title": "Queue",
            "result": result,
            "filters": filters,
            "filtered": bool(filters.as_query()),
            "needs_person": filters.state == NEEDS_PERSON,
            "state_options": state_options,
            "kind_options": kind_options,
            "assigned_options": assigned_options,
            "pagination": pagination(filters, result.page, result.pages),
            "views": views(filters),
            "here": _page_href(filters, result.page),
            "bulk_actions": BULK_ACTIONS,
            "targets": web.env.targets,
        },
    )


def _back(value: str) -> str:
    """Only back to a view of the queue, never elsewhere."""
    return value if value == "/" or value.startswith("/?") else "/"


@form_post
async def bulk(request: Request) -> Response:
    """Apply one action to the selected rows, then show the same view again."""
    user = current_user(request)
    web = settings(request)
    items = [v for v in request.state.form.getlist("item") if isinstance(v, str)]
    action = text(request, "action", limit=20)
    reason = text(request, "reason", limit=1000)
    back = _back(text(request, "back", limit=2000))
    if not items:
        flash(request, "Select at least one item first.", kind="important")
        return RedirectResponse(back, status_code=303)
    try:
        result = await run_in_threadpool(
            run_bulk, web.database, web.env, action, items, by=user.email, reason=reason
        )
    except BulkRefused as refused:
        flash(request, str(refused), kind="important")
        return RedirectResponse(back, status_code=303)
    flash(request, result.summary(action), kind="important" if result.refused else "success")
    return RedirectResponse(back, status_code=303)


routes = [Route("/", queue, methods=["GET"]), Route("/queue/bulk", bulk, methods=["POST"])]
