"""Forms read ahead: a batch's attached forms read side by side, before the workflow asks.

Intake works a claimed batch one message at a time, and reading a form (its text and
fields, or OCR for a scan: up to a second of CPU) happens in a sandboxed worker while the
processing thread waits, so a backlog of forms kept one core busy. A `ReadAhead` hands the
batch's forms to as many threads as the worker pool has slots: the workers read them side
by side while the processing thread works through the messages before them.

Reading depends only on the document's bytes and the limits, so what was read ahead is what
the workflow would have read itself. A form asked for before its reading started is read
next, ahead of the others waiting; one being read is waited for; each result is handed out
once (the workflow may change what it is given), and a second copy of the same document,
or one never handed to the read-ahead, is read by the asking thread. Documents waiting and
readings never asked for (their messages went to another worker) are held within bounds.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
    key: str
    queued: bool = True  # waiting its turn; False once a thread reads it, or it is dropped
    result: ParsedRequest | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ReadAhead:
    """Forms being read ahead for one run of the processor, by up to `threads` threads
    with `read`."""

    def __init__(
        self,
        documents: Iterable[bytes],
        limits: PdfLimits,
        read: Reader,
        threads: int,
        guard: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.limits = limits
        self._read = read
        # Around each reading in a read-ahead thread: the CPU budget the reading would have
        # had in the thread that asks for it (its Python half runs here now).
        self._guard = guard
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
                    self._jobs[key] = job = _Job(data, key)
                    self._queue.append(job)
            self._trim()
            starting = min(self._threads - self._running, len(self._queue))
            self._running += max(starting, 0)
        for _ in range(starting):
            # Daemon threads: a service stopping does not wait for forms nobody will ask for.
            threading.Thread(target=self._work, name="forms-ahead", daemon=True).start()

    def take(self, data: bytes, limits: PdfLimits) -> ParsedRequest | None:
        """The reading of `data` done ahead, waited for if under way, or read next if still
        waiting its turn; None when it was never asked for (the caller reads it now)."""
        if limits != self.limits:
            return None
        with self._lock:
            job = self._jobs.pop(_key(data), None)
            if job is None:
                return None
            if job.queued:
                # Wanted now: ahead of every other waiting document.
                self._queue.remove(job)
                self._queue.appendleft(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # None when it was dropped: the caller reads it

    def close(self) -> None:
        """Read nothing more: the run is over. Readings under way finish unheeded (a
        process that ends kills its PDF workers, busy or not: forms.sandbox)."""
        with self._lock:
            for job in self._queue:
                job.queued, job.data = False, b""
                job.done.set()
            self._queue.clear()
            self._jobs.clear()

    def _trim(self) -> None:
        """Hold at most MAX_QUEUED_BYTES of documents waiting, letting go of those furthest
        ahead (asked for last), and MAX_READ_KEPT readings nobody took (their messages went
        to another worker, say), the oldest first."""
        queued = sum(len(job.data) for job in self._queue)
        while self._queue and queued > MAX_QUEUED_BYTES:
            job = self._queue.pop()
            queued -= len(job.data)
            job.queued, job.data = False, b""
            job.done.set()  # anyone waiting for it reads it themselves
            self._jobs.pop(job.key, None)
        finished = [key for key, job in self._jobs.items() if job.done.is_set()]
        for key in finished[: max(0, len(finished) - MAX_READ_KEPT)]:
            del self._jobs[key]

    def _next(self) -> _Job | None:
        """The next job to read, or None (and this thread ends) when the queue is empty."""
        with self._lock:
            if self._queue:
                job = self._queue.popleft()
                job.queued = False
                return job
            self._running -= 1
        return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                with self._guard():
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
    """The read-ahead of the run this thread is working, if any."""
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
