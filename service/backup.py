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

Both hold personal data, so everything they write is the owner's alone (umask 0o077, files
0600, the folder 0700), a backup goes only into a new folder or an empty one the user owns
that nobody else can write to, and each file is created new without following a symlink.
A restore checks the manifest (exactly the files a backup of its database type holds) and
every member of raw.tar (a plain file that stays inside the raw store) before it touches
the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

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


# What a backup of each database type holds, besides the manifest.
_DATABASE_FILES = {"postgresql": PG_DUMP, "sqlite": SQLITE_COPY}
# Files are created new, never through a symlink planted where one is expected.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


# --------------------------------------------------------------------------- helpers


@contextmanager
def _private_umask() -> Iterator[None]:
    """Whatever a backup or restore creates (pg_dump's file, SQLite's copy, folders) is
    readable by its owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _create(path: Path) -> IO[bytes]:
    """A new file, mode 0600; refused if anything (a symlink included) is already there."""
    try:
        fd = os.open(path, _NEW_FILE, 0o600)
    except OSError as exc:
        raise BackupError(f"Cannot create {path}: {exc.strerror}.") from exc
    return os.fdopen(fd, "wb")


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


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    for chunk in iter(lambda: source.read(1 << 20), b""):
        target.write(chunk)


# --------------------------------------------------------------------------- backup


def backup(config: Config, folder: Path) -> Summary:
    """Write a backup of the configured service into `folder` (new, or an empty folder of
    the user's that nobody else can write to)."""
    with _private_umask():
        return _backup(config, folder)


def _backup(config: Config, folder: Path) -> Summary:
    _backup_folder(folder)
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
    with _create(folder / MANIFEST) as handle:
        handle.write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return Summary(folder, revision, cases, raw_files)


def _backup_folder(folder: Path) -> None:
    """Make `folder` (mode 0700), or accept an empty one that is the user's own and that
    nobody else can write to: another user could otherwise plant files or symlinks in it
    while the backup runs."""
    try:
        folder.mkdir(mode=0o700, parents=True)
        return
    except FileExistsError:
        pass
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise BackupError(f"{folder} exists and is not a folder; choose a new one.")
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise BackupError(
            f"The backup folder {folder} belongs to another user or others can write to it; "
            "choose a new one."
        )
    if any(folder.iterdir()):
        raise BackupError(f"The backup folder {folder} is not empty; choose a new one.")
    os.chmod(folder, 0o700)  # it holds personal data and the web secret


def _dump_database(url: str, folder: Path) -> str:
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        dsn, env = _libpq(url)
        _create(folder / PG_DUMP).close()  # pg_dump writes into the file made here
        _run(["pg_dump", "--format=custom", f"--file={folder / PG_DUMP}", f"--dbname={dsn}"], env)
        return PG_DUMP
    if backend == "sqlite":
        # SQLite's online backup: a consistent copy while the service writes (into an empty
        # file made here, which SQLite reads as an empty database).
        _create(folder / SQLITE_COPY).close()
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
    with _create(target) as handle, tarfile.open(fileobj=handle, mode="w") as tar:
        if raw_dir.is_dir():
            for path in sorted(raw_dir.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    tar.add(path, arcname=str(path.relative_to(raw_dir)), recursive=False)
                    count += 1
    return count


def _write_secret(value: str, target: Path) -> None:
    with _create(target) as handle:
        handle.write((value + "\n").encode("utf-8"))


# --------------------------------------------------------------------------- restore


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, once it is well formed, lists exactly the files a backup of its
    database type holds, and each of them matches its sha256."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a pcse backup: it has no {MANIFEST}.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"The {MANIFEST} in {folder} cannot be read: {exc}.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} was written in a backup format this release does not read.")
    _check_manifest_fields(folder, manifest)
    for name, digest in manifest["files"].items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            raise BackupError(f"{name} in {folder} is missing or damaged (its sha256 differs).")
    return manifest


def _check_manifest_fields(folder: Path, manifest: dict[str, Any]) -> None:
    database, files = manifest.get("database"), manifest.get("files")
    if database not in _DATABASE_FILES:
        raise BackupError(f"The {MANIFEST} in {folder} names no database type this release reads.")
    expected = {_DATABASE_FILES[database], RAW_TAR, SECRET}
    if (
        not isinstance(files, dict)
        or set(files) != expected
        or not all(isinstance(d, str) and len(d) == 64 for d in files.values())
    ):
        raise BackupError(
            f"The {MANIFEST} in {folder} must list exactly {', '.join(sorted(expected))} "
            "with their sha256; it does not."
        )
    for key in ("cases", "raw_files"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BackupError(f"The {MANIFEST} in {folder} has no count of {key}.")


def restore(config: Config, folder: Path) -> Summary:
    """Restore the backup in `folder` into the configured (empty) database and raw store
    (the web secret: secret_instruction)."""
    with _private_umask():
        return _restore(config, folder)


def _restore(config: Config, folder: Path) -> Summary:
    manifest = read_manifest(folder)
    url = config.database.url
    raw_dir = Path(config.storage.raw_dir)
    _refuse_unless_empty(url, raw_dir)
    members = _checked_members(folder / RAW_TAR, raw_dir, manifest["raw_files"])
    # The raw store is unpacked beside its place first, and moved there only once the
    # database is restored: whatever fails leaves both as they were, to be tried again.
    staging = _staging_folder(raw_dir)
    try:
        raw_files = _untar_raw_store(folder / RAW_TAR, staging, members)
        _restore_database(url, folder, manifest)
        _move_into_place(staging, raw_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    if _tables(url):
        raise BackupError(
            "The configured database already has tables; restore into a new, empty database."
        )
    if raw_dir.exists() and not raw_dir.is_dir():
        raise BackupError(f"The raw store {raw_dir} is not a folder; name a new, empty folder.")
    if raw_dir.is_dir() and any(raw_dir.iterdir()):
        raise BackupError(
            f"The raw store {raw_dir} is not empty; restore into a new, empty folder."
        )


def _tables(url: str) -> list[str]:
    """The database's tables. A SQLite file not made yet has none, and is not made here:
    connecting would create it, and fail where its folder does not exist yet."""
    if make_url(url).get_backend_name() == "sqlite" and not _sqlite_path(url).exists():
        return []
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


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
    if target.exists():
        # Made since the first check (the service started meanwhile, say): an empty file is
        # replaced, one with tables refused; `_create` below makes the file only if absent.
        if _tables(url):
            raise BackupError(
                "The configured database has tables now; restore into a new, empty database."
            )
        target.unlink()
    try:
        with (folder / SQLITE_COPY).open("rb") as source, _create(target) as handle:
            _copy(source, handle)
    except BaseException:
        target.unlink(missing_ok=True)  # half a database would refuse the restore again
        raise


def _checked_members(source: Path, raw_dir: Path, expected: int) -> list[str]:
    """The names in raw.tar, once every member is a plain file that passes tarfile's
    "data" filter (nothing outside the raw store, no links, devices or odd modes) and
    there are as many as the manifest says; before anything is restored."""
    names: list[str] = []
    try:
        with tarfile.open(source) as tar:
            for member in tar.getmembers():
                if not member.isreg():
                    raise BackupError(f"{RAW_TAR} holds {member.name!r}, which is not a file.")
                # The filter refuses a path outside raw_dir; it would quietly make an
                # absolute one relative, which is refused here instead.
                if tarfile.data_filter(member, str(raw_dir)).name != member.name:
                    raise BackupError(f"{RAW_TAR} holds {member.name!r}, an absolute path.")
                names.append(member.name)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{RAW_TAR} cannot be restored: {exc}") from exc
    # Two names for one file ("ab/file", "ab//file") would meet as it is written.
    if len(names) != expected or len({os.path.normpath(n) for n in names}) != len(names):
        raise BackupError(f"{RAW_TAR} holds {len(names)} file(s); the manifest records {expected}.")
    return names


def _staging_folder(raw_dir: Path) -> Path:
    """A new, private folder beside the raw store's place (so that moving it there is a
    rename), where the raw store is unpacked first."""
    try:
        raw_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{raw_dir.name}.restoring-", dir=raw_dir.parent))
    except OSError as exc:
        raise BackupError(
            f"The raw store cannot be restored beside {raw_dir}: {exc}. Nothing was restored."
        ) from exc


def _move_into_place(staging: Path, raw_dir: Path) -> None:
    """Rename the unpacked raw store to its place (an empty folder there is replaced)."""
    try:
        if raw_dir.is_dir():
            raw_dir.rmdir()  # checked empty before anything was restored
        staging.rename(raw_dir)
    except OSError as exc:
        raise BackupError(
            f"The database was restored, but the raw store could not be put at {raw_dir}: "
            f"{exc}. Empty the database and that folder, then restore again."
        ) from exc


def _untar_raw_store(source: Path, raw_dir: Path, names: list[str]) -> int:
    """Write each checked member as a new file of the owner's (mode 0600)."""
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source) as tar:
            for name in names:
                extracted = tar.extractfile(name)
                if extracted is None:
                    raise BackupError(f"{RAW_TAR} holds {name!r}, which is not a file.")
                target = raw_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with extracted, _create(target) as handle:
                    _copy(extracted, handle)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{RAW_TAR} cannot be restored: {exc}") from exc
    return len(names)
