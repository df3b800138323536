"""Supervisors manage accounts; `pcse caseworker add` creates them from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import event

from caseworker.accounts import (
    AccountError,
    activate_caseworker,
    add_caseworker,
    authenticate,
    deactivate_caseworker,
    find_caseworker,
)
from tests.fixtures.browser import SUPERVISOR, WebClient

LONG = "another long password"
NEW = "new.starter@nhs.net"


def test_supervisor_adds_an_account_that_can_sign_in(web: WebClient) -> None:
    web.sign_in(SUPERVISOR)
    response = web.post_form(
        "/accounts/add",
        {"email": "New.Person@NHS.net", "name": "new person", "password": "another long password"},
        from_page="/accounts",
        follow=True,
    )
    assert "Added an account for new.person@nhs.net." in response.text
    with web.settings.database.transaction() as session:
        account = find_caseworker(session, "new.person@nhs.net")
        assert account.name == "New Person" and not account.is_supervisor
        assert account.password_hash.startswith("$argon2id$")
    assert authenticate(web.settings.database, "new.person@nhs.net", "another long password").id


def test_an_address_added_by_another_supervisor_meanwhile_is_a_refusal(web: WebClient) -> None:
    """Two supervisors add one address at once: the other's account is written between this
    one's check and its own write, and this one is told so (the page's 409), not a 500."""
    db = web.settings.database
    refused = pytest.raises(AccountError, match=r"already an account for new\.starter@nhs\.net")
    with refused, db.transaction() as session:

        @event.listens_for(session, "before_flush", once=True)
        def meanwhile(*_: object) -> None:
            with db.transaction() as other:
                add_caseworker(other, email=NEW, name="New Starter", password=LONG)

        add_caseworker(session, email=NEW, name="New Starter", password=LONG)
    with db.transaction() as session:
        assert find_caseworker(session, NEW) is not None


def test_add_account_problems_are_shown_by_field(web: WebClient) -> None:
    web.sign_in(SUPERVISOR)
    response = web.post_form(
        "/accounts/add", {"email": "", "name": "", "password": ""}, from_page="/accounts"
    )
    assert response.status_code == 400
    for message in (
        "Enter the caseworker's email address",
        "Enter the caseworker's name",
        "Enter a password for the account",
    ):
        assert escape(message) in response.text
    short = web.post_form(
        "/accounts/add",
        {"email": "x@nhs.net", "name": "X Y", "password": "short"},
        from_page="/accounts",
    )
    assert short.status_code == 409
    assert "at least 12 characters" in short.text
    taken = web.post_form(
        "/accounts/add",
        {"email": SUPERVISOR, "name": "X Y", "password": "long enough password"},
        from_page="/accounts",
    )
    assert "There is already an account for" in taken.text


def test_supervisor_deactivates_an_account_but_not_their_own(web: WebClient) -> None:
    web.sign_in(SUPERVISOR)
    with web.settings.database.transaction() as session:
        other = find_caseworker(session, "casey.worker@nhs.net").id
        me = find_caseworker(session, SUPERVISOR).id
    done = web.post_form(f"/accounts/{other}/deactivate", {}, from_page="/accounts", follow=True)
    assert "Deactivated the account for casey.worker@nhs.net." in done.text
    refused = web.post_form(f"/accounts/{me}/deactivate", {}, from_page="/accounts")
    assert refused.status_code == 409
    assert "You cannot deactivate your own account." in refused.text
    with web.settings.database.transaction() as session:
        assert not find_caseworker(session, "casey.worker@nhs.net").active
    web.post_form("/sign-out", {})
    assert web.sign_in("casey.worker@nhs.net").status_code == 401


def test_a_session_of_a_deactivated_account_does_not_come_back_with_it(web: WebClient) -> None:
    """Deactivated, perhaps because its cookie was stolen, then activated again: the cookie
    from before stays dead."""
    web.sign_in("casey.worker@nhs.net")
    assert web.client.get("/", follow_redirects=False).status_code == 200
    with web.settings.database.transaction() as session:
        casey = find_caseworker(session, "casey.worker@nhs.net")
        supervisor = find_caseworker(session, SUPERVISOR)
        deactivate_caseworker(session, casey.id, by=supervisor)
    with web.settings.database.transaction() as session:
        activate_caseworker(session, "casey.worker@nhs.net")
    assert web.client.get("/", follow_redirects=False).status_code == 303


def _pcse(args: list[str], db_url: str, tmp_path, stdin: str) -> subprocess.CompletedProcess:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    pcse = str(Path(sys.executable).parent / "pcse")
    return subprocess.run(
        [pcse, "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_cli_adds_an_account_with_the_password_from_stdin(db_url, database, tmp_path) -> None:
    done = _pcse(
        ["caseworker", "add", "Pat@nhs.net", "--name", "Pat Jones", "--supervisor"],
        db_url,
        tmp_path,
        "a password from stdin\n",
    )
    assert done.returncode == 0, done.stderr
    assert "Added supervisor pat@nhs.net." in done.stdout
    assert authenticate(database, "pat@nhs.net", "a password from stdin").is_supervisor
    short = _pcse(["caseworker", "add", "sam@nhs.net", "--name", "Sam"], db_url, tmp_path, "x\n")
    assert short.returncode == 1
    assert short.stderr.strip() == "The password must be at least 12 characters long."
    assert "Traceback" not in short.stderr
