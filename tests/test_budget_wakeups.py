"""The message watchdog is woken only when a new budget could run out before it looks
again, and a short budget behind a long one is still enforced in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from intake.budget import WATCHDOG, MessageTooSlow, _Entry, thread_clock


def _spun_until_stopped(seconds: float) -> float:
    """Seconds on the wall a loop ran under a budget of `seconds` before it was stopped
    (30 when it never was)."""
    began = time.monotonic()
    try:
        with WATCHDOG.limit(seconds):
            while time.monotonic() - began < 30:
                sum(range(1000))
    except MessageTooSlow:
        pass
    return time.monotonic() - began


def test_a_short_budget_after_a_long_one_is_enforced_in_time() -> None:
    started, stopped_after = threading.Event(), []

    def patient() -> None:
        with WATCHDOG.limit(60):  # the watchdog now sleeps for up to a minute
            started.set()
            time.sleep(3)

    def spinner() -> None:
        stopped_after.append(_spun_until_stopped(0.2))

    first = threading.Thread(target=patient)
    first.start()
    started.wait(5)
    second = threading.Thread(target=spinner)
    second.start()
    second.join(40)
    first.join(10)
    assert stopped_after and stopped_after[0] < 10


def test_back_to_back_budgets_leave_the_watchdog_asleep() -> None:
    # A budget held open throughout, as in a worker that is busy: once the watchdog has
    # seen it, it looks again no sooner than its end. (A budget that ends before the
    # watchdog first looks leaves it waiting for work, to be woken by the next one.)
    with WATCHDOG.limit(30):
        time.sleep(0.1)  # the watchdog has looked and set its next time
        woken_for: list[float] = []
        original = WATCHDOG._wake.notify

        def counting(n: int = 1) -> None:
            woken_for.append(time.monotonic())
            original(n)

        WATCHDOG._wake.notify = counting  # type: ignore[method-assign]
        try:
            for _ in range(50):
                with WATCHDOG.limit(60):
                    pass
        finally:
            WATCHDOG._wake.notify = original  # type: ignore[method-assign]
    assert len(woken_for) <= 1


def _watchdog_free() -> bool:
    """Whether another thread can take the watchdog's lock within a second."""
    took: list[bool] = []

    def take() -> None:
        took.append(WATCHDOG._wake.acquire(timeout=1))
        if took[-1]:
            WATCHDOG._wake.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    return took == [True]


def test_a_budget_running_out_as_its_block_ends_never_leaves_the_watchdog_held() -> None:
    # The block ends as its budget runs out, again and again, while another thread (another
    # page, or intake) uses the watchdog: the stop may land in limit()'s own clean-up. Left
    # holding the watchdog's lock, it would hang the watchdog and every budget after it.
    stop = threading.Event()

    def other_thread() -> None:
        while not stop.is_set():
            with WATCHDOG.limit(30):
                sum(range(2000))

    threading.Thread(target=other_thread, daemon=True).start()
    clock = thread_clock()
    try:
        for attempt in range(400):
            end = clock() + 0.01 + (attempt % 5 - 2) / 1000  # ending around its budget
            try:
                with WATCHDOG.limit(0.01):
                    while clock() < end:
                        pass
            except MessageTooSlow:
                pass
            assert _watchdog_free(), f"the watchdog was left held after {attempt + 1} blocks"
    finally:
        stop.set()
    assert _spun_until_stopped(0.2) < 5  # and a budget is still enforced


def test_a_budget_left_behind_by_a_thread_that_ended_does_not_stop_the_watchdog() -> None:
    clocks: list[Callable[[], float]] = []
    ended = threading.Thread(target=lambda: clocks.append(thread_clock()))
    ended.start()
    ended.join()
    assert ended.ident is not None
    with WATCHDOG._lock:  # as a budget whose clean-up never ran would be left
        WATCHDOG._serial += 1
        WATCHDOG._entries[WATCHDOG._serial] = _Entry(ended.ident, clocks[0], 0.0)
        WATCHDOG._start()
        WATCHDOG._wake.notify()
    assert _spun_until_stopped(0.2) < 5
