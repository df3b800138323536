"""How busy the machine's CPUs were over a stretch of time, from /proc/stat (Linux).

A benchmark that shares the machine (Dovecot, PostgreSQL, the SMTP sink and the workers
all run on it) says from this whether the CPUs themselves were the limit: near 100 % busy
means another worker could only take CPU time from the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a running process and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / TICKS


@dataclass
class CpuWindow:
    busy: int = 0
    total: int = 0

    def start(self) -> CpuWindow:
        self.busy, self.total = _jiffies()
        return self

    def busy_share(self) -> float:
        """The share of all CPUs' time busy since start(), 0 to 1."""
        busy, total = _jiffies()
        return (busy - self.busy) / max(total - self.total, 1)
