"""The one small interface every mailbox offers the poller, and how one is opened from config.

A source lists the UIDs in its inbox folder, fetches messages without marking them read,
and moves them to another folder. IMAP and Maildir implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from workflow.errors import PcseError

if TYPE_CHECKING:
    from service.config import MailboxConfig


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


def open_source(box: MailboxConfig) -> MailboxSource:
    """A (not yet connected) source for one [[mailboxes]] entry."""
    if box.maildir:
        from intake.maildir import MaildirSource

        return MaildirSource(box.name, box.maildir, folder=box.folder)
    from intake.imap import ImapSource, credentials_for

    return ImapSource.from_config(box, credentials_for(box))
