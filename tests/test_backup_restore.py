"""The runbook's backup and restore: `pcse backup` then `pcse restore` into a fresh
database and raw store gives back the cases, the raw messages and the web secret."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.pgcluster import scratch_database
from core.db import Database, make_engine
from intake.rawstore import RawStore
from service import backup as backup_module
from service.backup import BackupError, backup, read_manifest, restore
from service.cli import main
from service.config import Config
from service.config import load as load_config
from service.schema import upgrade
from tests.fixtures.databases import PG_ADMIN_URL, _pg_available
from tests.test_workflow_helpers import gpp_form, make_env, open_request, seed
from workflow.models import Case, CaseEvent

RAW = b"From: Pat Jones <pat.jones@nhs.net>\r\nSubject: GPP admin\r\n\r\nPlease add Jane.\r\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The URLs of two new, empty databases: the service's and the one restored into."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.sqlite3'}", f"sqlite:///{tmp_path / 'new.sqlite3'}"
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    prefix = f"pcse_backup_{os.getpid()}_"
    with (
        scratch_database(PG_ADMIN_URL, prefix=prefix) as live,
        scratch_database(PG_ADMIN_URL, prefix=prefix) as new,
    ):
        yield live, new


def write_config(folder: Path, url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pcse.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n\n[storage]\nraw_dir = "{folder / "raw"}"\n',
        encoding="utf-8",
    )
    return path


def pcse(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def a_live_service(url: str, folder: Path) -> tuple[str, str, str]:
    """A migrated database with a case, a raw message and a web secret; returns the case
    reference, the raw message's sha256 and the secret."""
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    db = Database(url)
    with db.transaction() as session:
        seed(session)
    ref = open_request(db, make_env(), gpp_form())
    db.dispose()
    sha = RawStore(folder / "raw").put(RAW)
    secret = "s" * 48
    (folder / "var").mkdir(parents=True, exist_ok=True)
    (folder / "var" / "web-secret.key").write_text(secret + "\n", encoding="utf-8")
    return ref, sha, secret


def test_backup_then_restore_into_a_fresh_database_reads_the_case_back(
    two_urls: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live_url, new_url = two_urls
    run = pcse(capsys)
    monkeypatch.delenv("PCSE_WEB_SECRET", raising=False)
    live, new, saved = tmp_path / "live", tmp_path / "new", tmp_path / "backup-2026-03-02"
    live_config = write_config(live, live_url)
    ref, sha, secret = a_live_service(live_url, live)

    monkeypatch.chdir(live)
    code, out, err = run("--config", str(live_config), "backup", str(saved))
    assert code == 0, err
    assert "Backed up 1 case(s) and 1 raw message(s)" in out
    manifest = json.loads((saved / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "database.dump" if live_url.startswith("postgresql") else "database.sqlite3",
        "raw.tar",
        "web-secret.key",
    }
    assert (saved / "web-secret.key").stat().st_mode & 0o777 == 0o600

    new_config = write_config(new, new_url)
    monkeypatch.chdir(new)
    code, out, err = run("--config", str(new_config), "restore", str(saved))
    assert code == 0, err
    assert "Restored 1 case(s) and 1 raw message(s)" in out
    assert "The web secret was restored to var/web-secret.key." in out

    db = Database(new_url)
    try:
        with db.transaction() as session:
            case = session.scalars(sa.select(Case).where(Case.ref == ref)).one()
            assert case.state == "awaiting_approval"
            assert case.fields["organisation_code"] == "A81001"
            history = session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id))
            assert len(list(history)) > 1
    finally:
        db.dispose()
    assert RawStore(new / "raw").get(sha) == RAW
    assert (new / "var" / "web-secret.key").read_text().strip() == secret

    # The restored service takes `pcse db upgrade` and serves `pcse queue` as before.
    assert run("--config", str(new_config), "db", "upgrade")[0] == 0
    code, out, _ = run("--config", str(new_config), "queue", "--json")
    assert code == 0 and [row["ref"] for row in json.loads(out)] == [ref]

    # Restoring again would overwrite a service that holds data: refused.
    code, _, err = run("--config", str(new_config), "restore", str(saved))
    assert code == 1
    assert "already has tables" in err


def test_restore_on_the_local_defaults_into_a_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runbook's restore on a new machine, with no configuration: the local defaults'
    ./var does not exist yet, and the restore makes it."""
    run = pcse(capsys)
    monkeypatch.delenv("PCSE_WEB_SECRET", raising=False)
    monkeypatch.delenv("PCSE_CONFIG", raising=False)
    live, saved = tmp_path / "live", tmp_path / "backup"
    live_url = f"sqlite:///{live / 'live.sqlite3'}"
    ref, sha, _ = a_live_service(live_url, live)
    monkeypatch.chdir(live)
    assert run("--config", str(write_config(live, live_url)), "backup", str(saved))[0] == 0

    fresh = tmp_path / "new-machine"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    code, out, err = run("restore", str(saved))
    assert code == 0, err
    assert "Restored 1 case(s) and 1 raw message(s)" in out
    code, out, _ = run("queue", "--json")
    assert code == 0 and [row["ref"] for row in json.loads(out)] == [ref]
    assert RawStore(fresh / "var" / "raw").get(sha) == RAW


def test_a_damaged_backup_is_refused_before_anything_is_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pcse(capsys)
    monkeypatch.delenv("PCSE_WEB_SECRET", raising=False)
    live, new, saved = tmp_path / "live", tmp_path / "new", tmp_path / "saved"
    live_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    a_live_service(live_url, live)
    monkeypatch.chdir(live)
    assert run("--config", str(write_config(live, live_url)), "backup", str(saved))[0] == 0
    with (saved / "raw.tar").open("ab") as handle:
        handle.write(b"tampered")
    new_url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    code, _, err = run("--config", str(write_config(new, new_url)), "restore", str(saved))
    assert code == 1
    assert "raw.tar" in err and "damaged" in err
    assert not (tmp_path / "new.sqlite3").exists()


# --------------------------------------------------------------------------- hostile folders


def a_backup(tmp_path: Path) -> tuple[Config, Path]:
    """A SQLite service with one raw message, backed up into tmp_path/saved."""
    live = tmp_path / "live"
    live_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    a_live_service(live_url, live)
    config = load_config(write_config(live, live_url))
    backup(config, tmp_path / "saved")
    return config, tmp_path / "saved"


def fresh_config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path / "new", f"sqlite:///{tmp_path / 'new.sqlite3'}"))


@pytest.fixture
def shared_umask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The usual umask 022, under which files are made readable by everyone."""
    monkeypatch.setenv("PCSE_WEB_SECRET", "s" * 48)
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}


def test_backup_and_restore_write_files_only_their_owner_can_read(
    tmp_path: Path, shared_umask: None
) -> None:
    _, saved = a_backup(tmp_path)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o700
    assert set(modes(saved).values()) == {0o600}, modes(saved)
    config = fresh_config(tmp_path)
    restore(config, saved)
    assert stat.S_IMODE((tmp_path / "new.sqlite3").stat().st_mode) == 0o600
    raw = modes(tmp_path / "new" / "raw")
    assert raw and all(mode & 0o077 == 0 for mode in raw.values()), raw


def test_a_folder_others_can_write_to_is_refused(tmp_path: Path, shared_umask: None) -> None:
    live_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    a_live_service(live_url, tmp_path / "live")
    config = load_config(write_config(tmp_path / "live", live_url))
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(BackupError, match="others can write to it"):
        backup(config, shared)
    assert list(shared.iterdir()) == []


def test_a_symlink_planted_in_the_folder_is_not_written_through(
    tmp_path: Path, shared_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    a_live_service(live_url, tmp_path / "live")
    config = load_config(write_config(tmp_path / "live", live_url))
    victim = tmp_path / "victim"
    victim.write_text("important\n")
    real_dump = backup_module._dump_database

    def dump_and_plant(url: str, folder: Path) -> str:
        (folder / "manifest.json").symlink_to(victim)
        return real_dump(url, folder)

    monkeypatch.setattr(backup_module, "_dump_database", dump_and_plant)
    with pytest.raises(BackupError, match=r"manifest\.json"):
        backup(config, tmp_path / "saved")
    assert victim.read_text() == "important\n"


def rewrite_manifest(saved: Path, change: Callable[[dict], object]) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    change(manifest)
    (saved / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(files={}),
        lambda m: m["files"].pop("raw.tar"),
        lambda m: m["files"].update({"extra.bin": "0" * 64}),
        lambda m: m.update(database="postgresql"),
        lambda m: m.update(files=[]),
        lambda m: m.update(cases="1"),
    ],
    ids=["no-files", "raw-tar-unlisted", "extra-file", "wrong-database-type", "list", "count"],
)
def test_a_manifest_that_does_not_list_the_expected_files_is_refused(
    tmp_path: Path, shared_umask: None, change: Callable[[dict], object]
) -> None:
    _, saved = a_backup(tmp_path)
    rewrite_manifest(saved, change)
    with pytest.raises(BackupError):
        read_manifest(saved)
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="cannot be read"):
        read_manifest(saved)


def hostile_tar(saved: Path, members: list[tarfile.TarInfo]) -> None:
    """raw.tar replaced, and the manifest's sha256 and count updated to match (as anyone
    who can write to the backup folder can)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    (saved / "raw.tar").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    rewrite_manifest(saved, lambda m: m.update(raw_files=len(members)))
    rewrite_manifest(saved, lambda m: m["files"].update({"raw.tar": digest}))


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "members",
    [
        [member("ok/file"), member("../escape")],
        [member("ABSOLUTE/escape")],
        [member("ok/link", tarfile.SYMTYPE, "/etc/passwd")],
        [member("ok/hard", tarfile.LNKTYPE, "ok/file")],
        [member("ok/dir", tarfile.DIRTYPE)],
        [member("ok/fifo", tarfile.FIFOTYPE)],
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "directory", "fifo"],
)
def test_a_hostile_raw_tar_is_refused_before_the_database_is_touched(
    tmp_path: Path, shared_umask: None, members: list[tarfile.TarInfo]
) -> None:
    _, saved = a_backup(tmp_path)
    for info in members:  # an absolute path, inside this test's own folder
        info.name = info.name.replace("ABSOLUTE", str(tmp_path))
    hostile_tar(saved, members)
    config = fresh_config(tmp_path)
    with pytest.raises(BackupError, match=r"raw\.tar"):
        restore(config, saved)
    assert not (tmp_path / "escape").exists()
    engine = make_engine(config.database.url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_raw_tar_that_is_not_a_tar_is_a_backup_error(tmp_path: Path, shared_umask: None) -> None:
    _, saved = a_backup(tmp_path)
    (saved / "raw.tar").write_bytes(b"not a tar at all" * 100)
    digest = hashlib.sha256((saved / "raw.tar").read_bytes()).hexdigest()
    rewrite_manifest(saved, lambda m: m["files"].update({"raw.tar": digest}))
    with pytest.raises(BackupError, match=r"raw\.tar cannot be restored"):
        restore(fresh_config(tmp_path), saved)


def table_names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_two_names_for_one_raw_file_are_refused_before_anything_is_restored(
    tmp_path: Path, shared_umask: None
) -> None:
    _, saved = a_backup(tmp_path)
    hostile_tar(saved, [member("ab/file"), member("ab//file")])
    config = fresh_config(tmp_path)
    with pytest.raises(BackupError, match=r"raw\.tar holds 2 file"):
        restore(config, saved)
    assert table_names(config.database.url) == []


def test_a_raw_store_that_cannot_be_written_leaves_nothing_restored(
    tmp_path: Path, shared_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw store's place names a file, then a folder that cannot be written to: a clear
    error each time, nothing restored, and once put right the same restore goes through."""
    _, saved = a_backup(tmp_path)
    config = fresh_config(tmp_path)
    raw_dir = Path(config.storage.raw_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    raw_dir.write_text("")
    with pytest.raises(BackupError, match="is not a folder"):
        restore(config, saved)
    raw_dir.unlink()

    def read_only(**_kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(raw_dir.parent))

    with monkeypatch.context() as patched:
        patched.setattr(backup_module.tempfile, "mkdtemp", read_only)
        with pytest.raises(BackupError, match=r"cannot be restored beside .*Nothing was restored"):
            restore(config, saved)
    assert table_names(config.database.url) == []
    summary = restore(config, saved)
    assert summary.raw_files == 1 and len([p for p in raw_dir.rglob("*") if p.is_file()]) == 1
    assert [p.name for p in raw_dir.parent.iterdir() if "restoring" in p.name] == []


def test_a_database_restore_that_fails_leaves_no_raw_store_behind(
    tmp_path: Path, shared_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, saved = a_backup(tmp_path)
    config = fresh_config(tmp_path)

    def refused(*_args: object) -> None:
        raise BackupError("pg_restore said no")

    monkeypatch.setattr(backup_module, "_restore_database", refused)
    with pytest.raises(BackupError, match="said no"):
        restore(config, saved)
    raw_dir = Path(config.storage.raw_dir)
    assert not raw_dir.exists() or not any(raw_dir.iterdir())
    assert [p.name for p in raw_dir.parent.iterdir() if "restoring" in p.name] == []


def test_a_database_made_while_the_restore_runs_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite file was absent when the restore checked it was empty; the service
    started meanwhile and made it, with tables and a row. The restore refuses rather than
    replacing it."""
    import sqlite3

    _, saved = a_backup(tmp_path)
    config = fresh_config(tmp_path / "new")
    target = Path(config.database.url.removeprefix("sqlite:///"))
    real = backup_module._untar_raw_store

    def service_started_meanwhile(*args: Any, **kwargs: Any) -> Any:
        unpacked = real(*args, **kwargs)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(target) as live:
            live.execute("CREATE TABLE work (what TEXT)")
            live.execute("INSERT INTO work VALUES ('mail taken in')")
        return unpacked

    monkeypatch.setattr(backup_module, "_untar_raw_store", service_started_meanwhile)
    with pytest.raises(BackupError, match="has tables now"):
        restore(config, saved)
    with sqlite3.connect(target) as live:
        assert live.execute("SELECT what FROM work").fetchall() == [("mail taken in",)]
