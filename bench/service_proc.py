"""`pcse run` as a child process that the proofs can kill, restart and read the log of.

The service runs in a process group of its own, so SIGKILL reaches it and its sandboxed
PDF readers together, as when a machine loses power or the OOM killer takes the unit.
Its configuration is a TOML file written here for a Dovecot account, an SMTP sink and a
database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PCSE = str(Path(sys.executable).with_name("pcse"))
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    db_url: str
    imap_port: int
    imap_user: str
    imap_password: str
    smtp_port: int
    raw_dir: Path
    poll_seconds: float = 2
    outbox_seconds: float = 1
    housekeeping_seconds: float = 5
    idle: bool = True
    smtp_timeout: float = 10
    max_replies_per_hour: int = 1000
    pdf_timeout_seconds: float = 15
    batch_size: int = 100  # messages fetched per IMAP round trip
    reminder_after_days: float = 3
    expire_after_days: float = 10
    # Trust this receiving server's Authentication-Results (messages stamped with it).
    authserv_id: str | None = None


def write_config(path: Path, s: Settings) -> Path:
    from service.config import to_toml

    mailbox = {
        "name": "enquiries",
        "address": "pcse.portalenquiries@nhs.net",
        "imap_host": "127.0.0.1",
        "imap_port": s.imap_port,
        "imap_ssl": False,
        "username": s.imap_user,
        "password": s.imap_password,
        "batch_size": s.batch_size,
    }
    config = {
        "database": {"url": s.db_url},
        "mailboxes": [mailbox],
        "smtp": {"host": "127.0.0.1", "port": s.smtp_port, "timeout_seconds": s.smtp_timeout},
        "schedule": {
            "poll_seconds": s.poll_seconds,
            "idle": s.idle,
            "outbox_seconds": s.outbox_seconds,
            "housekeeping_seconds": s.housekeeping_seconds,
        },
        "workflow": {
            "reminder_after_days": s.reminder_after_days,
            "expire_after_days": s.expire_after_days,
        },
        "notifications": {"max_replies_per_hour": s.max_replies_per_hour},
        "limits": {"pdf_timeout_seconds": s.pdf_timeout_seconds},
        "storage": {"raw_dir": str(s.raw_dir)},
    }
    if s.authserv_id:
        config["security"] = {
            "sender_authentication": "authserv-id",
            "trusted_authserv_ids": [s.authserv_id],
        }
    path.write_text(to_toml(config), encoding="utf-8")
    return path


def pcse(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `pcse` command to completion."""
    return subprocess.run(
        [PCSE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PCSE_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class PcseRun:
    """One `pcse run` process at a time; every start appends to the same log."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [PCSE, "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=_env(),
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def kill(self) -> None:
        """SIGKILL the service and everything it started, and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd sends it; returns the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Any PDF reader left behind belongs to the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
