"""`pcse serve` believes X-Forwarded-For and X-Forwarded-Proto only from the reverse
proxies named in [web] trusted_proxies; with none named, from nobody."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from caseworker.serving import server_config
from service.config import from_mapping
from tests.fixtures.browser import free_port

FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


async def echo(scope: dict, receive, send) -> None:
    """Says which client address and scheme the application was told."""
    if scope["type"] != "http":
        return
    body = f"{scope['client'][0]} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(trusted: list[str] | None) -> Iterator[str]:
    port = free_port()
    config = server_config(
        echo, host="127.0.0.1", port=port, log_level="warning", trusted_proxies=trusted
    )
    config.lifespan = "off"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("trusted", [None, [], ["10.0.0.5"]])
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(trusted: list[str] | None) -> None:
    with serving(trusted) as url:
        assert httpx.get(url, headers=FORGED).text == "127.0.0.1 http"


def test_forwarded_headers_from_the_trusted_proxy_are_believed() -> None:
    with serving(["127.0.0.1"]) as url:
        assert httpx.get(url, headers=FORGED).text == "203.0.113.9 https"
        assert httpx.get(url).text == "127.0.0.1 http"


def test_the_config_key_lists_the_proxies() -> None:
    config = from_mapping({"web": {"trusted_proxies": ["127.0.0.1", "::1"]}})
    assert config.web.trusted_proxies == ["127.0.0.1", "::1"]
    assert from_mapping({}).web.trusted_proxies == []
