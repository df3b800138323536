"""No personal data or secrets in the logs, and none in the PDF worker's environment.

The whole demo story runs with the project's loggers and uvicorn's at DEBUG, then the
caseworker pages are served as `pcse serve` serves them and visited at addresses that name
people; no log line may hold an email address or the name of anyone in the sample data.
"""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from caseworker.serving import server_config
from core.child_process import PASSED_ENVIRONMENT
from demo.mail import stories
from forms.sandbox import Worker
from tests.fixtures.browser import CASEWORKER, PASSWORD, add_accounts, free_port

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
LOGGERS = (
    "intake",
    "forms",
    "workflow",
    "notifications",
    "service",
    "caseworker",
    "core",
    "demo",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


def sample_names() -> set[str]:
    names = {story.sender_name for story in stories()}
    for path in (ROOT / "demo" / "data").glob("*.csv"):
        with path.open(encoding="utf-8") as rows:
            names.update(
                row["name"] for row in csv.DictReader(rows) if "email" in row and row.get("name")
            )
    names = {n.removeprefix("Dr ").strip() for n in names}
    return {n for n in names if " " in n}  # "Priya Shah": whole names, not single words


def serve(app, port: int, handler: logging.Handler) -> uvicorn.Server:
    config = server_config(app, host="127.0.0.1", port=port, log_level="debug")
    # uvicorn's loggers do not pass their lines up to the root: listen to them directly.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addHandler(handler)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    return server


def visit_pages(url: str) -> list[int]:
    """Signed in, the pages whose addresses name people: a person, searches, next=."""
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        page = client.get("/sign-in?next=/directory/people/tom.baker%40nhs.net")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        client.post(
            "/sign-in?next=/directory/people/tom.baker%40nhs.net",
            data={
                "email": CASEWORKER,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "/directory/people/tom.baker@nhs.net",
            },
            headers={"Origin": url},
        )
        return [
            client.get(path).status_code
            for path in (
                "/directory/people/tom.baker@nhs.net",
                "/directory?q=Tom+Baker",
                "/?q=sarah.khan%40nhs.net",
                "/directory/people/nobody.here@nhs.net",
            )
        ]


@pytest.mark.slow
def test_a_whole_story_logs_no_address_and_no_name(
    tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    from core.db import Database
    from demo.run import demo_config, run_demo
    from service.web import app_from_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCSE_WEB_SECRET", "x" * 40)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    report = run_demo(lambda _: None)
    db = Database(demo_config(0).database.url)
    add_accounts(db)
    server = serve(app_from_config(demo_config(0), db), free_port(), caplog.handler)
    try:
        statuses = visit_pages(f"http://127.0.0.1:{server.config.port}")
    finally:
        server.should_exit = True
        db.dispose()
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).removeHandler(caplog.handler)

    assert len(report.cases) == 10 and statuses[0] == 200
    lines = [record.getMessage() for record in caplog.records]
    assert any(re.fullmatch(r"GET 200 [\d.]+ ms", line) for line in lines)
    assert any(line.startswith("inbound ") for line in lines)
    assert [line for line in lines if ADDRESS.search(line)] == []
    names = sample_names()
    assert {"Priya Shah", "Sarah Khan", "Gill Hart"} <= names
    assert [line for line in lines if any(name in line for name in names)] == []


def test_the_pdf_worker_sees_none_of_the_service_secrets(monkeypatch) -> None:
    secrets = {
        "PCSE_IMAP_PASSWORD": "imap-secret",
        "PCSE_SMTP_PASSWORD": "smtp-secret",
        "PCSE_OAUTH2_CLIENT_SECRET": "oauth-secret",
        "PCSE_WEB_SECRET": "w" * 40,
        "PGPASSWORD": "pg-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    worker = Worker(256)
    try:
        # The kernel's copy of the running worker's environment: nothing to ask the worker.
        raw = Path(f"/proc/{worker.process.pid}/environ").read_bytes()
    finally:
        worker.kill()
    seen = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert set(seen) <= {*PASSED_ENVIRONMENT, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
    assert not set(secrets) & set(seen)
    assert not any(value in raw.decode() for value in secrets.values())
    assert str(ROOT) in seen["PYTHONPATH"].split(":")


# --------------------------------------------------------------------------- tracebacks


def test_a_traceback_logged_quotes_no_address_and_no_database_detail() -> None:
    """A unique-key failure as psycopg words it, logged with its traceback by intake or a job."""
    from core.redact import RedactingFormatter

    formatter = RedactingFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise RuntimeError(
            'duplicate key value violates unique constraint "people_email_key"\n'
            "DETAIL:  Key (email)=(nia.patel@nhs.net) already exists.\n"
            "[SQL: INSERT INTO people (email, name) VALUES (%(email)s, %(name)s)]"
        )
    except RuntimeError:
        record = logging.LogRecord("intake", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = __import__("sys").exc_info()
        written = formatter.format(record)
    assert "Traceback" in written and "people_email_key" in written  # still useful
    assert "nia.patel" not in written and "DETAIL:  Key" not in written


def test_a_failing_page_leaves_its_traceback_to_the_apps_own_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn logs whatever escapes the app, traceback and all: once the 500 page has gone
    out, the failure stops at the access log, with the app's one line (route and type)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.routing import Route

    from caseworker.app import server_error
    from caseworker.serving import AccessLog

    async def failing(_request):
        raise RuntimeError("DETAIL:  Key (email)=(nia.patel@nhs.net) already exists.")

    app = AccessLog(
        Starlette(routes=[Route("/fail", failing)], exception_handlers={500: server_error})
    )
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/fail",
        "raw_path": b"/fail",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "http_version": "1.1",
    }
    caplog.set_level(logging.INFO)
    asyncio.run(app(scope, receive, send))  # raises nothing on to the server
    assert sent[0]["status"] == 500
    lines = [r.getMessage() for r in caplog.records]
    assert any("page failing (GET) failed: RuntimeError" in line for line in lines)
    assert not any("nia.patel" in line for line in lines)


def test_uvicorn_writes_through_the_services_handler() -> None:
    """Left to its own logging set-up, uvicorn writes with a handler of its own, which
    would print a traceback as it is."""
    from caseworker.serving import server_config

    config = server_config(object(), host="127.0.0.1", port=0)
    assert config.log_config is None
    config.configure_logging()
    assert logging.getLogger("uvicorn.error").propagate
    assert not logging.getLogger("uvicorn.error").handlers


def test_a_line_quoting_an_error_is_redacted_too() -> None:
    from core.redact import RedactingFormatter

    answer = ("550 <a@b.nhs.uk>: no such user",)
    record = logging.LogRecord(
        "notifications", logging.WARNING, __file__, 1, "send failed: %s", answer, None
    )
    assert "a@b.nhs.uk" not in RedactingFormatter("%(message)s").format(record)


def test_the_command_line_logs_no_webhook_url() -> None:
    """httpx logs each request's URL at INFO, and a receiver's key may be in its query."""
    from service.cli import cli

    cli.callback(None, False)  # type: ignore[misc]  # the logging set-up every command runs
    for name in ("httpx", "httpcore"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)


def test_the_original_emails_are_the_service_users_alone(tmp_path: Path) -> None:
    """The reverse proxy joins the service's group to reach its socket: the raw store's
    files are neither the group's nor anyone else's to read, whatever the umask."""
    import os
    import stat

    from intake.rawstore import RawStore

    before = os.umask(0o022)
    try:
        (digest,) = RawStore(tmp_path / "raw").put_many([b"From: a@b.example\r\n\r\nHello"])
    finally:
        os.umask(before)
    path = RawStore(tmp_path / "raw").path_for(digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
