"""`pcse serve` believes X-Forwarded-For and X-Forwarded-Proto only from the reverse
proxies named in [web] trusted_proxies; with none named, from nobody."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from caseworker.serving import server_config
from service.config import ConfigError, from_mapping
from tests.fixtures.browser import free_port

FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


async def echo(scope: dict, receive, send) -> None:
    """Says which client address and scheme the application was told."""
    if scope["type"] != "http":
        return
    client = scope["client"][0] if scope.get("client") else "unknown"
    body = f"{client} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(trusted: list[str] | None, unix_socket: str | None = None) -> Iterator[str]:
    port = free_port()
    config = server_config(
        echo,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        trusted_proxies=trusted,
        unix_socket=unix_socket,
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


def test_a_network_is_trusted_written_as_any_address_in_it() -> None:
    with serving(["127.0.0.1/8"]) as url:
        assert httpx.get(url, headers=FORGED).text == "203.0.113.9 https"


@pytest.mark.parametrize(
    "entry", ["*", "localhost", "nginx.internal", "127.0.0.300", "10.0.0.0/33", ""]
)
def test_a_trusted_proxy_must_be_an_ip_address_or_network(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"\[web\] trusted_proxies") as refused:
        from_mapping({"web": {"trusted_proxies": ["127.0.0.1", entry]}})
    assert repr(entry) in str(refused.value)


def test_on_a_unix_socket_the_proxy_is_the_peer_and_its_last_forwarded_address_counts(
    tmp_path: Path,
) -> None:
    socket_path = str(tmp_path / "web.sock")
    with serving(None, unix_socket=socket_path) as tcp_url:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket_path)) as client:
            assert client.get("http://pcse/", headers=FORGED).text == "203.0.113.9 https"
            # A chain a client sent before the proxy's own entry: the proxy's counts.
            chain = {"X-Forwarded-For": "198.51.100.1, 2001:db8::5"}
            assert client.get("http://pcse/", headers=chain).text == "2001:db8::5 http"
            assert client.get("http://pcse/").text == "unknown http"
            not_an_address = {"X-Forwarded-For": "evil.example"}
            assert client.get("http://pcse/", headers=not_an_address).text == "unknown http"
        # Nothing listens on TCP.
        with pytest.raises(httpx.ConnectError):
            httpx.get(tcp_url, headers=FORGED)


def test_the_unix_socket_is_a_config_key() -> None:
    config = from_mapping({"web": {"unix_socket": "/run/pcse-web/web.sock"}})
    assert config.web.unix_socket == "/run/pcse-web/web.sock"
    assert from_mapping({}).web.unix_socket == ""
