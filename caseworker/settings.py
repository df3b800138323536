"""The [web] section: where the caseworker pages listen, and how sessions are kept."""

from __future__ import annotations

import ipaddress
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
    # Serve on this Unix socket instead of host:port (nginx: proxy_pass http://unix:PATH:).
    # Whoever can connect to it is the reverse proxy, and its forwarded headers are believed;
    # the socket's folder decides who can.
    unix_socket: str = ""


def invalid_proxies(entries: object) -> list[str]:
    """The entries of trusted_proxies that are not an IP address or network ("*", host
    names and typing errors would otherwise be taken as literal names, or as everyone)."""
    if not isinstance(entries, list):
        return [repr(entries)]
    bad: list[str] = []
    for entry in entries:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except (AttributeError, ValueError):
            bad.append(repr(entry))
    return bad
