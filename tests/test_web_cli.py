"""`pcse serve` and the session signing key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from caseworker.secretkey import signing_key
from service.config import Config, ConfigError, WebConfig
from tests.fixtures.browser import free_port


def test_the_key_comes_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    config = Config(web=WebConfig(secret_key_env="PCSE_TEST_WEB_KEY"))
    monkeypatch.setenv("PCSE_TEST_WEB_KEY", "k" * 40)
    assert signing_key(config, tmp_path / "key") == "k" * 40
    assert not (tmp_path / "key").exists()
    monkeypatch.setenv("PCSE_TEST_WEB_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        signing_key(config, tmp_path / "key")


def test_without_the_variable_a_local_key_is_made_once(monkeypatch, tmp_path: Path) -> None:
    config = Config(web=WebConfig(secret_key_env="PCSE_TEST_WEB_KEY"))
    monkeypatch.delenv("PCSE_TEST_WEB_KEY", raising=False)
    path = tmp_path / "var" / "web-secret.key"
    first = signing_key(config, path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(config, path) == first


@pytest.mark.parametrize("kept", ["", "\n", "short-key\n"])
def test_a_local_key_file_too_short_is_refused(monkeypatch, tmp_path: Path, kept: str) -> None:
    """An empty or short key would let anyone sign a session cookie."""
    config = Config(web=WebConfig(secret_key_env="PCSE_TEST_WEB_KEY"))
    monkeypatch.delenv("PCSE_TEST_WEB_KEY", raising=False)
    path = tmp_path / "web-secret.key"
    path.write_text(kept, encoding="utf-8")
    with pytest.raises(ConfigError, match="under 32"):
        signing_key(config, path)


def test_the_session_middleware_refuses_a_short_key() -> None:
    from caseworker.sessions import SignedSessionMiddleware

    with pytest.raises(ValueError, match="32"):
        SignedSessionMiddleware(lambda *_: None, secret_key="")  # type: ignore[arg-type]


def test_pcse_serve_serves_the_sign_in_page(tmp_path: Path) -> None:
    pcse = str(Path(sys.executable).parent / "pcse")
    env = {k: v for k, v in os.environ.items() if k not in ("PCSE_WEB_SECRET", "PCSE_CONFIG")}
    subprocess.run(
        [pcse, "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60
    )
    port = free_port()
    server = subprocess.Popen(
        [pcse, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page = _get(f"http://127.0.0.1:{port}/sign-in", deadline=time.monotonic() + 20)
        assert "Sign in" in page
        redirect = urllib.request.Request(f"http://127.0.0.1:{port}/")
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(redirect, timeout=5)
        assert answer.value.code == 303
        assert answer.value.headers["location"].endswith("/sign-in")
        assert (tmp_path / "var" / "web-secret.key").exists()
    finally:
        server.terminate()
        server.wait(timeout=10)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
