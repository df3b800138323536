"""Commands serve only a database whose schema is at this release's revision.

Code and schema of different releases fail message by message (a function or column the
one expects and the other lacks), so every command but `pcse db upgrade` refuses first and
says what to do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import text

from core.db import make_engine
from service.revisions import head_revision
from service.schema import alembic_config

PCSE = str(Path(sys.executable).with_name("pcse"))


def config_for(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'pcse.sqlite3'}"
    path = tmp_path / "pcse.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n[storage]\nraw_dir = "{tmp_path / "raw"}"\n',
        encoding="utf-8",
    )
    return path, url


def pcse(config: Path, *args: str) -> tuple[int, str]:
    """The command as an operator runs it: its status and what it said."""
    done = subprocess.run(
        [PCSE, "--config", str(config), *args], capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_a_schema_behind_the_release_is_refused_until_upgraded(tmp_path: Path) -> None:
    config, url = config_for(tmp_path)
    before = f"{int(head_revision()) - 1:04d}"
    command.upgrade(alembic_config(url), before)  # as the release before this one left it

    code, said = pcse(config, "status")

    assert code != 0
    assert f"at revision {before}; this release needs {head_revision()}" in said
    assert "pcse db upgrade" in said
    code, said = pcse(config, "db", "upgrade")
    assert code == 0, said
    code, said = pcse(config, "status")
    assert code == 0, said


def test_a_schema_ahead_of_the_release_is_refused(tmp_path: Path) -> None:
    """A release rolled back over a database a newer one upgraded."""
    config, url = config_for(tmp_path)
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    code, said = pcse(config, "status")

    assert code != 0
    assert "at revision 9999, newer than this release knows" in said
