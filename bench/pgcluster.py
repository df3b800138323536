"""A throw-away PostgreSQL cluster of its own (initdb + pg_ctl), for proofs that restart it.

The machine's PostgreSQL on 5432 is shared and never restarted; this one lives in a
temporary folder on a free loopback port and is removed afterwards. initdb refuses to
run as root, so as root the cluster belongs to the `postgres` user and every command
runs through `runuser`. Crash-safety settings stay on: the proofs kill the service and
restart this server, and a restart must recover from its write-ahead log.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a private cluster (no binaries, no postgres user)."""


class PgCluster:
    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise ClusterUnavailable("no PostgreSQL server binaries in /usr/lib/postgresql")
        self.root = root or Path(tempfile.mkdtemp(prefix="pcse-pg-"))
        self.port = port or free_port()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except (LookupError, PermissionError) as exc:
                raise ClusterUnavailable(f"cannot hand the folder to postgres: {exc}") from exc
            self.root.chmod(0o755)

    # ------------------------------------------------------------------ commands

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}{self.log_tail()}"
            )
        return done.stdout

    def init(self) -> PgCluster:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-instructions",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 100\nshared_buffers = 64MB\n"
                "logging_collector = off\n"
            )
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" (clean), or "immediate" (as if it had crashed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast", pause: float = 0.0) -> None:
        self.stop(mode)
        if pause:
            time.sleep(pause)
        self.start()

    @property
    def running(self) -> bool:
        status = subprocess.run(
            (["runuser", "-u", "postgres", "--"] if self.as_root else [])
            + [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            text=True,
        )
        return status.returncode == 0

    def discard(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"pcse_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


@contextlib.contextmanager
def running_cluster() -> Iterator[PgCluster]:
    """A started cluster, discarded afterwards."""
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.discard()


# The machine's PostgreSQL server, on which the benches make their scratch databases.
PG_ADMIN = os.environ.get(
    "PCSE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str = "pcse_proof_") -> Iterator[str]:
    """A new database on an existing server (e.g. the machine's), dropped afterwards: the
    one way the tests and the benches make a throw-away PostgreSQL database."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def database_url(kind: str, folder: Path, prefix: str) -> Iterator[str]:
    """A fresh database for one bench run: a SQLite file in `folder`, or a scratch
    PostgreSQL database on PG_ADMIN's server (named with `prefix`), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'pcse.sqlite3'}"
        return
    with scratch_database(PG_ADMIN, prefix=prefix) as url:
        yield url
