"""`pcse demo` in a fresh folder: its final table, what it filed in var/sent, what it kept."""

from __future__ import annotations

import mailbox
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from demo.mail import stories
from demo.run import DEMO_OWNED, DemoError, clear_var

PCSE = str(Path(sys.executable).with_name("pcse"))

# What each sample should come to, as PCSE's rules and the approvers' answers say.
EXPECTED = {
    "gpp_form": ("A81001", "completed"),
    "user_admin_form": ("A81005", "completed"),
    "flattened": ("A81003", "rejected"),
    "pcn_form": ("U12345", "completed"),
    "pl_email": ("A81001", "completed"),
    "oph_email": ("TP7011", "answered"),
    "main_contact": ("A81002", "completed"),
    "fifth_admin": ("A81004", "rejected"),
    "performer": ("-", "answered"),
}
ROW = re.compile(r"^(PCSE-\d{4}-\d{6})\s{2,}(.+?)\s{2,}(\S+)\s{2,}(\S+)\s{2,}(\d+)(?::\s(.*))?$")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run in a folder where an earlier run left data and someone left a file."""
    cwd = tmp_path_factory.mktemp("demo")
    (cwd / "var" / "sent" / "new").mkdir(parents=True)
    (cwd / "var" / "sent" / "new" / "stale.eml").write_bytes(b"Subject: from an earlier run\n\n")
    (cwd / "var" / "pcse.sqlite3").write_bytes(b"not a database")
    (cwd / "var" / ".pcse-demo").write_text("made by an earlier demo")
    (cwd / "var" / "notes.txt").write_text("mine")
    result = subprocess.run(
        [PCSE, "demo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd, result.stdout


def table_rows(output: str) -> dict[str, tuple[str, str, str, int, str]]:
    """The final table, by sample title: (ref, org, state, emails, purposes)."""
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line.rstrip())
        if match:
            ref, title, org, state, count, purposes = match.groups()
            rows[title] = (ref, org, state, int(count), purposes or "")
    return rows


@pytest.mark.slow
def test_demo_prints_every_case_with_its_state(demo_run: tuple[Path, str]) -> None:
    _, output = demo_run
    rows = table_rows(output)
    titles = {s.key: s.title for s in stories()}
    for key, (org, state) in EXPECTED.items():
        assert titles[key] in rows, f"{titles[key]} missing from:\n{output}"
        _, got_org, got_state, count, _ = rows[titles[key]]
        assert (got_org, got_state) == (org, state), key
        assert count >= 1
    assert "approval_request" in rows[titles["gpp_form"]][4]
    assert "welcome_admin" in rows[titles["gpp_form"]][4]
    assert "admin_limit_reached" in rows[titles["fifth_admin"]][4]
    # The out-of-office opened no case and is listed as recorded only.
    assert titles["out_of_office"] not in rows
    assert "peter.nolan@nhs.net: automatic, ignored" in output


@pytest.mark.slow
def test_demo_files_every_email_in_var_sent(demo_run: tuple[Path, str]) -> None:
    cwd, output = demo_run
    box = mailbox.Maildir(cwd / "var" / "sent", create=False)
    sent = [message_from_bytes(box.get_bytes(k), policy=policy.default) for k in box.iterkeys()]
    rows = table_rows(output)
    assert len(sent) == sum(row[3] for row in rows.values())
    assert f"{len(sent)} emails are in var/sent/" in output
    refs = {row[0] for row in rows.values()}
    for message in sent:
        assert any(f"[{ref}]" in str(message["Subject"]) for ref in refs), message["Subject"]
        assert "peter.nolan@nhs.net" not in str(message["To"])
    approvals = [m for m in sent if "APV-" in str(m["Subject"])]
    assert approvals, "approval requests went to the approvers"


@pytest.mark.slow
def test_demo_starts_fresh_and_keeps_what_is_not_its_own(demo_run: tuple[Path, str]) -> None:
    cwd, output = demo_run
    assert "Clearing the demo's data under var/" in output
    assert not (cwd / "var" / "sent" / "new" / "stale.eml").exists()
    assert (cwd / "var" / "notes.txt").read_text() == "mine"
    assert "Round 2" in output and "answers" in output


def test_clear_var_removes_only_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    var = tmp_path / "var"
    for name in DEMO_OWNED:
        path = var / name
        if "." in name:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            (path / "new").mkdir(parents=True)
    (var / "config.toml").write_text("keep")
    (var / ".pcse-demo").write_text("made by the demo")
    outside = tmp_path / "elsewhere"
    (outside / "new").mkdir(parents=True)
    said: list[str] = []
    clear_var(said.append)
    assert sorted(p.name for p in var.iterdir()) == ["config.toml"]
    assert outside.exists()
    assert said and "Clearing" in said[0]


def test_clear_var_keeps_data_the_demo_did_not_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of real work on the local defaults is never removed by the demo."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "pcse.sqlite3").write_bytes(b"real work")
    with pytest.raises(DemoError, match="did not make"):
        clear_var(lambda _: None)
    assert (tmp_path / "var" / "pcse.sqlite3").read_bytes() == b"real work"


def test_clear_var_refuses_a_link_out_of_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "precious"
    (outside / "new").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / ".pcse-demo").write_text("made by the demo")
    (tmp_path / "var" / "sent").symlink_to(outside)
    with pytest.raises(DemoError, match="outside"):
        clear_var(lambda _: None)
    assert (outside / "new").exists()


def test_a_second_run_keeps_the_caseworker_accounts_added_since(tmp_path: Path) -> None:
    """The demo's closing lines suggest adding an account to sign in to the pages: running
    the demo again starts its data afresh but keeps that account and its password."""
    from caseworker.accounts import authenticate
    from core.db import Database
    from demo.accounts import saved_accounts

    def pcse(*args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [PCSE, *args], cwd=tmp_path, input=stdin, capture_output=True, text=True,
            timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = pcse("demo")
    password = "correct horse battery staple"
    pcse("caseworker", "add", "Casey@PCSE.nhs.uk", "--name", "Casey Worker", "--supervisor",
         stdin=f"{password}\n{password}\n")  # fmt: skip
    again = pcse("demo")
    assert "Caseworker accounts kept from the last run: casey@pcse.nhs.uk" in again

    def outcomes(output: str) -> dict[str, tuple[str, str, int, str]]:
        return {title: row[1:] for title, row in table_rows(output).items()}  # refs vary

    assert outcomes(again) == outcomes(first)  # the demo's own data started afresh
    db = Database(f"sqlite:///{tmp_path / 'var' / 'pcse.sqlite3'}")
    try:
        signed_in = authenticate(db, "casey@pcse.nhs.uk", password)
    finally:
        db.dispose()
    assert (signed_in.name, signed_in.is_supervisor) == ("Casey Worker", True)
    (tmp_path / "broken.sqlite3").write_bytes(b"not a database")
    assert saved_accounts(tmp_path / "broken.sqlite3") == []


def test_accounts_wait_in_their_own_file_until_they_are_back(tmp_path: Path) -> None:
    """A run that fails after clearing the old database loses no account: they wait in a
    file only their owner can read, and the next run puts them back."""
    from caseworker.accounts import add_caseworker, authenticate
    from core.db import Database
    from demo.accounts import PENDING, forget_pending, hold_accounts, put_back
    from service.schema import upgrade

    database = tmp_path / "pcse.sqlite3"
    old = Database(f"sqlite:///{database}")
    upgrade(old.engine)
    with old.transaction() as session:
        add_caseworker(
            session, email="casey@pcse.nhs.uk", name="Casey", password="correct horse battery"
        )
    old.dispose()
    assert [a["email"] for a in hold_accounts(database)] == ["casey@pcse.nhs.uk"]
    assert (tmp_path / PENDING).stat().st_mode & 0o777 == 0o600
    database.unlink()  # cleared; the run then failed before the new database was made
    held = hold_accounts(database)  # the next run
    assert [a["email"] for a in held] == ["casey@pcse.nhs.uk"]
    new = Database(f"sqlite:///{database}")
    try:
        upgrade(new.engine)
        assert put_back(new, held) == ["casey@pcse.nhs.uk"]
        forget_pending(database)
        assert authenticate(new, "casey@pcse.nhs.uk", "correct horse battery").name == "Casey"
    finally:
        new.dispose()
    assert not (tmp_path / PENDING).exists()
