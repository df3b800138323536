"""Forms read ahead: a batch's attached forms read side by side, before the workflow asks.

Intake works a claimed batch one message at a time, and reading a form (its text and
fields, or OCR for a scan: up to a second of CPU) happens in a sandboxed worker while the
processing thread waits, so a backlog of forms kept one core busy. A `ReadAhead` hands the
batch's forms to as many threads as the worker pool has slots: the workers read them side
by side while the processing thread works through the messages before them.

Reading depends only on the document's bytes and the limits, so what was read ahead is what
the workflow would have read itself. A form asked for before its reading started is read
at once in the asking thread, as without a read-ahead; one being read is waited for; each
result is handed out once (the workflow may change what it is given), and a second copy of
the same document is read again. Documents waiting and readings never asked for (their
messages went to another worker) are held within bounds, the oldest let go first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from forms.model import ParsedRequest
from forms.sandbox import PdfLimits

Reader = Callable[[bytes, PdfLimits], ParsedRequest]

# Documents waiting to be read, and readings nobody took, held at most.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
MAX_READ_KEPT = 256


@dataclass
class _Job:
    data: bytes
    # Then "reading" (a read-ahead thread has it), "taken" (the caller reads it) or "dropped".
    state: str = "queued"
    result: ParsedRequest | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ReadAhead:
    """The forms of one batch, being read by up to `threads` threads with `read`."""

    def __init__(
        self, documents: Iterable[bytes], limits: PdfLimits, read: Reader, threads: int
    ) -> None:
        self.limits = limits
        self._read = read
        self._threads = threads
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._running = 0  # threads reading now
        self.add(documents)

    def add(self, documents: Iterable[bytes]) -> None:
        """Read these too, after those already queued."""
        with self._lock:
            for data in documents:
                key = _key(data)
                if key not in self._jobs:
                    self._jobs[key] = job = _Job(data)
                    self._queue.append(job)
            self._trim()
            starting = min(self._threads - self._running, len(self._queue))
            self._running += max(starting, 0)
        for _ in range(starting):
            # Daemon threads: a service stopping does not wait for forms nobody will ask for.
            threading.Thread(target=self._work, name="forms-ahead", daemon=True).start()

    def take(self, data: bytes, limits: PdfLimits) -> ParsedRequest | None:
        """The reading of `data` done ahead (waited for if under way); None when it was not
        started (the caller reads it now)."""
        if limits != self.limits:
            return None
        with self._lock:
            job = self._jobs.pop(_key(data), None)
            if job is None or job.state == "queued":
                if job is not None:
                    job.state = "taken"
                return None
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Read nothing more: the batch is over. Readings under way finish unheeded."""
        with self._lock:
            self._queue.clear()
            self._jobs.clear()

    def _trim(self) -> None:
        """Hold at most MAX_QUEUED_BYTES of documents waiting and MAX_READ_KEPT readings
        nobody took (their messages went to another worker, say): the oldest go first."""
        queued = sum(len(job.data) for job in self._queue if job.state == "queued")
        kept = sum(1 for job in self._jobs.values() if job.done.is_set())
        for key, job in list(self._jobs.items()):
            if job.state == "queued" and queued > MAX_QUEUED_BYTES:
                queued -= len(job.data)
                job.state = "dropped"
            elif job.done.is_set() and kept > MAX_READ_KEPT:
                kept -= 1
            else:
                continue
            del self._jobs[key]

    def _next(self) -> _Job | None:
        """The next job to read, or None (and this thread ends) when the queue is empty."""
        with self._lock:
            while self._queue:
                job = self._queue.popleft()
                if job.state == "queued":
                    job.state = "reading"
                    return job
            self._running -= 1
        return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                job.result = self._read(job.data, self.limits)
            except BaseException as exc:  # raised again in the thread that asks for it
                job.error = exc
            finally:
                job.data = b""  # read: only the reading is kept
                job.done.set()


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_CURRENT: ContextVar[ReadAhead | None] = ContextVar("forms_read_ahead", default=None)


def current() -> ReadAhead | None:
    """The read-ahead of the batch this thread is working, if any."""
    return _CURRENT.get()


@contextmanager
def reading(ahead: ReadAhead) -> Iterator[ReadAhead]:
    """Make `ahead` this thread's read-ahead for the block; closed as the block ends."""
    token = _CURRENT.set(ahead)
    try:
        yield ahead
    finally:
        _CURRENT.reset(token)
        ahead.close()
