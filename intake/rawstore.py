"""Raw message bytes on disk, one file per sha256, durable before the ledger row is committed.

Files are written under a temporary name, flushed to disk, then renamed, so a name that
exists always holds complete bytes. A batch costs one filesystem sync (syncfs on Linux)
rather than one fsync per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from core.errors import PcseError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RawStoreError(PcseError, OSError):
    """The raw store cannot take new mail (disk full, not writable)."""


class RawMissing(PcseError, LookupError):
    def __init__(self, sha256: str) -> None:
        super().__init__(f"The raw message {sha256[:12]}… is not in the raw store.")
        self.sha256 = sha256


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_syncfs = _load_syncfs()


class RawStore:
    """`RawStore(path).get(sha256) -> bytes`; `put_many` makes new blobs durable together."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def get(self, sha256: str) -> bytes:
        try:
            return self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise RawMissing(sha256) from None

    def put(self, data: bytes) -> str:
        return self.put_many([data])[0]

    def put_many(self, blobs: Iterable[bytes]) -> list[str]:
        """Store each blob (if not already stored); all are on disk when this returns.

        Raises RawStoreError (the disk is full, say) having removed whatever it had
        written, so a failed attempt leaves no partly written files taking up room.
        """
        pending: list[tuple[Path, Path, int]] = []
        try:
            return self._put_many(blobs, pending)
        except OSError as exc:
            for temp, _, _ in pending:
                with contextlib.suppress(OSError):
                    temp.unlink()
            raise RawStoreError(
                f"The raw store at {self.root} cannot take new mail "
                f"({exc.strerror or exc}); new mail stays in the mailbox until it can."
            ) from exc

    def _put_many(self, blobs: Iterable[bytes], pending: list[tuple[Path, Path, int]]) -> list[str]:
        digests: list[str] = []
        seen: set[str] = set()
        for data in blobs:
            digest = sha256_of(data)
            digests.append(digest)
            if digest in seen:
                continue
            seen.add(digest)
            final = self.path_for(digest)
            if final.exists():
                continue
            # The original emails are for the service's own user only (pcse serve runs as
            # it too): not the group, which the reverse proxy joins to reach the socket.
            final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp = final.with_name(f".{digest}.{uuid.uuid4().hex[:8]}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            pending.append((temp, final, len(data)))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if _syncfs is None:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if not pending:
            return digests
        self._sync([temp for temp, _, _ in pending])
        for temp, final, _ in pending:
            os.replace(temp, final)
        self._sync_dirs({final.parent for _, final, _ in pending})
        return digests

    def _sync(self, files: list[Path]) -> None:
        """Flush file contents: one syncfs for the whole filesystem where Linux offers it."""
        if _syncfs is None:
            return  # already fsynced one by one
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _syncfs(fd) != 0:
                for path in files:
                    _fsync_path(path)
        finally:
            os.close(fd)

    def _sync_dirs(self, dirs: set[Path]) -> None:
        """Make the renames durable."""
        if _syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if _syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        for directory in dirs:
            _fsync_path(directory)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
