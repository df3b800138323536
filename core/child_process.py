"""A sandboxed child process that answers requests over its stdin and stdout.

Code that reads hostile input (a PDF, an email's MIME structure) can run in a child of its
own: it caps its address space, file writes and core dumps before it reads anything, sees
none of the service's secrets, and a child that fails in any way is killed and replaced,
so a hostile file costs at most one child and a deadline, never the service.

Each request is a length-prefixed JSON header (with the size of the bytes that follow)
and those bytes; each answer is length-prefixed JSON. Never pickle: the answer comes from
code that has read hostile input.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

HEADER = struct.Struct(">I")
MAX_HEADER = 1 << 20

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60.0

# What a child may see of the service's environment: what Python and the C library need
# to run and find their files. Never the IMAP, SMTP, OAuth2, database or web secrets.
PASSED_ENVIRONMENT = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "HOME",
    "TMPDIR",
    "TZ",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "TESSDATA_PREFIX",  # where Tesseract's models are, when not where Debian puts them
)


class ChildDied(Exception):
    """The child stopped without answering; `signal` is the signal that ended it, if one
    did."""

    def __init__(self, message: str, signal: int | None = None) -> None:
        super().__init__(message)
        self.signal = signal


def child_environment() -> dict[str, str]:
    """The environment a child starts with."""
    env = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    # The project first, so that `python -m <module>` imports this checkout.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the child may write no files
    return env


# ----------------------------------------------------------------------- in the child


def limit_resources(memory_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The child never writes files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """The child's request and answer streams: the answers go to a private copy of stdout,
    and stray prints to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return sys.stdin.buffer, out


def send(out: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    out.write(HEADER.pack(len(body)) + body)
    out.flush()


def _read_exactly(inp: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = inp.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(inp: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next request and its bytes; None when the parent has gone."""
    head = _read_exactly(inp, HEADER.size)
    if head is None:
        return None
    (length,) = HEADER.unpack(head)
    if length > MAX_HEADER:
        return None
    raw = _read_exactly(inp, length)
    if raw is None:
        return None
    request = json.loads(raw)
    data = _read_exactly(inp, int(request["size"]))
    if data is None:
        return None
    return request, data


def refusal(code: str, detail: str, exc: BaseException | None = None) -> dict[str, Any]:
    """An answer refusing a document. `clean` when the refusal is the child's own check (an
    image too small to be a page, too many pages), raised with no failure of a parser behind
    it: the child may be kept for the next document, as after a reading (a new one costs a
    tenth of a second or more to start, and most emails carry a logo in their
    signature)."""
    clean = exc is None or (exc.__cause__ is None and exc.__context__ is None)
    return {"ok": False, "code": code, "detail": detail, "clean": clean}


# ---------------------------------------------------------------------- in the parent


class Child:
    """One child process (`python -m module *args`), answering one request at a time."""

    def __init__(self, module: str, *args: str) -> None:
        self.jobs = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_environment(),
            cwd=str(PROJECT_ROOT),
        )
        try:
            ready = self.receive(time.monotonic() + START_TIMEOUT_SECONDS)
        except (TimeoutError, ChildDied):
            self.kill()
            raise
        if not ready.get("ready"):
            self.kill()
            raise ChildDied(f"{module} did not start")

    def request(self, header: dict[str, Any], data: bytes, timeout: float) -> dict[str, Any]:
        """Send one request and wait for the answer; raises TimeoutError or ChildDied."""
        self.jobs += 1
        body = json.dumps({"size": len(data), **header}).encode()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(HEADER.pack(len(body)) + body)
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: its pipe closed by the pool
            raise ChildDied("the child stopped") from exc
        return self.receive(time.monotonic() + timeout)

    def receive(self, deadline: float) -> dict[str, Any]:
        head = self._read(HEADER.size, deadline)
        (length,) = HEADER.unpack(head)
        if length > MAX_HEADER * 64:
            raise ChildDied("the child answered nonsense")
        answer = json.loads(self._read(length, deadline))
        if not isinstance(answer, dict):
            raise ChildDied("the child answered nonsense")
        return answer

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        chunks: list[bytes] = []
        try:
            fd = self.process.stdout.fileno()
            while size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                readable, _, _ = select.select([fd], [], [], remaining)
                if not readable:
                    raise TimeoutError
                chunk = os.read(fd, min(size, 1 << 20))
                if not chunk:
                    code = self.process.wait(timeout=5)
                    raise ChildDied(
                        f"the child stopped ({_exit_status(code)})",
                        signal=-code if code < 0 else None,
                    )
                chunks.append(chunk)
                size -= len(chunk)
        except TimeoutError:  # an OSError too: the deadline, raised above
            raise
        except (ValueError, OSError) as exc:
            # Its pipe closed under this thread: the pool killed it (the process is ending).
            raise ChildDied("the child was stopped") from exc
        return b"".join(chunks)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _exit_status(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit status {code}"
