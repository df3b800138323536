"""The reports page and its CSV: supervisors only, charts drawn on the server with a table
beside each, and the figures of caseworker.report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from caseworker.charts import Row, horizontal, vertical
from tests.fixtures.browser import SUPERVISOR, WebClient
from tests.fixtures.report_cases import seed_quarter

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def quarter(web: WebClient) -> WebClient:
    seed_quarter(web.settings.database, START, weeks=4)
    return web


def test_caseworkers_cannot_see_reports(quarter: WebClient) -> None:
    quarter.sign_in()
    assert quarter.get("/reports").status_code == 403
    assert quarter.get("/reports.csv").status_code == 403
    assert 'href="/reports"' not in quarter.get("/").text


def test_supervisors_see_charts_with_tables_beside_them(quarter: WebClient) -> None:
    quarter.sign_in(SUPERVISOR)
    assert 'href="/reports"' in quarter.get("/").text
    page = quarter.get("/reports?since=2026-03-01")
    assert page.status_code == 200
    html = page.text
    for table in ("weeks-table", "outcomes-table", "times-table", "reasons-table"):
        assert f'id="{table}"' in html
    assert html.count('<svg class="app-chart" role="img"') == 4
    assert "<script" not in html.split("</main>")[0].split("<main")[1]
    assert 'id="approvals-table"' in html
    # Four weeks of requests, each with its Monday in the table.
    for monday in ("2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"):
        assert f">{monday}</th>" in html
    assert "No approver" in html  # the opticians' requests went to triage
    assert "@" not in html.split('id="reasons"')[1].split('id="approvals"')[0]


def test_a_bad_first_day_is_said_beside_the_field(quarter: WebClient) -> None:
    quarter.sign_in(SUPERVISOR)
    page = quarter.get("/reports?since=last+week")
    assert page.status_code == 400
    assert "Enter the first day as a date" in page.text
    future = quarter.get("/reports?since=2999-01-01")
    assert future.status_code == 400 and "today or earlier" in future.text


def test_csv_download(quarter: WebClient) -> None:
    quarter.sign_in(SUPERVISOR)
    response = quarter.get("/reports.csv?since=2026-03-01")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["section", "group", "item", "value"]
    weeks = {r[1] for r in rows if r[0] == "requests_by_week"}
    assert weeks == {"2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"}


def test_bars_scale_to_the_largest_value() -> None:
    chart = horizontal("c", "Outcomes", [Row("a", 10, "10"), Row("b", 5, "5"), Row("c", 0, "0")])
    widths = [bar.width for bar in chart.bars]
    assert widths[0] == pytest.approx(2 * widths[1]) and widths[2] == 0
    assert [bar.y for bar in chart.bars] == sorted(bar.y for bar in chart.bars)
    columns = vertical("w", "Weeks", [Row("1 Mar", 4, "4"), Row("8 Mar", 2, "2")])
    tall, short = columns.bars
    assert tall.height == pytest.approx(2 * short.height)
    assert tall.y + tall.height == pytest.approx(short.y + short.height)  # one baseline
    assert horizontal("e", "Empty", []).empty
