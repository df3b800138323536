"""The [web] section: where the caseworker pages listen, and how sessions are kept."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key_env: str = "PCSE_WEB_SECRET"
    # Secure cookies are always set when served over TLS; force them behind a TLS proxy.
    secure_cookies: bool = False
    # However active, a caseworker signs in again after this long (idle sessions end sooner).
    session_absolute_hours: float = 12
    # Addresses of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are
    # believed (e.g. ["127.0.0.1"] for nginx on the same machine). Empty: no forwarded
    # header is believed, from anyone.
    trusted_proxies: list[str] = field(default_factory=list)
