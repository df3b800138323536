"""forms.readahead: a batch's forms read side by side, each handed out once, and what was
not started yet read by the thread that asks, as without a read-ahead.

The reader here is a plain function standing in for the sandbox (what it reads is not the
subject); tests/test_workflow_mail.py reads real forms ahead through the whole intake.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from forms import PdfLimits, PdfReaderUnavailable, ReadAhead, readahead, reading
from forms.model import ParsedRequest
from forms.readahead import current
from forms.sandbox import WorkerFailure, WorkerPool
from intake.budget import WATCHDOG, MessageTooSlow

LIMITS = PdfLimits()
CORPUS = Path(__file__).parent / "corpus" / "forms"


def named(data: bytes, limits: PdfLimits) -> ParsedRequest:
    return ParsedRequest(
        kind=None, fields={"read": data.decode(), "by": threading.current_thread().name}
    )


def test_forms_are_read_side_by_side_and_each_handed_out_once() -> None:
    both = threading.Barrier(2, timeout=10)  # broken unless two readings run at once

    def together(data: bytes, limits: PdfLimits) -> ParsedRequest:
        both.wait()
        return named(data, limits)

    ahead = ReadAhead([b"one", b"two"], LIMITS, together, threads=2)
    first, second = ahead.take(b"one", LIMITS), ahead.take(b"two", LIMITS)
    assert first is not None and second is not None
    assert (first.fields["read"], second.fields["read"]) == ("one", "two")
    assert {first.fields["by"], second.fields["by"]} == {"forms-ahead"}  # not the caller
    assert ahead.take(b"one", LIMITS) is None  # handed out once: a second copy is read again


def test_a_form_asked_for_before_its_turn_is_read_next() -> None:
    release = threading.Event()
    started = threading.Event()
    order: list[str] = []

    def slow(data: bytes, limits: PdfLimits) -> ParsedRequest:
        order.append(data.decode())
        if data == b"first":
            started.set()
            release.wait(10)
        return named(data, limits)

    ahead = ReadAhead([b"first", b"second", b"third"], LIMITS, slow, threads=1)
    assert started.wait(10)
    asking = threading.Thread(target=lambda: ahead.take(b"third", LIMITS))
    asking.start()
    for _ in range(500):  # until the asking thread waits for it
        with ahead._lock:
            if ahead._queue and ahead._queue[0].data == b"third":
                break
        threading.Event().wait(0.01)
    release.set()
    asking.join(10)
    taken = ahead.take(b"second", LIMITS)
    assert taken is not None
    assert order == ["first", "third", "second"]


def test_a_reading_that_failed_fails_where_it_is_asked_for() -> None:
    def broken(data: bytes, limits: PdfLimits) -> ParsedRequest:
        raise PdfReaderUnavailable("The PDF reader could not start.")

    ahead = ReadAhead([b"a", b"b"], LIMITS, broken, threads=2)
    with pytest.raises(PdfReaderUnavailable, match="could not start"):
        ahead.take(b"a", LIMITS)


def test_other_limits_or_other_bytes_are_not_answered_from_it() -> None:
    ahead = ReadAhead([b"a", b"b"], LIMITS, named, threads=2)
    assert ahead.take(b"a", PdfLimits(max_pages=1)) is None
    assert ahead.take(b"c", LIMITS) is None
    taken = ahead.take(b"a", LIMITS)
    assert taken is not None and taken.fields["read"] == "a"


def test_it_is_the_thread_s_own_for_the_block_and_closed_after() -> None:
    ahead = ReadAhead([b"a", b"b"], LIMITS, named, threads=1)
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(current()))
    with reading(ahead):
        assert current() is ahead
        other.start()
        other.join()
    assert seen == [None]  # another thread has no read-ahead of its own
    assert current() is None
    assert ahead.take(b"b", LIMITS) is None  # closed: nothing more is handed out


def finished(ahead: ReadAhead, count: int) -> None:
    """Wait until `count` of the read-ahead's readings are done."""
    for _ in range(1000):
        with ahead._lock:
            if sum(job.done.is_set() for job in ahead._jobs.values()) >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"fewer than {count} readings finished")


def test_documents_waiting_and_readings_never_asked_for_are_held_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readahead, "MAX_QUEUED_BYTES", 12)
    monkeypatch.setattr(readahead, "MAX_READ_KEPT", 2)
    release = threading.Event()

    def held_up(data: bytes, limits: PdfLimits) -> ParsedRequest:
        release.wait(10)
        return named(data, limits)

    ahead = ReadAhead([b"busy"], LIMITS, held_up, threads=1)
    # 18 bytes waiting: the one furthest ahead goes, and its bytes with it.
    ahead.add([b"aaaaaa", b"bbbbbb", b"cccccc"])
    with ahead._lock:
        assert [job.data for job in ahead._queue] == [b"aaaaaa", b"bbbbbb"]
    release.set()
    finished(ahead, 3)
    assert ahead.take(b"cccccc", LIMITS) is None  # never read ahead: the caller reads it
    for data in (b"aaaaaa", b"bbbbbb"):
        taken = ahead.take(data, LIMITS)
        assert taken is not None and taken.fields["read"] == data.decode()

    quick = ReadAhead([b"1", b"2", b"3", b"4"], LIMITS, named, threads=1)
    finished(quick, 4)
    quick.add([b"5"])  # four readings nobody took, two kept at most: the oldest go
    assert quick.take(b"1", LIMITS) is None and quick.take(b"2", LIMITS) is None
    kept = quick.take(b"4", LIMITS)
    assert kept is not None and kept.fields["read"] == "4"


def test_a_process_ending_kills_its_pdf_workers_busy_or_not() -> None:
    """A reading still under way when the process ends has no one left to wait for it: the
    pool's close (run at exit) kills the busy worker too, rather than leave it running."""
    pool = WorkerPool(size=1)
    scan = (CORPUS / "gpp-scan.pdf").read_bytes()
    got: list[object] = []
    reading_thread = threading.Thread(
        target=lambda: got.append(pool.run(scan, LIMITS, [], {"op": "ocr", "max_pages": 6}))
    )
    reading_thread.start()
    for _ in range(1000):
        with pool._lock:
            busy = list(pool._busy)
        if busy:
            break
        threading.Event().wait(0.01)
    assert busy, "the worker never started"
    pool.close()
    reading_thread.join(30)
    assert busy[0].process.poll() is not None  # not left running
    assert got and isinstance(got[0], WorkerFailure)


def test_a_reading_ahead_keeps_the_cpu_budget_it_would_have_had_in_its_message() -> None:
    def stuck(data: bytes, limits: PdfLimits) -> ParsedRequest:
        end = time.thread_time() + 5
        while time.thread_time() < end:  # the Python half of a reading gone wrong
            pass
        return named(data, limits)

    ahead = ReadAhead([b"a"], LIMITS, stuck, threads=1, guard=lambda: WATCHDOG.limit(0.2))
    with pytest.raises(MessageTooSlow):
        ahead.take(b"a", LIMITS)
