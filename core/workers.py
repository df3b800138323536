"""Worker identities for row claims, and telling when a worker on this host has died.

A claim records `host:pid:suffix`. A worker killed outright (SIGKILL, the OOM killer, a
power cut of its container) leaves its claims behind until their lease runs out; when the
claim was made on this host and that process no longer exists, its rows can be taken
back at once. Anything else (another host, an identity in another form, a pid that now
belongs to some other process) counts as alive, and its claims wait for their lease.
Every later update of a claimed row is guarded by the worker's identity, so a worker
wrongly thought dead can only lose its work, never do it twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection

_HOST_CHARS = 60


def this_host() -> str:
    return socket.gethostname()[:_HOST_CHARS]


def worker_id() -> str:
    """Unique per process: host, pid and a random suffix."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def gone(worker: str | None) -> bool:
    """True only when `worker` was a process on this host that no longer exists."""
    if not worker:
        return False
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != this_host() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    return not _process_exists(pid)


def left_by_this_process(worker: str | None, ended: Collection[str]) -> bool:
    """True when `worker` is an identity this very process used for work that stopped on
    an error (`ended` lists those): claims it left, for example because the database went
    away, are this process's own to take back. Identities still at work are never in
    `ended`, so a sender that starts meanwhile keeps its claims."""
    if not worker or worker not in ended:
        return False
    parts = worker.rsplit(":", 2)
    return len(parts) == 3 and parts[0] == this_host() and parts[1] == str(os.getpid())
