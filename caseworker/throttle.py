"""Limits on password checks: attempts per client address and overall in a sliding window,
and how many Argon2 hashes run at once (each takes 64 MiB and tens of milliseconds of a core).

Both run in the event loop before any hash is computed, so a flood of sign-in attempts is
refused cheaply and never queues up in the thread pool the pages share.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from starlette.types import Scope


class HashBusy(Exception):
    """Every Argon2 slot stayed taken for longer than a request should wait."""


@dataclass(frozen=True)
class Refusal:
    """Over a limit: try again after this many seconds."""

    retry_after: int


class SlidingWindowLimiter:
    """At most `per_client` attempts from one client address, and `overall` attempts in all,
    within any `window` seconds. Times come from the caller (the app's clock)."""

    def __init__(self, *, per_client: int, overall: int, window: float) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window = window
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def attempt(self, client: str, now: float, *, shared: bool = True) -> Refusal | None:
        """Record an attempt, or say how long to wait when it is over a limit; without
        `shared`, the overall limit is not applied to this attempt (it is still counted).
        A refused attempt is not recorded, so a flood does not extend its own wait."""
        with self._lock:
            self._forget_before(now - self.window)
            mine = self._clients.get(client, deque())
            limits = [(mine, self.per_client)] + ([(self._all, self.overall)] if shared else [])
            for times, limit in limits:
                if len(times) >= limit:
                    return Refusal(max(1, math.ceil(times[0] + self.window - now)))
            mine.append(now)
            self._all.append(now)
            self._clients[client] = mine
            return None

    def _forget_before(self, cutoff: float) -> None:
        _drop_older(self._all, cutoff)
        # Only admitted attempts are kept, so there are never more than `overall` clients.
        for client in list(self._clients):
            times = self._clients[client]
            _drop_older(times, cutoff)
            if not times:
                del self._clients[client]


def _drop_older(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()


class FailureWindow:
    """Failures counted per key (an account) within a sliding `window` of seconds: a known
    browser's own allowance of wrong passwords, kept apart from the account's lock-out."""

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: int, now: float) -> bool:
        """Count a try as failed before it is made, if the allowance has room: parallel
        tries cannot all pass the check before any is counted. release() takes back the
        reservation of a try that did not fail."""
        with self._lock:
            times = self._failures.setdefault(key, deque())
            _drop_older(times, now - self.window)
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True

    def release(self, key: int, now: float) -> None:
        with self._lock:
            times = self._failures.get(key)
            if times and now in times:
                times.remove(now)


class HashGate:
    """At most `limit` password hashes at once. A request waits up to `wait` seconds for a
    slot in the event loop (holding no thread), then gives up with HashBusy."""

    def __init__(self, limit: int = 2, wait: float = 2.0, poll: float = 0.02) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self.wait = wait
        self.poll = poll

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        # A threading semaphore polled from async code works whichever event loop (or
        # test client thread) the request runs on.
        deadline = time.monotonic() + self.wait
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise HashBusy()
            await anyio.sleep(self.poll)
        try:
            yield
        finally:
            self._slots.release()


def client_address(scope: Scope) -> str:
    """The address the connection came from. Behind a reverse proxy, uvicorn has already
    put the X-Forwarded-For address here when the proxy is one it trusts
    (FORWARDED_ALLOW_IPS, 127.0.0.1 by default); the app trusts no header itself."""
    client = scope.get("client")
    return client[0] if client else "unknown"


# An IPv6 client is given a /64 (one network, from which it can pick any of 2^64 addresses),
# so it is limited as one client, not one per address it rotates through.
IPV6_CLIENT_PREFIX = 64


def client_key(scope: Scope) -> str:
    """Who a per-client limit counts: the IPv4 address, or the /64 of an IPv6 one (an
    IPv4-mapped IPv6 address is its IPv4 address); anything else as it is."""
    address = client_address(scope)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)
