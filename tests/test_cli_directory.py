"""The directory commands through the installed `pcse` command, on both databases."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.timeutil import as_utc
from workflow.directory import get_org
from workflow.imports import import_organisations, import_users
from workflow.models import DirectoryEvent

PCSE = Path(sys.executable).parent / "pcse"
ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
SLICE = ROOT / "tests" / "data" / "epraccur-slice.csv"


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "pcse.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return path


def pcse(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PCSE), "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_newcomer_walkthrough(config: Path) -> None:
    for command, csv_name in [
        (("directory", "import-orgs"), "organisations.csv"),
        (("directory", "import-users"), "users.csv"),
        (("approvers", "import"), "signers.csv"),
        (("ael", "import"), "ael.csv"),
    ]:
        done = pcse(config, *command, f"examples/{csv_name}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("0 failed.")
        assert "Traceback" not in done.stderr
    shown = pcse(config, "directory", "show", "a81001", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "code": "A81001",
        "name": "The Densham Surgery",
        "type": "gp_practice",
        "icb_code": "QHM",
        "status": "active",
        "ods_refreshed_at": None,
        "users": [
            {
                "name": "Amina Okafor",
                "email": "amina.okafor@nhs.net",
                "active": True,
                "roles": ["Main Contact", "Practice Order Entry Clerk"],
            },
            {
                "name": "Sarah Patel",
                "email": "sarah.patel@nhs.net",
                "active": True,
                "roles": ["GPP Practice User Administrator", "PL Organisation Administrator"],
            },
            {
                "name": "Tom Hughes",
                "email": "tom.hughes@nhs.net",
                "active": True,
                "roles": ["GPP Practice User Administrator", "Claims Admin"],
            },
        ],
    }
    text = pcse(config, "directory", "show", "A81001").stdout
    assert "Main Contact: Amina Okafor <amina.okafor@nhs.net>" in text
    assert "GP Payments and Pensions (2 of 4 admins):" in text
    assert "  GP Partner: Dr Helen Morris <helen.morris@nhs.net>" in text
    assert "AEL contacts of ICB QHM (GP Payments – General):" in text
    assert "  David Brown <david.brown@nhs.net>" in text
    # Fiona Grant is on the AEL for Retirements only.
    assert "Fiona Grant" not in text


def test_ael_import_with_replace_removes_who_the_list_dropped(config: Path, tmp_path: Path) -> None:
    assert pcse(config, "directory", "import-orgs", "examples/organisations.csv").returncode == 0
    assert pcse(config, "ael", "import", "examples/ael.csv").returncode == 0
    assert "David Brown" in pcse(config, "directory", "show", "A81001").stdout
    lines = (EXAMPLES / "ael.csv").read_text(encoding="utf-8").splitlines()
    dropped = tmp_path / "ael-next-month.csv"
    dropped.write_text(
        "\n".join(line for line in lines if "David Brown" not in line) + "\n", encoding="utf-8"
    )
    done = pcse(config, "ael", "import", str(dropped), "--replace", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["unchanged"], report["removed"]) == (2, 1)
    text = pcse(config, "ael", "import", str(dropped), "--replace").stdout
    assert text.strip().endswith("0 failed.")
    shown = pcse(config, "directory", "show", "A81001").stdout
    assert "Claire Watson" in shown and "David Brown" not in shown


def test_bad_rows_reported_good_rows_loaded(config: Path, db_url: str) -> None:
    db = Database(db_url)
    with db.transaction() as session:
        import_organisations(session, EXAMPLES / "organisations.csv", actor="setup")
        import_users(session, EXAMPLES / "users.csv", actor="setup")
    done = pcse(
        config,
        "directory",
        "import-users",
        "examples/users-with-mistakes.csv",
        "--by",
        "operator@nhs.net",
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"users-with-mistakes.csv row {n}" for n in (4, 5, 6, 7, 8)
    ]
    assert lines[0].endswith(
        "already has 4 GPP Practice User Administrators, the most "
        "allowed; end one of their roles first."
    )
    assert "Traceback" not in done.stderr
    assert done.stdout.strip() == (
        "Users from examples/users-with-mistakes.csv: 8 rows, 3 added, 0 updated, "
        "0 unchanged, 5 failed."
    )
    with db.transaction() as session:
        actors = Counter(
            session.scalars(
                select(DirectoryEvent.actor).where(DirectoryEvent.action == "role_granted")
            )
        )
    db.dispose()
    assert actors == {"setup": 9, "operator@nhs.net": 3}


def test_import_ods(config: Path, db_url: str) -> None:
    done = pcse(config, "directory", "import-ods", str(SLICE), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["skipped"], report["failed"]) == (177, 22, [])
    again = pcse(config, "directory", "import-ods", str(SLICE), "--include-non-gp")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("199 rows, 22 added, 0 updated, 177 unchanged, 0 failed.")
    db = Database(db_url)
    with db.transaction() as session:
        closed = get_org(session, "A81003")
        assert (closed.name, closed.status) == ("VICTORIA MEDICAL PRACTICE", "closed")
        refreshes = [
            e.at for e in session.scalars(select(DirectoryEvent).order_by(DirectoryEvent.id))
        ]
    db.dispose()
    shown = pcse(config, "directory", "show", "A81003", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["status"] == "closed"
    # The second import listed the practice unchanged: the date is still that import's.
    assert datetime.fromisoformat(document["ods_refreshed_at"]) == as_utc(refreshes[-1])
    assert as_utc(refreshes[0]) < as_utc(refreshes[-1])
    text = pcse(config, "directory", "show", "A81003")
    assert "status: closed" in text.stdout
    assert f"last NHS ODS refresh: {document['ods_refreshed_at'][:10]}" in text.stdout


def _fails_with_one_sentence(done: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [sentence]
    assert done.stdout == ""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_user_mistakes_are_one_sentence(config: Path, tmp_path: Path) -> None:
    _fails_with_one_sentence(
        pcse(config, "directory", "show", "A89999"),
        "There is no organisation A89999 in the directory.",
    )
    _fails_with_one_sentence(
        pcse(config, "directory", "import-orgs", "examples/users.csv"),
        "The file examples/users.csv has no column code, type, icb_code; its first line "
        "must be code,name,type,icb_code.",
    )
    _fails_with_one_sentence(
        pcse(config, "ael", "import", str(tmp_path / "none.csv")),
        f"The file {tmp_path / 'none.csv'} does not exist.",
    )
