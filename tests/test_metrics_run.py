"""`pcse run` with [metrics] port: its counters, its IDLE connection and its readiness, read
over HTTP from the real process while it takes mail from a real Dovecot."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import Database
from tests.fixtures.browser import free_port
from tests.fixtures.dovecot import ImapAccount, plain_request
from tests.test_intake_cli import PCSE, inbound, wait_until, write_config

pytestmark = pytest.mark.dovecot


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_run_serves_metrics_health_and_readiness(
    imap_account: ImapAccount, sqlite_database: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "pcse.toml", sqlite_database, imap_account, poll_seconds=600)
    port = free_port()
    with config.open("a", encoding="utf-8") as extra:
        extra.write(f"\n[metrics]\nport = {port}\nready_poll_max_age_seconds = 900\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PCSE_CONFIG", "PCSE_METRICS_TOKEN")}
    env["TEST_IMAP_PASSWORD"] = imap_account.password
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [PCSE, "--config", str(config), "run"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_until(lambda: "IDLE on 1" in log_path.read_text(), 20)
            assert httpx.get(f"{base}/healthz").text == "ok\n"
            wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 10)
            wait_until(
                lambda: scrape(base).get(("pcse_idle_connected", (("mailbox", "enquiries"),))) == 1,
                10,
            )
            imap_account.append([plain_request(1), plain_request(2)])
            wait_until(
                lambda: len([r for r in inbound(sqlite_database) if r.status == "processed"]) == 2,
                15,
            )
            found = scrape(base)
            assert found[("pcse_intake_messages_total", (("result", "processed"),))] == 2
            assert found[("pcse_intake_rounds_total", ())] >= 2
            assert found[("pcse_messages_fetched_total", (("mailbox", "enquiries"),))] == 2
            assert found[("pcse_database_up", ())] == 1
            service.send_signal(signal.SIGTERM)
            assert service.wait(20) == 0
        finally:
            if service.poll() is None:
                service.kill()
                service.wait(5)
    text = log_path.read_text()
    assert f"/readyz on 127.0.0.1:{port}" in text
    with pytest.raises(httpx.ConnectError):  # stopped with the service
        httpx.get(f"{base}/healthz")
