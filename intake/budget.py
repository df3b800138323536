"""A time budget per message: a watchdog stops the work on a message that runs too long.

Messages are processed in a worker thread (`pcse run` shares its process with IDLE, the
outbox sender and the scheduler), so a signal (delivered to the main thread only) cannot
interrupt one, and a thread cannot be killed. Instead a watchdog thread raises
MessageTooSlow in the worker's thread when its budget is spent
(PyThreadState_SetAsyncExc). Python delivers it between two bytecodes: it stops any loop
of Python code (the email package, the readers of forms, the workflow), but a single call
into C runs to its end first. That is why every pattern applied to what a sender wrote is
linear and its input capped, and why PDFs are read in a child process with a deadline of
its own.

The budget counts the CPU time of the worker's thread (where the platform offers a clock
for it), not the time on the wall: waiting for the database, the PDF reader or a busy
machine is not the message's doing, and must not park it.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class MessageTooSlow(BaseException):
    """Raised in a worker thread whose message has spent its budget. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way can swallow it."""


@dataclass
class _Entry:
    thread: int
    clock: Callable[[], float]
    deadline: float  # on `clock`
    fired: bool = False


def thread_clock() -> Callable[[], float]:
    """The calling thread's CPU time, read from any thread; the monotonic clock where the
    platform has no such clock."""
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock_id)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock_id)


def _raise_in(thread: int, exception: type[BaseException] | None) -> None:
    """Schedule `exception` in `thread` (None withdraws one not yet raised)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exception) if exception else None
    )


class Watchdog:
    """One daemon thread that watches every budget of the process."""

    def __init__(self) -> None:
        # Taken by the watched threads with `with self._lock`, never through the Condition:
        # a plain lock's __enter__ is one call into C, so MessageTooSlow, which may land in
        # a watched thread at any bytecode, cannot land after the lock is taken and before
        # the block that releases it (as it can inside Condition.__enter__, leaving the
        # lock held, the watchdog stuck and every budget in the process with it).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._entries: dict[int, _Entry] = {}
        self._serial = 0
        self._thread: threading.Thread | None = None
        # When the watchdog looks next (monotonic), None while it waits for work.
        self._wakes_at: float | None = None

    @contextmanager
    def limit(self, seconds: float | None) -> Iterator[None]:
        """Raise MessageTooSlow in this thread if the block spends more than `seconds` of
        its CPU time; None or 0 sets no limit. One budget per thread at a time: an outer
        budget's stop could land in an inner one's bookkeeping, so budgets do not nest."""
        if not seconds or seconds <= 0:
            yield
            return
        clock = thread_clock()
        entry = _Entry(threading.get_ident(), clock, clock() + seconds)
        with self._lock:
            self._serial += 1
            serial = self._serial
            self._entries[serial] = entry
            self._start()
            # CPU time runs no faster than the wall clock: a watchdog that looks again
            # before `seconds` have passed will see this budget in time. Not waking it
            # for every message saves a thread switch per message.
            if self._wakes_at is None or self._wakes_at > time.monotonic() + seconds:
                self._wake.notify()
        try:
            yield
        finally:
            with self._lock:
                self._entries.pop(serial, None)
            if entry.fired:
                # Raised already (and on its way out now), or about to be: withdraw it, so
                # that it cannot surface after the block, in code that does not expect it.
                _raise_in(entry.thread, None)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._watch, name="message-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        with self._wake:
            while True:
                wait = self._check()
                self._wakes_at = None if wait is None else time.monotonic() + wait
                self._wake.wait(wait)

    def _check(self) -> float | None:
        """Fire what is due; how long until the next budget could be spent."""
        wait: float | None = None
        for serial, entry in list(self._entries.items()):
            try:
                left = entry.deadline - entry.clock()
            except OSError:  # its thread has ended: a budget left behind, with no one to stop
                del self._entries[serial]
                continue
            if left <= 0:
                entry.fired = True
                del self._entries[serial]
                _raise_in(entry.thread, MessageTooSlow)
                continue
            # CPU time runs no faster than the wall clock: nothing is due before then.
            wait = left if wait is None else min(wait, left)
        return wait


WATCHDOG = Watchdog()
