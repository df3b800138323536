"""Back up and restore what the service keeps: the database, the raw store, the web secret.

A backup is one folder:

    database.dump      PostgreSQL, pg_dump's custom format (or database.sqlite3)
    raw.tar            the raw store: every message's bytes as received
    web-secret.key     the key that signs caseworkers' session cookies (mode 0600)
    manifest.json      when, from which schema revision, what it holds, each file's sha256

The database is dumped first and the raw store copied after it. Intake writes a message's
bytes before it commits the ledger row that names them, so every row in the dump finds
its bytes in raw.tar; bytes of messages that arrived in between are harmless extras.

A restore goes into an empty database and an empty raw store only: it never merges into,
or overwrites, a service that holds data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from caseworker.secretkey import LOCAL_KEY_FILE, signing_key
from core.errors import PcseError
from service.config import Config

MANIFEST = "manifest.json"
PG_DUMP = "database.dump"
SQLITE_COPY = "database.sqlite3"
RAW_TAR = "raw.tar"
SECRET = "web-secret.key"
FORMAT = 1


class BackupError(PcseError):
    """A backup or restore that cannot go ahead; the message says why."""


@dataclass(frozen=True)
class Summary:
    folder: Path
    revision: str | None
    cases: int
    raw_files: int

    def sentence(self, verb: str) -> str:
        return (
            f"{verb} {self.cases} case(s) and {self.raw_files} raw message(s) "
            f"at schema revision {self.revision or 'none'} ({self.folder})."
        )


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string for pg_dump/pg_restore and the environment carrying the
    password, so that it never shows in the process list."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{argv[0]} is not installed; install the PostgreSQL client tools "
            "(Debian: postgresql-client) of the server's major version."
        ) from exc
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{argv[0]} failed: {detail[:300]}")


def _facts(url: str) -> tuple[str | None, int]:
    """The schema revision and the number of cases in the database at `url`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            revision = (
                conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
                if "alembic_version" in tables
                else None
            )
            cases = (
                conn.scalar(sa.text("SELECT count(*) FROM cases")) or 0 if "cases" in tables else 0
            )
        return revision, int(cases)
    finally:
        engine.dispose()


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up or restored.")
    return Path(database)


# --------------------------------------------------------------------------- backup


def backup(config: Config, folder: Path) -> Summary:
    """Write a backup of the configured service into `folder` (new, or empty)."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"The backup folder {folder} is not empty; choose a new one.")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # it holds personal data and the web secret
    url = config.database.url
    revision, cases = _facts(url)
    if revision is None:
        raise BackupError("The database has no schema yet; there is nothing to back up.")
    database_file = _dump_database(url, folder)
    raw_files = _tar_raw_store(Path(config.storage.raw_dir), folder / RAW_TAR)
    _write_secret(signing_key(config), folder / SECRET)
    files = [database_file, RAW_TAR, SECRET]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": make_url(url).get_backend_name(),
        "revision": revision,
        "cases": cases,
        "raw_files": raw_files,
        "files": {name: _sha256(folder / name) for name in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Summary(folder, revision, cases, raw_files)


def _dump_database(url: str, folder: Path) -> str:
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        dsn, env = _libpq(url)
        _run(["pg_dump", "--format=custom", f"--file={folder / PG_DUMP}", f"--dbname={dsn}"], env)
        return PG_DUMP
    if backend == "sqlite":
        # SQLite's online backup: a consistent copy while the service writes.
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(folder / SQLITE_COPY)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return SQLITE_COPY
    raise BackupError(f"Backing up a {backend} database is not supported.")


def _tar_raw_store(raw_dir: Path, target: Path) -> int:
    count = 0
    with tarfile.open(target, "w") as tar:
        if raw_dir.is_dir():
            for path in sorted(raw_dir.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    tar.add(path, arcname=str(path.relative_to(raw_dir)), recursive=False)
                    count += 1
    return count


def _write_secret(value: str, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


# --------------------------------------------------------------------------- restore


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a pcse backup: it has no {MANIFEST}.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} was written in a backup format this release does not read.")
    for name, digest in manifest["files"].items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            raise BackupError(f"{name} in {folder} is missing or damaged (its sha256 differs).")
    return manifest


def restore(config: Config, folder: Path) -> Summary:
    """Restore the backup in `folder` into the configured (empty) database and raw store
    (the web secret: secret_instruction)."""
    manifest = read_manifest(folder)
    url = config.database.url
    raw_dir = Path(config.storage.raw_dir)
    _refuse_unless_empty(url, raw_dir)
    _restore_database(url, folder, manifest)
    raw_files = _untar_raw_store(folder / RAW_TAR, raw_dir)
    revision, cases = _facts(url)
    if cases != manifest["cases"] or raw_files != manifest["raw_files"]:
        raise BackupError(
            f"The restore holds {cases} case(s) and {raw_files} raw message(s); the backup "
            f"recorded {manifest['cases']} and {manifest['raw_files']}."
        )
    return Summary(folder, revision, cases, raw_files)


def secret_instruction(config: Config, folder: Path, local_key_file: Path = LOCAL_KEY_FILE) -> str:
    """Put the backed-up web secret where the service reads it, or say how to.

    With [web] secret_key_env set in the environment, the secret lives in the operator's
    secrets file, which this command does not edit: it says whether it matches.
    """
    saved = (folder / SECRET).read_text(encoding="utf-8").strip()
    name = config.web.secret_key_env
    current = os.environ.get(name, "")
    if current:
        if current == saved:
            return f"The web secret in ${name} matches the backup."
        return (
            f"${name} differs from the backup's web secret: caseworkers will sign in again. "
            f"To keep their sessions, set {name} to the value in {folder / SECRET}."
        )
    if local_key_file.exists():
        if local_key_file.read_text(encoding="utf-8").strip() == saved:
            return f"The web secret in {local_key_file} matches the backup."
        return (
            f"{local_key_file} differs from the backup's web secret and was left as it is; "
            f"replace it with {folder / SECRET} to keep caseworkers' sessions."
        )
    local_key_file.parent.mkdir(parents=True, exist_ok=True)
    _write_secret(saved, local_key_file)
    return f"The web secret was restored to {local_key_file}."


def _refuse_unless_empty(url: str, raw_dir: Path) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            "The configured database already has tables; restore into a new, empty database."
        )
    if raw_dir.is_dir() and any(raw_dir.iterdir()):
        raise BackupError(
            f"The raw store {raw_dir} is not empty; restore into a new, empty folder."
        )


def _restore_database(url: str, folder: Path, manifest: dict[str, Any]) -> None:
    backend = make_url(url).get_backend_name()
    if backend != manifest["database"]:
        raise BackupError(
            f"The backup holds a {manifest['database']} database; the configuration names "
            f"a {backend} one."
        )
    if backend == "postgresql":
        dsn, env = _libpq(url)
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={dsn}",
                str(folder / PG_DUMP),
            ],
            env,
        )
        return
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # an empty file left by the emptiness check
    shutil.copyfile(folder / SQLITE_COPY, target)


def _untar_raw_store(source: Path, raw_dir: Path) -> int:
    raw_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(source) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            tar.extract(member, raw_dir, filter="data")  # no paths outside raw_dir
            count += 1
    return count
