"""One child process measured from outside: wall time, CPU, peak memory. `run_measured`
runs a command to completion; `run_until` runs a service until a condition holds, then
stops it with SIGTERM (its time is to the condition; its CPU includes the stop).

Peak memory is the child's own high-water mark (VmHWM in /proc/PID/status), read every
20 ms while it runs. Not wait4's ru_maxrss: on Linux that keeps the size of the parent at
the fork, so a bench holding a large backlog in memory would see its own size in every
command it runs (and the same figure for each). A peak reached in the last 20 ms of the
child's life can be missed; a command's working set is reached well before it exits. It is
the command's own process only: processes it starts (the PDF and OCR sandboxes) are not in it.

`machine_cpu_seconds` reads the CPU the whole machine has used, so that a run can say what
all its processes together cost and how far the machine's cores are from full.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    exit_code: int
    output: bytes
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def run_measured(command: list[str], *, env: dict[str, str], cwd: Path | None = None) -> Measured:
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    peak = _Peak(child.pid)
    peak.start()
    output = child.stdout.read() if child.stdout else b""
    return _reaped(child, peak, output, started)


def run_until(
    command: list[str],
    *,
    env: dict[str, str],
    done: Callable[[], bool],
    timeout: float,
    cwd: Path | None = None,
    interval: float = 0.1,
) -> Measured:
    """Start `command`, wait until `done()` (asked every `interval`), then SIGTERM it."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    peak = _Peak(child.pid)
    peak.start()
    try:
        while not done():
            if child.poll() is not None:
                raise RuntimeError(f"{command[0]} exited ({child.returncode}) before it was done")
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"not done after {timeout:.0f} s")
            time.sleep(interval)
        seconds = time.perf_counter() - started
    finally:
        # Not Popen.send_signal: it polls first, which would reap the child and lose its
        # CPU time to wait4 below should it have just exited.
        if child.returncode is None:
            os.kill(child.pid, signal.SIGTERM)
    measured = _reaped(child, peak, b"", started)
    return replace(measured, seconds=seconds)  # to `done`, not to the end of the stop


def _reaped(child: subprocess.Popen[bytes], peak: _Peak, output: bytes, started: float) -> Measured:
    """Wait for the child; its exit code, wall time since `started`, CPU and peak memory."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    peak.done.set()
    peak.join()
    return Measured(
        child.returncode, output, seconds, usage.ru_utime + usage.ru_stime, peak.kb / 1024
    )


class _Peak(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.status = f"/proc/{pid}/status"
        self.done = threading.Event()
        self.kb = 0

    def run(self) -> None:
        while not self.done.is_set():
            self.kb = max(self.kb, _high_water_kb(self.status))
            self.done.wait(0.02)


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used since boot, from /proc/stat: user,
    nice, system, irq and softirq on every core; not idle, I/O wait, nor steal (time the
    host gave to other virtual machines). The difference over a run is what all of it cost
    (the service, Dovecot, the SMTP sink, the database), whichever process spent it."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _high_water_kb(path: str) -> int:
    try:
        with open(path) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # gone already
        pass
    return 0
