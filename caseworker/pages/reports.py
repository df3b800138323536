"""The reports page for supervisors: volumes, outcomes, waits, and what reached a person,
each as a chart drawn on the server with its table beside it (caseworker.report)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caseworker.auth import supervisor_only
from caseworker.charts import Chart, Row, horizontal, vertical
from caseworker.labels import state_label
from caseworker.rendering import render
from caseworker.report import (
    CSV_HEADER,
    MEASURES,
    Report,
    build_report,
    csv_rows,
    default_since,
    duration,
    percent,
)
from caseworker.webcontext import in_transaction, settings
from core.csvcells import text_rows

MEASURE_LABELS = {
    "acknowledgement": "First email",
    "approval": "Approval",
    "outcome": "Outcome",
}


def _since(request: Request, now: datetime) -> tuple[date, str | None]:
    """The first day asked for, or the default with the reason it was not taken."""
    asked = request.query_params.get("since", "").strip()
    if not asked:
        return default_since(now), None
    try:
        chosen = date.fromisoformat(asked)
    except ValueError:
        return default_since(now), "Enter the first day as a date, for example 2026-01-05"
    if chosen > now.date():
        return default_since(now), "The first day must be today or earlier"
    return chosen, None


def _outcome_label(state: str) -> str:
    return "Still open" if state == "open" else state_label(state)


def charts(report: Report) -> dict[str, Chart]:
    weeks = [
        Row(f"{week.day} {week:%b}", sum(counts.values()), str(sum(counts.values())))
        for week, counts in report.by_week.items()
    ]
    outcomes = [Row(_outcome_label(s), n, str(n)) for s, n in report.outcomes.items()]
    times = []
    for measure in MEASURES:
        timing = report.times[measure]
        for which, seconds, tone in (
            ("median", timing.median_seconds, "primary"),
            ("90th percentile", timing.p90_seconds, "secondary"),
        ):
            if seconds is not None:
                label = f"{MEASURE_LABELS[measure]}, {which}"
                times.append(Row(label, seconds / 3600, duration(seconds), tone))
    reasons = [Row(reason, n, str(n)) for reason, n in report.reasons]
    return {
        "weeks": vertical(
            "chart-weeks",
            "Requests by week",
            weeks,
            f"{report.cases} requests over {len(weeks)} weeks.",
        ),
        "outcomes": horizontal("chart-outcomes", "Outcomes", outcomes),
        "times": horizontal(
            "chart-times",
            "Time from arrival",
            times,
            "Median and 90th percentile times from a request's arrival.",
        ),
        "reasons": horizontal("chart-reasons", "Why cases reached a caseworker", reasons),
    }


def _page(session: Session, since: date, now: datetime) -> dict[str, Any]:
    report = build_report(session, since, now)
    return {
        "report": report,
        "charts": charts(report),
        "kinds": report.kinds,
        "measure_labels": MEASURE_LABELS,
        "duration": duration,
        "share": percent(report.share_without_person),
        "outcome_label": _outcome_label,
    }


@supervisor_only
async def reports_page(request: Request) -> Response:
    now = settings(request).env.clock.now()
    since, problem = _since(request, now)
    page = await in_transaction(request, _page, since, now)
    field_errors = {"since": problem} if problem else {}
    return render(
        request,
        "reports.html",
        {
            "title": "Reports",
            **page,
            "since_text": request.query_params.get("since", since.isoformat())[:20],
            "errors": [{"text": problem, "href": "#since"}] if problem else [],
            "field_errors": field_errors,
        },
        status_code=400 if problem else 200,
    )


def _csv(session: Session, since: date, now: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(text_rows(csv_rows(build_report(session, since, now))))
    return out.getvalue()


@supervisor_only
async def reports_csv(request: Request) -> Response:
    now = settings(request).env.clock.now()
    since, _ = _since(request, now)
    body = await in_transaction(request, _csv, since, now)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pcse-report-{since}.csv"'},
    )


routes = [
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports.csv", reports_csv, methods=["GET"]),
]
