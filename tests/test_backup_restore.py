"""The runbook's backup and restore: `pcse backup` then `pcse restore` into a fresh
database and raw store gives back the cases, the raw messages and the web secret."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.pgcluster import scratch_database
from core.db import Database, make_engine
from intake.rawstore import RawStore
from service.cli import main
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
