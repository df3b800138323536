"""Running the installed `pcse` command as a real process, and waiting on what it does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PCSE = str(Path(sys.executable).with_name("pcse"))


def pcse(
    *args: str, config: Path, cwd: Path, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one `pcse` command to completion with the given configuration file."""
    result = subprocess.run(
        [PCSE, "--config", str(config), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"pcse {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Service:
    """`pcse run` as a child process; its log goes to a file the tests can read."""

    def __init__(
        self,
        config: Path,
        cwd: Path,
        extra_env: dict[str, str] | None = None,
        name: str = "pcse-run",
    ) -> None:
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [PCSE, "--config", str(config), "run"],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_env() | (extra_env or {}),
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as systemd sends it, then wait for a clean exit."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float = 20,
    what: str = "a result",
    service: Service | None = None,
    interval: float = 0.2,
) -> T:
    """Call `probe` until it returns something truthy; fail with the service's log if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if service is not None and not service.alive():
            raise AssertionError(f"pcse run exited while waiting for {what}:\n{service.log()}")
        if time.monotonic() > deadline:
            tail = service.log()[-4000:] if service is not None else ""
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}.\n{tail}")
        time.sleep(interval)
