"""The [[webhooks]] entries: receivers of the change feed, each POSTed every change."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class WebhookConfig:
    name: str = ""
    url: str = ""
    # The shared secret the body is signed with (HMAC-SHA256): from the environment
    # variable named here, or (for tests) given in the file.
    secret_env: str | None = None
    secret: str | None = None
    # Tries before a delivery is marked failed; the receiver's later changes then wait
    # (in order) until an operator retries it.
    max_attempts: int = 8
    timeout_seconds: float = 10
    # Waits between tries double from this, up to an hour.
    first_retry_seconds: float = 30

    def secret_value(self) -> str | None:
        if self.secret is not None:
            return self.secret
        if self.secret_env:
            return os.environ.get(self.secret_env)
        return None
