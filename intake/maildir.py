"""A Maildir folder as a mailbox, for local use and the demo.

The inbox is the Maildir itself (or a Maildir++ sub-folder); "moving" a message renames its
file into a sub-Maildir such as .Processed. A file's UID is derived from its unique name,
so it is stable for as long as the file exists; UIDVALIDITY is always 1.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from intake.source import Fetched, SourceError

UIDVALIDITY = 1


def uid_for(key: str) -> int:
    """A 63-bit number from a Maildir unique name (fits a signed BIGINT)."""
    return (
        int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "big")
        >> 1
    )


def _folder_path(root: Path, folder: str) -> Path:
    if folder.upper() == "INBOX" or folder in ("", "."):
        return root
    return root / f".{folder.strip('.')}"


def _make_maildir(path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)


class MaildirSource:
    def __init__(self, name: str, path: str | os.PathLike[str], *, folder: str = "INBOX") -> None:
        self.name = name
        self.root = Path(path)
        self.inbox = _folder_path(self.root, folder)
        self._paths: dict[int, Path] = {}

    def connect(self) -> None:
        try:
            _make_maildir(self.inbox)
        except OSError as exc:
            raise SourceError(f"The Maildir {self.inbox} cannot be used: {exc}.") from exc

    def select(self) -> int:
        return UIDVALIDITY

    def uids(self) -> list[int]:
        self._paths = {}
        for sub in ("new", "cur"):
            try:
                names = os.listdir(self.inbox / sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                key = name.split(":", 1)[0]
                self._paths[uid_for(key)] = self.inbox / sub / name
        return sorted(self._paths)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for uid in uids:
            try:
                found[uid] = self._paths[uid].stat().st_size
            except (KeyError, OSError):
                continue
        return found

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        found: list[Fetched] = []
        for uid in uids:
            path = self._paths.get(uid)
            if path is None:
                continue
            try:
                found.append(Fetched(uid, path.read_bytes()))
            except FileNotFoundError:
                continue  # taken meanwhile
            except OSError as exc:
                found.append(Fetched(uid, None, f"the file could not be read: {exc.strerror}"))
        return found

    def move(self, uids: Sequence[int], folder: str) -> None:
        target = _folder_path(self.root, folder)
        _make_maildir(target)
        (target / "maildirfolder").touch(exist_ok=True)
        for uid in uids:
            path = self._paths.pop(uid, None)
            if path is None:
                continue
            name = path.name if ":" in path.name else f"{path.name}:2,S"
            try:
                os.replace(path, target / "cur" / name)
            except FileNotFoundError:
                continue

    def close(self) -> None:
        self._paths = {}
