"""The Prometheus endpoint, /healthz and /readyz: on `pcse serve` (the pages' app, with the
metrics behind their bearer token) after the whole demo story, and on their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core.clock import FixedClock
from core.db import Database
from core.timeutil import utcnow
from intake.models import InboundMessage, MailboxState
from notifications.models import OutboxMessage
from service.config import Config, from_mapping
from service.monitoring.build import build_monitor
from service.monitoring.endpoints import monitoring_app
from service.monitoring.events import IdleCollector, observe_round
from workflow.models import ApprovalRequest, Case

TOKEN = "metrics-token-" + "t" * 20
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def total(found: Samples, name: str) -> float:
    return sum(v for (n, _), v in found.items() if n == name)


@pytest.fixture(scope="module")
def demo_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, str]]:
    """The whole demo story (ten cases through intake, the workflow and the outbox)."""
    import os

    from demo.run import demo_config, run_demo

    where = tmp_path_factory.mktemp("demo")
    before = Path.cwd()
    os.chdir(where)  # the demo works under ./var
    try:
        run_demo(lambda _: None)
    finally:
        os.chdir(before)
    config = demo_config(0)
    config.database.url = f"sqlite:///{where / 'var' / 'pcse.sqlite3'}"
    yield config, config.database.url


@pytest.fixture
def scrape(demo_story, monkeypatch) -> Iterator[TestClient]:
    from service.web import app_from_config

    config, url = demo_story
    monkeypatch.setenv("PCSE_METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("PCSE_WEB_SECRET", "w" * 40)
    db = Database(url)
    with TestClient(app_from_config(config, db)) as client:
        yield client
    db.dispose()


def test_metrics_after_the_demo_story_match_the_database(scrape, demo_story) -> None:
    response = scrape.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    db = Database(demo_story[1])
    with db.transaction() as session:
        processed = session.scalar(select(func.count()).where(InboundMessage.status == "processed"))
        fetched = session.scalar(select(func.count()).select_from(InboundMessage))
        cases = session.scalar(select(func.count()).select_from(Case))
        completed = session.scalar(select(func.count()).where(Case.state == "completed"))
        sent = session.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
        open_approvals = session.scalar(
            select(func.count()).where(ApprovalRequest.status == "open")
        )
        acknowledged = session.scalar(
            select(func.count(func.distinct(OutboxMessage.case_id))).where(
                OutboxMessage.status == "sent",
                OutboxMessage.to_address == Case.requester,
                Case.id == OutboxMessage.case_id,
            )
        )
    db.dispose()
    assert processed >= 10 and cases == 10
    assert value(found, "pcse_database_up") == 1
    assert total(found, "pcse_messages_processed_total") == processed
    assert value(found, "pcse_messages_fetched_total", mailbox="enquiries") == fetched
    assert total(found, "pcse_cases_opened_total") == cases
    assert value(found, "pcse_cases", state="completed") == completed
    assert total(found, "pcse_cases") == cases
    assert value(found, "pcse_outbox_emails", status="sent") == sent > 0
    assert value(found, "pcse_approval_requests_outstanding") == open_approvals
    assert value(found, "pcse_case_time_to_acknowledgement_seconds_gcount") == acknowledged > 0
    assert value(found, "pcse_case_time_to_acknowledgement_seconds_bucket", le="+Inf") == (
        acknowledged
    )
    assert value(found, "pcse_mailbox_last_successful_poll_timestamp_seconds", mailbox="enquiries")
    # No label anywhere holds an address (or anything but the fixed words and mailbox names).
    labels = [v for (_, pairs) in found for (_, v) in pairs]
    assert labels and not [v for v in labels if "@" in v]


def test_metrics_ask_for_the_bearer_token(scrape) -> None:
    missing = scrape.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "pcse_" not in missing.text
    wrong = scrape.get("/metrics", headers={"Authorization": "Bearer " + "x" * 34})
    assert wrong.status_code == 401
    basic = scrape.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert scrape.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_pcse_serve_refuses_metrics_without_a_configured_token(demo_story, monkeypatch) -> None:
    from service.web import app_from_config

    config, url = demo_story
    monkeypatch.delenv("PCSE_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("PCSE_WEB_SECRET", "w" * 40)
    db = Database(url)
    with TestClient(app_from_config(config, db)) as client:
        refused = client.get("/metrics", headers={"Authorization": "Bearer anything-at-all"})
        assert refused.status_code == 403
        assert "[metrics] token" in refused.text
        # The pages themselves still need a sign-in; health needs none.
        assert client.get("/", follow_redirects=False).status_code == 303
        assert client.get("/healthz").text == "ok\n"
        ready = client.get("/readyz")  # the demo polled its mailbox moments ago
        assert ready.json() == {
            "ready": True,
            "checks": {"database": "ok", "mailbox enquiries": "ok"},
        }
    db.dispose()


def test_a_short_token_is_refused(demo_story, monkeypatch) -> None:
    from core.errors import ConfigError
    from service.web import app_from_config

    config, url = demo_story
    monkeypatch.setenv("PCSE_METRICS_TOKEN", "short")
    monkeypatch.setenv("PCSE_WEB_SECRET", "w" * 40)
    with pytest.raises(ConfigError, match="at least 16"):
        app_from_config(config, Database(url))


# --------------------------------------------------------------------------- readiness


def _config(db_url: str, max_age: float = 600) -> Config:
    return from_mapping(
        {
            "database": {"url": db_url},
            "mailboxes": [{"name": "enquiries", "address": "in@nhs.net", "maildir": "var/m"}],
            "metrics": {"ready_poll_max_age_seconds": max_age, "token": TOKEN},
        }
    )


def _polled(db: Database, at) -> None:
    with db.transaction() as session:
        session.merge(MailboxState(name="enquiries", last_poll_at=at, last_ok_at=at))


def _client(config: Config, db: Database, clock: FixedClock, **kwargs) -> TestClient:
    monitor = build_monitor(config, db, clock=clock, token_required=False, **kwargs)
    return TestClient(monitoring_app(monitor), headers={"Authorization": f"Bearer {TOKEN}"})


def test_ready_while_the_last_good_poll_is_recent_by_the_workflow_clock(database: Database):
    clock = FixedClock()
    config = _config(database.url, max_age=600)
    client = _client(config, database, clock)
    never = client.get("/readyz")
    assert never.status_code == 503
    assert never.json()["checks"]["mailbox enquiries"] == "never polled successfully"
    _polled(database, clock.now())
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "mailbox enquiries": "ok"}}
    clock.advance(seconds=599)
    assert client.get("/readyz").status_code == 200
    clock.advance(seconds=2)  # 601 s since the last good poll
    stale = client.get("/readyz")
    assert stale.status_code == 503
    assert stale.json()["checks"]["mailbox enquiries"].startswith("last good poll 601 s ago")
    assert client.get("/healthz").status_code == 200  # alive, though not ready


def test_poll_age_not_checked_when_set_to_zero(database: Database) -> None:
    client = _client(_config(database.url, max_age=0), database, FixedClock())
    assert client.get("/readyz").json() == {"ready": True, "checks": {"database": "ok"}}


def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    config = _config(url)
    db = Database(url)
    client = _client(config, db, FixedClock())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")
    assert client.get("/healthz").status_code == 200
    # The metrics still answer, saying the database is down.
    found = samples(client.get("/metrics").text)
    assert value(found, "pcse_database_up") == 0
    db.dispose()


def test_not_alive_when_the_process_says_so(database: Database) -> None:
    client = _client(_config(database.url), database, FixedClock(), liveness=lambda: ["stopping"])
    response = client.get("/healthz")
    assert (response.status_code, response.text) == (503, "not alive: stopping\n")


# --------------------------------------------------------------------------- in-process


class _Watcher:
    def __init__(self, mailbox: str, up: bool) -> None:
        import threading

        self.mailbox = mailbox
        self.connected = threading.Event()
        if up:
            self.connected.set()


def test_overdue_approvals_and_idle_and_intake_rounds(db: Database) -> None:
    from intake.pipeline import IntakeReport
    from intake.poller import PollReport
    from tests.test_workflow_helpers import gpp_form, make_env, open_request

    clock = FixedClock(utcnow())
    open_request(db, make_env(clock), gpp_form())
    config = _config(db.url)
    watchers = [_Watcher("enquiries", True), _Watcher("second", False)]
    client = _client(config, db, clock, watchers=lambda: watchers)
    before = samples(client.get("/metrics").text)
    report = IntakeReport(polls=[PollReport("enquiries", fetched=2), PollReport("x", error="e")])
    report.processing.processed = 2
    observe_round(report, 0.2, ["enquiries"])
    found = samples(client.get("/metrics").text)
    assert value(found, "pcse_approval_requests_outstanding") == 1
    assert value(found, "pcse_approval_requests_overdue") == 0
    assert value(found, "pcse_idle_connected", mailbox="enquiries") == 1
    assert value(found, "pcse_idle_connected", mailbox="second") == 0
    processed = ("pcse_intake_messages_total", (("result", "processed"),))
    assert found[processed] - before.get(processed, 0) == 2
    errors = ("pcse_intake_poll_errors_total", (("mailbox", "other"),))
    assert found[errors] - before.get(errors, 0) == 1
    clock.advance(days=3, seconds=1)  # past [workflow] reminder_after_days
    later = samples(client.get("/metrics").text)
    assert value(later, "pcse_approval_requests_overdue") == 1


def test_idle_collector_reads_the_watchers_at_scrape_time() -> None:
    watchers: list[_Watcher] = []
    collector = IdleCollector(lambda: watchers)
    assert [s for f in collector.collect() for s in f.samples] == []
    watchers.append(_Watcher("enquiries", True))
    (family,) = collector.collect()
    assert [(s.labels, s.value) for s in family.samples] == [({"mailbox": "enquiries"}, 1.0)]


def test_unknown_mailbox_names_and_values_become_other(database: Database) -> None:
    with database.transaction() as session:
        session.add(
            InboundMessage(
                mailbox="someone@nhs.net",
                uidvalidity=1,
                uid=1,
                sha256="0" * 64,
                size=1,
                status="processed",
                classification="new_request",
            )
        )
    client = _client(_config(database.url), database, FixedClock())
    found = samples(client.get("/metrics").text)
    assert value(found, "pcse_messages_fetched_total", mailbox="other") == 1
    assert value(found, "pcse_messages_fetched_total", mailbox="enquiries") == 0
    assert not [v for (_, pairs) in found for (_, v) in pairs if "@" in v]


def test_metrics_port_of_pcse_run(database: Database) -> None:
    """`pcse run`'s own port: served on a thread, refused when the port is taken."""
    import socket

    import httpx

    from core.errors import ConfigError
    from service.monitoring.server import serving
    from tests.fixtures.browser import free_port

    config = _config(database.url)
    monitor = build_monitor(config, database, clock=FixedClock(), token_required=False)
    port = free_port()
    with serving(monitor, "127.0.0.1", port):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").text == "ok\n"
        assert httpx.get(f"{base}/metrics").status_code == 401  # a token is configured
        ok = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert "pcse_cases" in ok.text
        with (
            pytest.raises(ConfigError, match="could not be opened"),
            serving(monitor, "127.0.0.1", port),
        ):
            pass
    with socket.socket() as probe:  # stopped: the port is free again
        probe.bind(("127.0.0.1", port))
    with serving(monitor, "127.0.0.1", 0) as nothing:
        assert nothing is None


@pytest.mark.parametrize("measure", ["acknowledgement", "outcome"])
def test_the_database_counts_the_waits_as_the_report_measures_them(
    db: Database, smtp_config: Config, measure: str
) -> None:
    """The histogram summed by the database agrees, bucket by bucket, with the per-case
    times of caseworker.report, on cases whose times are known (tests/test_report.py)."""
    from caseworker.report import case_times
    from service.monitoring.waits import WAIT_BUCKETS, wait_histogram
    from tests.test_report import _story

    _story(db, smtp_config)
    with db.transaction() as session:
        count, seconds, cumulative = wait_histogram(session, measure)
        times = [t for c in case_times(session) if (t := c.seconds_to(measure)) is not None]
    assert count == len(times) == 3
    assert seconds == pytest.approx(sum(times), abs=0.01)
    assert cumulative == [sum(1 for t in times if t <= b) for b in WAIT_BUCKETS]
    assert cumulative[-1] == count  # every wait here is under a month


def test_the_wait_histograms_cover_the_recent_window(db: Database, smtp_config: Config) -> None:
    """Cases opened before the window leave the histograms; the metric says which days."""
    from tests.test_report import _story

    clock, _ = _story(db, smtp_config)  # cases from 2 to 10 March
    config = _config(db.url)
    client = _client(config, db, clock)
    found = samples(client.get("/metrics").text)
    assert value(found, "pcse_case_time_to_outcome_seconds_gcount") == 3
    clock.advance(days=25)  # A and B (2 March) are now more than 30 days old
    found = samples(client.get("/metrics").text)
    assert value(found, "pcse_case_time_to_outcome_seconds_gcount") == 1  # C
    assert value(found, "pcse_case_time_to_acknowledgement_seconds_bucket", le="900.0") == 1
    text = client.get("/metrics").text
    assert "opened in the last 30 days" in text
