"""The one small interface every mailbox offers the poller (intake.pipeline opens one).

A source lists the UIDs in its inbox folder, fetches messages without marking them read,
and moves them to another folder. IMAP and Maildir implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import PcseError


class SourceError(PcseError):
    """The mailbox refused us (sign-in, missing folder): retrying will not help."""


class SourceUnavailable(SourceError):
    """The connection failed or dropped: worth retrying after a pause."""


@dataclass(frozen=True)
class Fetched:
    uid: int
    data: bytes | None  # None when the server could not give the message
    problem: str | None = None


class MailboxSource(Protocol):
    name: str

    def connect(self) -> None: ...

    def select(self) -> int:
        """Open the inbox folder; returns its UIDVALIDITY."""
        ...

    def uids(self) -> list[int]: ...

    def sizes(self, uids: Sequence[int]) -> dict[int, int]: ...

    def fetch(self, uids: Sequence[int]) -> list[Fetched]: ...

    def move(self, uids: Sequence[int], folder: str) -> None: ...

    def close(self) -> None: ...
