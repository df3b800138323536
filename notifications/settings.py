"""What notifications need to know: the SMTP server ([smtp]) and the replies ([notifications])."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

# The sender starts no message within this many timeouts and 30 s of the end of its claim's
# lease (notifications.sender.LEASE, 10 minutes): each step of a message may take one (the
# last message's answer, the three envelope answers, the data, its end, its answer).
SMTP_STEPS_PER_MESSAGE = 7
# The longest [smtp] timeout_seconds allowed: 7 × 80 + 30 leaves 10 s of the lease.
MAX_SMTP_TIMEOUT = 80


@dataclass
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    from_address: str = "pcse.portalenquiries@nhs.net"
    from_name: str = "PCSE Online user management"
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    auth: str = "none"  # "none", "password" or "oauth2" (shares the first mailbox's provider)
    password: str | None = None
    password_env: str | None = None
    timeout_seconds: float = 30.0  # at most MAX_SMTP_TIMEOUT
    batch_size: int = 200

    def secret(self) -> str | None:
        if self.password is not None:
            return self.password
        if self.password_env:
            return os.environ.get(self.password_env)
        return None


@dataclass
class NotificationsConfig:
    templates_dir: str | None = None
    max_replies_per_hour: int = 5


class SenderConfig(Protocol):
    """The settings the outbox sender reads (service.config.Config provides them)."""

    @property
    def smtp(self) -> SmtpConfig: ...
