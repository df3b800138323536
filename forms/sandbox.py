"""Run the PDF extractor in a child process with time, memory and page limits.

A few pre-started workers (forms/pdf_worker.py, run as core.child_process runs a child)
are kept and reused, so a form costs one round trip rather than a new interpreter. A
worker that runs out of time is killed; one whose reading failed is replaced, so a hostile
file can cost at most one worker and the time limit, never the caller. A worker is kept
after a reading, and after a refusal by its own checks (core.child_process.refusal),
unless its memory has grown past half its limit.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from core.child_process import Child, ChildDied
from core.errors import PcseError

# A worker is replaced after this many documents, to bound slow leaks in the parser.
JOBS_PER_WORKER = 500
# A worker whose memory has grown past this share of its limit is replaced: what its
# documents left there (pdfminer keeps every name it has read, for the life of the
# process) must not leave the next form too little room to be read.
KEEP_BELOW_SHARE = 0.5


@dataclass(frozen=True)
class PdfLimits:
    """How much a single PDF may cost: wall time, address space of the worker, pages."""

    timeout_seconds: float = 15.0
    memory_mb: int = 512
    max_pages: int = 20
    # Reading a scan by OCR: the wall time for the whole document, the pages it may have,
    # and the confidence (0–100) under which a value read goes to a person.
    ocr_timeout_seconds: float = 60.0
    ocr_max_pages: int = 6
    ocr_min_confidence: float = 88.0

    @classmethod
    def from_config(cls, limits: Any) -> PdfLimits:
        """From the service's [limits] section (service.config.LimitsConfig)."""
        return cls(
            timeout_seconds=float(limits.pdf_timeout_seconds),
            memory_mb=int(limits.pdf_memory_mb),
            max_pages=int(limits.pdf_max_pages),
            ocr_timeout_seconds=float(limits.ocr_timeout_seconds),
            ocr_max_pages=int(limits.ocr_max_pages),
            ocr_min_confidence=float(limits.ocr_min_confidence),
        )


@dataclass(frozen=True)
class WorkerFailure:
    code: str  # finding code: pdf_timeout, pdf_unreadable, pdf_too_large
    detail: str


WorkerDied = ChildDied


class PdfReaderUnavailable(PcseError, RuntimeError):
    """The sandboxed reader itself cannot run (not a property of any file)."""


class Worker(Child):
    """One child process reading PDFs one at a time."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        super().__init__("forms.pdf_worker", str(memory_mb))

    def run(
        self, data: bytes, limits: PdfLimits, marks: list[str], job: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send one document and wait for the answer; raises TimeoutError or WorkerDied.
        `job` says what to do with it when that is not reading a PDF's fields and text
        ({"op": "ocr"} or {"op": "render", "page": 0, "width": 800})."""
        timeout = limits.ocr_timeout_seconds if job else limits.timeout_seconds
        return self.request(
            {"max_pages": limits.max_pages, "marks": marks, **(job or {})}, data, timeout
        )


class WorkerPool:
    """Idle workers kept for reuse; each call borrows one, so threads may read in parallel,
    up to `size` at once (further callers wait their turn)."""

    def __init__(self, size: int | None = None) -> None:
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()  # lent out: killed too when the process ends
        self._lock = threading.Lock()
        self.size = size or max(2, os.cpu_count() or 2)
        self._slots = threading.BoundedSemaphore(self.size)
        self.peak_worker_rss_kb = 0
        self.worker_cpu_seconds = 0.0  # CPU the workers spent on documents, for benchmarks

    def _borrow(self, memory_mb: int) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive and worker.memory_mb == memory_mb:
                    self._busy.add(worker)
                    return worker
                worker.kill()
        worker = Worker(memory_mb)
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give_back(self, worker: Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if worker.jobs < JOBS_PER_WORKER and worker.alive:
                self._idle.append(worker)
                return
        worker.kill()

    def run(
        self, data: bytes, limits: PdfLimits, marks: list[str], job: dict[str, Any] | None = None
    ) -> dict[str, Any] | WorkerFailure:
        with self._slots:
            return self._run(data, limits, marks, job)

    def _run(
        self, data: bytes, limits: PdfLimits, marks: list[str], job: dict[str, Any] | None
    ) -> dict[str, Any] | WorkerFailure:
        try:
            worker = self._borrow(limits.memory_mb)
        except (TimeoutError, WorkerDied) as exc:
            raise PdfReaderUnavailable(
                "The PDF reader could not start; check the [limits] pdf_memory_mb setting."
            ) from exc
        try:
            result = worker.run(data, limits, marks, job)
        except TimeoutError:
            self._discard(worker)
            timeout = limits.ocr_timeout_seconds if job else limits.timeout_seconds
            return WorkerFailure("pdf_timeout", f"no answer within {timeout:g} s")
        except WorkerDied as exc:
            self._discard(worker)
            if exc.signal == signal.SIGABRT:
                # pdfium (C++) aborts when an allocation fails, where Python would raise
                # MemoryError: under the worker's memory limit, that is what ended it.
                return WorkerFailure("pdf_too_large", f"memory limit reached ({exc})")
            return WorkerFailure("pdf_unreadable", str(exc))
        except BaseException:
            self._discard(worker)
            raise
        self.peak_worker_rss_kb = max(self.peak_worker_rss_kb, int(result.get("maxrss_kb", 0)))
        self.worker_cpu_seconds += float(result.get("cpu_seconds", 0.0))
        if (result.get("ok") or result.get("clean") is True) and not _grown(result, limits):
            self._give_back(worker)
        else:
            # After a failure (memory exhausted, deep recursion) start afresh.
            self._discard(worker)
        return result

    def _discard(self, worker: Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def close(self) -> None:
        """Kill every worker, idle or busy: called as the process ends, when a reading
        still under way (forms.readahead) has no one left to wait for it."""
        with self._lock:
            workers, self._idle = [*self._idle, *self._busy], []
            self._busy.clear()
        for worker in workers:
            worker.kill()


def _grown(result: dict[str, Any], limits: PdfLimits) -> bool:
    """Whether the worker's resident memory has passed KEEP_BELOW_SHARE of its limit."""
    return int(result.get("rss_kb", 0)) > limits.memory_mb * 1024 * KEEP_BELOW_SHARE


POOL = WorkerPool()
atexit.register(POOL.close)
