"""The supervisors' report (caseworker.report) on cases with known times: the workflow's
clock is moved between arrivals, emails sent, answers and a caseworker's decision."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from caseworker.report import (
    Report,
    as_json,
    build_report,
    csv_rows,
    quantile,
    reason_label,
    week_of,
)
from core.clock import FixedClock
from core.db import Database
from intake.models import InboundMessage
from notifications.sender import send_pending
from service.cli import main
from service.config import Config
from tests.test_workflow_helpers import (
    NOW,
    PARTNER,
    answer,
    email_request,
    gpp_form,
    grant_admins,
    make_env,
    open_request,
)
from workflow import actions
from workflow.models import Case

CASEWORKER = "casey.worker@nhs.net"
DAY = 86400.0


def _arrives(db: Database, env, request, clock: FixedClock) -> str:
    """A request arrives now (by the clock): its message's arrival is the clock's time."""
    ref = open_request(db, env, request)
    with db.transaction() as session:
        source = session.scalar(select(Case.source_message_id).where(Case.ref == ref))
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == source)
            .values(received_at=clock.now())
        )
    return ref


def _story(db: Database, smtp_config: Config) -> tuple[FixedClock, dict[str, str]]:
    """Four cases over two weeks: A approved by email, B to a caseworker who rejects it,
    C answered at once, D still waiting for its approver (and for its first email)."""
    clock = FixedClock(NOW)  # Monday 2 March 2026, 09:00 UTC
    env = make_env(clock)
    refs = {"A": _arrives(db, env, gpp_form(), clock)}
    clock.advance(minutes=30)
    send_pending(db, smtp_config, clock=clock)  # A's acknowledgement: 30 minutes
    clock.advance(minutes=90)
    refs["B"] = _arrives(db, env, email_request("oph_admin", organisation_code="OC4567"), clock)
    clock.advance(hours=1)
    send_pending(db, smtp_config, clock=clock)  # B's acknowledgement: 1 hour
    clock.advance(hours=21)  # A + 1 day
    answer(db, env, refs["A"], PARTNER, "Approved")
    clock.advance(days=2)  # B + 3 days - 2 hours
    with db.transaction() as session:
        actions.reject(session, env, refs["B"], by=CASEWORKER, reason="Not an optician's address")
    clock.advance(days=5)  # Tuesday 10 March, 09:00
    with db.transaction() as session:
        grant_admins(session, "A81001", "PL Organisation Administrator", 1)
    refs["C"] = _arrives(db, env, email_request("pl_admin"), clock)
    clock.advance(minutes=10)
    send_pending(db, smtp_config, clock=clock)  # C's answer: 10 minutes
    clock.advance(minutes=10)
    other = [{"name": "Nia Jones", "email": "nia.jones@nhs.net", "services": ["gpp"]}]
    refs["D"] = _arrives(db, env, gpp_form(nominees=other), clock)
    return clock, refs


@pytest.fixture
def story(db: Database, smtp_config: Config) -> tuple[Report, dict[str, str]]:
    clock, refs = _story(db, smtp_config)
    with db.transaction() as session:
        report = build_report(session, date(2026, 3, 1), clock.now())
    return report, refs


def test_volumes_and_outcomes(story) -> None:
    report, _ = story
    assert report.cases == 4
    assert report.by_week == {
        date(2026, 3, 2): {"gpp_admin_form": 1, "oph_admin": 1},
        date(2026, 3, 9): {"gpp_admin_form": 1, "pl_admin": 1},
    }
    assert report.outcomes == {"answered": 1, "completed": 1, "open": 1, "rejected": 1}


def test_times_to_acknowledgement_approval_and_outcome(story) -> None:
    report, _ = story
    ack = report.times["acknowledgement"]
    # A 30 min, B 1 h, C 10 min; D has had no email yet.
    assert (ack.count, ack.median_seconds) == (3, 1800)
    assert ack.p90_seconds == pytest.approx(1800 + 0.8 * 1800)
    approval = report.times["approval"]
    assert (approval.count, approval.median_seconds, approval.p90_seconds) == (1, DAY, DAY)
    outcome = report.times["outcome"]
    # C at once, A after a day, B after three days less two hours.
    b_outcome = 3 * DAY - 7200
    assert (outcome.count, outcome.median_seconds) == (3, DAY)
    assert outcome.p90_seconds == pytest.approx(DAY + 0.8 * (b_outcome - DAY))


def test_what_reached_a_person_and_why(story) -> None:
    report, _ = story
    # A (its approver answered by email) and C needed no caseworker; B did.
    assert (report.finished, report.finished_without_person) == (3, 2)
    assert report.share_without_person == pytest.approx(2 / 3)
    assert report.reached_person == 1
    ((reason, count),) = report.reasons
    assert count == 1 and reason.startswith("No approver")
    assert "@" not in reason and "OC4567" not in reason


def test_approvals_outstanding_by_icb_and_practice(story) -> None:
    report, _ = story
    ((outstanding),) = report.outstanding
    assert (outstanding.icb_code, outstanding.organisation_code, outstanding.open) == (
        "QHM",
        "A81001",
        1,
    )
    assert outstanding.oldest == NOW + timedelta(days=8, minutes=20)


def test_since_leaves_out_earlier_cases(db: Database, smtp_config: Config) -> None:
    clock, _ = _story(db, smtp_config)
    with db.transaction() as session:
        report = build_report(session, date(2026, 3, 9), clock.now())
    assert report.cases == 2
    assert list(report.by_week) == [date(2026, 3, 9)]
    # The open approval counts whenever it was asked for.
    assert [o.open for o in report.outstanding] == [1]


def test_json_and_csv_shapes(story) -> None:
    report, _ = story
    document = json.loads(json.dumps(as_json(report)))
    assert set(document) == {
        "since",
        "until",
        "cases",
        "by_week",
        "outcomes",
        "times",
        "without_person",
        "reached_person",
        "approvals_outstanding",
    }
    assert document["by_week"][0] == {
        "week": "2026-03-02",
        "kinds": {"gpp_admin_form": 1, "oph_admin": 1},
        "total": 2,
    }
    assert document["times"]["acknowledgement"]["median_seconds"] == 1800
    assert document["without_person"]["finished_without_person"] == 2
    rows = csv_rows(report)
    assert ("requests_by_week", "2026-03-09", "pl_admin", "1") in rows
    assert ("time_to", "approval", "median_seconds", "86400") in rows
    assert ("approvals_outstanding", "QHM", "A81001", "1") in rows
    assert all(len(row) == 4 for row in rows)


def test_pcse_report_command(db: Database, db_url: str, smtp_config: Config, tmp_path, capsys):
    _story(db, smtp_config)
    config = tmp_path / "pcse.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    main(["--config", str(config), "report", "--since", "2026-03-01", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert document["cases"] == 4
    assert document["outcomes"]["completed"] == 1
    main(["--config", str(config), "report", "--since", "2026-03-01", "--csv"])
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[0] == ["section", "group", "item", "value"]
    assert ["outcomes", "", "rejected", "1"] in table
    main(["--config", str(config), "report", "--since", "2026-03-01"])
    text = capsys.readouterr().out
    assert "Finished with no caseworker: 2 of 3 (67%)" in text
    with pytest.raises(SystemExit) as bad:
        main(["--config", str(config), "report", "--since", "last week"])
    assert bad.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_quantiles() -> None:
    assert quantile([], 0.5) is None
    assert quantile([7.0], 0.9) == 7.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([10.0, 0.0, 20.0], 0.9) == pytest.approx(18.0)


@pytest.mark.parametrize(
    ("detail", "label"),
    [
        (
            "Organisation A81009 is not in the directory; a caseworker must confirm the code.",
            "Organisation … is not in the directory",
        ),
        (
            "Practice A81001 already has a Main Contact (amina.okafor@nhs.net); only one.",
            "Practice … already has a Main Contact",
        ),
        ("Reopened by sam@nhs.net: the practice rang", "Reopened by …"),
        ("", "No reason recorded"),
    ],
)
def test_reason_labels_count_like_reasons_together_and_name_no_one(detail, label) -> None:
    assert reason_label(detail) == label


def test_week_starts_on_monday() -> None:
    assert week_of(datetime(2026, 3, 8, 23, 59)) == date(2026, 3, 2)
    assert week_of(datetime(2026, 3, 9, 0, 0)) == date(2026, 3, 9)
