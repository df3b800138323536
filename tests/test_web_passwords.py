"""Sign-in under pressure (parallel guesses, floods, busy hashing), the absolute session
lifetime, and passwords: change, supervisor reset, `pcse caseworker set-password`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from caseworker import passwordcheck
from caseworker.accounts import (
    LOCK_OUT_FOR,
    MAX_FAILED_SIGN_INS,
    SIGN_IN_REFUSED,
    SignInRefused,
    add_caseworker,
    authenticate,
    find_caseworker,
    verify_password,
)
from caseworker.app import create_app
from core.db import Database
from service.config import ConfigError, from_mapping
from service.web import web_settings
from tests.fixtures.browser import (
    CASEWORKER,
    PASSWORD,
    SUPERVISOR,
    TEST_SECRET,
    WebClient,
    add_accounts,
    csrf_from,
    make_web_settings,
)

NEW_PASSWORD = "a brand new passphrase"
WRONG = "not the password at all"


def _web(database: Database, tmp_path: Path, **overrides) -> WebClient:
    settings = dataclasses.replace(make_web_settings(database, tmp_path / "raw"), **overrides)
    return WebClient(TestClient(create_app(settings), base_url="http://testserver"), settings)


@pytest.fixture
def roomy(database: Database, tmp_path: Path) -> Iterator[WebClient]:
    """The app with the two accounts, limits raised and a long wait for a hash slot, so
    that only the lock-out decides what happens to parallel attempts."""
    add_accounts(database)
    web = _web(
        database,
        tmp_path,
        password_checks_per_client=1000,
        password_checks_overall=1000,
        hash_wait_seconds=120,
    )
    with web.client:
        yield web


def _account(web: WebClient, email: str = CASEWORKER):
    with web.settings.database.transaction() as session:
        account = find_caseworker(session, email)
        session.expunge(account)
        return account


def _other_browser(web: WebClient, email: str = CASEWORKER) -> TestClient:
    other = TestClient(web.client.app, base_url="http://testserver")
    other.__enter__()
    WebClient(other, web.settings).sign_in(email)
    assert other.get("/", follow_redirects=False).status_code == 200
    return other


# --------------------------------------------------------------------------- lock-out


def test_parallel_wrong_passwords_are_each_counted_and_lock_the_account(roomy: WebClient) -> None:
    token = csrf_from(roomy.get("/sign-in").text)
    form = {"email": CASEWORKER, "password": WRONG, "csrf_token": token}

    def attempt(_: int):
        return roomy.client.post("/sign-in", data=form, follow_redirects=False)

    answers = []
    with ThreadPoolExecutor(max_workers=12) as pool:
        for _wave in range(3):
            answers += list(pool.map(attempt, range(12)))
    assert {a.status_code for a in answers} == {401}
    # Every refusal in the same words, locked or not (an address with no account gets them).
    assert all(SIGN_IN_REFUSED in a.text for a in answers)
    account = _account(roomy)
    assert account.failed_logins == 36
    assert account.locked_until is not None
    assert roomy.sign_in().status_code == 401  # the right password waits for the lock-out
    roomy.settings.env.clock.advance(seconds=LOCK_OUT_FOR.total_seconds() + 1)
    assert roomy.sign_in().status_code == 303
    assert _account(roomy).failed_logins == 0


@pytest.mark.parametrize("right", ["sent first", "sent last"])
def test_parallel_guesses_cannot_pass_the_limit_before_a_right_password(
    roomy: WebClient, monkeypatch: pytest.MonkeyPatch, right: str
) -> None:
    # Four wrong passwords, then eight parallel attempts, one of them right: the right one
    # is checked only if it is among the first allowed, never after the fifth failure.
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        assert roomy.sign_in(password=WRONG).status_code == 401
    # Every refusal reads the same, so the checks against the account's own hash (not the
    # stand-in a locked account is checked against) are counted as they are made.
    own_hash = _account(roomy).password_hash
    checks: list[str] = []

    def counted(stored: str, password: str) -> bool:
        if stored == own_hash:
            checks.append(password)
        return verify_password(stored, password)

    monkeypatch.setattr(passwordcheck, "verify_password", counted)
    token = csrf_from(roomy.get("/sign-in").text)
    passwords = [WRONG] * 7 + [PASSWORD] if right == "sent last" else [PASSWORD] + [WRONG] * 7

    def attempt(password: str):
        return roomy.client.post(
            "/sign-in",
            data={"email": CASEWORKER, "password": password, "csrf_token": token},
            follow_redirects=False,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, passwords))
    signed_in = [a.status_code for a in answers].count(303)
    # One check only is allowed before the account locks. Were it the right password, the
    # sign-in succeeds and, as any sign-in does, clears the count and the lock-out, so the
    # attempts still waiting for a hash are then checked afresh: never more of them than
    # the allowance, and never a right password after a fifth failure.
    assert checks[:1] in ([WRONG], [PASSWORD])
    if checks[0] == WRONG:
        assert checks == [WRONG] and signed_in == 0
    else:
        assert signed_in == 1
        assert checks[1:] == [WRONG] * len(checks[1:])
        assert len(checks[1:]) <= MAX_FAILED_SIGN_INS


def test_authenticate_commits_each_failure_and_locks(database: Database) -> None:
    add_accounts(database)
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(SignInRefused) as refused:
            authenticate(database, CASEWORKER, WRONG)
        assert not refused.value.locked
    with pytest.raises(SignInRefused) as refused:
        authenticate(database, CASEWORKER, PASSWORD)
    assert refused.value.locked
    with pytest.raises(SignInRefused) as refused:
        authenticate(database, "nobody@nhs.net", PASSWORD)
    assert not refused.value.locked


# --------------------------------------------------------------------------- limits


def test_too_many_attempts_from_one_address_are_refused_until_the_window_passes(
    database: Database, tmp_path: Path
) -> None:
    add_accounts(database)
    web = _web(database, tmp_path)
    per_client = web.settings.password_checks_per_client
    with web.client:
        for _ in range(3):
            assert web.sign_in(SUPERVISOR, WRONG).status_code == 401
        for _ in range(per_client - 3):
            assert web.sign_in(SUPERVISOR, "").status_code == 400
        refused = web.sign_in(SUPERVISOR, WRONG)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "60"
        assert "Too many attempts" in refused.text and "Wait 1 minute" in refused.text
        # Refused before the password was looked at: the account counted only three.
        assert _account(web, SUPERVISOR).failed_logins == 3
        with TestClient(web.client.app, client=("192.0.2.7", 40000)) as elsewhere:
            assert WebClient(elsewhere, web.settings).sign_in(SUPERVISOR).status_code == 303
        web.settings.env.clock.advance(seconds=30)
        again = web.sign_in(SUPERVISOR, WRONG)
        assert again.status_code == 429 and again.headers["retry-after"] == "30"
        web.settings.env.clock.advance(seconds=31)
        assert web.sign_in(SUPERVISOR).status_code == 303


def test_all_addresses_together_are_limited_too(database: Database, tmp_path: Path) -> None:
    add_accounts(database)
    web = _web(database, tmp_path, password_checks_per_client=5, password_checks_overall=8)
    with web.client:
        for number in range(8):
            with TestClient(web.client.app, client=(f"192.0.2.{number}", 40000)) as client:
                assert WebClient(client, web.settings).sign_in(SUPERVISOR, "").status_code == 400
        with TestClient(web.client.app, client=("198.51.100.1", 40000)) as newcomer:
            assert WebClient(newcomer, web.settings).sign_in(SUPERVISOR).status_code == 429
        web.settings.env.clock.advance(seconds=61)
        with TestClient(web.client.app, client=("198.51.100.1", 40000)) as newcomer:
            assert WebClient(newcomer, web.settings).sign_in(SUPERVISOR).status_code == 303


def test_posts_without_the_form_token_use_up_no_limit(database: Database, tmp_path: Path) -> None:
    """Anyone can post to the sign-in page without a token, from many addresses: refused
    as forged before being counted, they cannot lock everyone else out."""
    add_accounts(database)
    web = _web(database, tmp_path, password_checks_per_client=5, password_checks_overall=8)
    with web.client:
        for number in range(8):
            with TestClient(web.client.app, client=(f"192.0.2.{number}", 40000)) as client:
                for _ in range(5):
                    forged = client.post("/sign-in", data={"email": SUPERVISOR, "password": "x"})
                    assert forged.status_code == 403
        with TestClient(web.client.app, client=("198.51.100.1", 40000)) as newcomer:
            assert WebClient(newcomer, web.settings).sign_in(SUPERVISOR).status_code == 303


def test_when_every_hash_slot_is_taken_the_answer_is_try_again(
    database: Database, tmp_path: Path
) -> None:
    add_accounts(database)
    web = _web(database, tmp_path, concurrent_hashes=1, hash_wait_seconds=0.2)
    with web.client:
        gate = web.client.app.state.hash_gate
        assert gate._slots.acquire(blocking=False)  # another sign-in is hashing
        try:
            busy = web.sign_in()
        finally:
            gate._slots.release()
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "5"
        assert "Wait a few seconds and try again" in busy.text
        assert _account(web).failed_logins == 0  # not counted: nothing was checked
        assert web.sign_in().status_code == 303


# --------------------------------------------------------------------------- sessions


def test_a_session_ends_after_its_absolute_lifetime_however_active(web: WebClient) -> None:
    clock = web.settings.env.clock
    assert web.sign_in().status_code == 303
    for _ in range(11):
        clock.advance(hours=1)
        assert web.get("/", follow_redirects=False).status_code == 200
    clock.advance(minutes=59)
    assert web.get("/", follow_redirects=False).status_code == 200
    clock.advance(minutes=1)
    ended = web.get("/directory", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/sign-in?next=%2Fdirectory"
    assert "a session lasts at most 12 hours" in web.get("/sign-in").text
    assert web.sign_in().status_code == 303  # a new session, a new twelve hours
    assert web.get("/", follow_redirects=False).status_code == 200


def test_the_absolute_lifetime_comes_from_the_web_section(
    monkeypatch, database: Database, tmp_path: Path
) -> None:
    monkeypatch.setenv("PCSE_WEB_SECRET", TEST_SECRET)
    config = from_mapping({"web": {"session_absolute_hours": 1.5}})
    assert web_settings(config, database).session_absolute_hours == 1.5
    assert web_settings(from_mapping({}), database).session_absolute_hours == 12
    with pytest.raises(ConfigError, match="session_absolute_hours"):
        web_settings(from_mapping({"web": {"session_absolute_hours": 0}}), database)


# --------------------------------------------------------------------------- change


def _change(web: WebClient, current: str, new: str, again: str | None = None):
    return web.post_form(
        "/account/password",
        {
            "current_password": current,
            "new_password": new,
            "confirm_password": new if again is None else again,
        },
        from_page="/account/password",
    )


def test_changing_the_password_ends_the_other_sessions_but_not_this_one(web: WebClient) -> None:
    web.sign_in()
    other = _other_browser(web)
    try:
        wrong = _change(web, WRONG, NEW_PASSWORD)
        assert wrong.status_code == 401
        assert "Your current password is not right" in wrong.text
        assert _account(web).failed_logins == 1  # a wrong current password counts
        mismatch = _change(web, PASSWORD, NEW_PASSWORD, "something else entirely")
        assert mismatch.status_code == 400
        assert "The passwords you entered do not match" in mismatch.text
        short = _change(web, PASSWORD, "too short")
        assert "at least 12 characters" in short.text
        same = _change(web, PASSWORD, PASSWORD)
        assert "must be different" in same.text
        assert other.get("/", follow_redirects=False).status_code == 200  # nothing changed

        done = _change(web, PASSWORD, NEW_PASSWORD)
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert "Your password has been changed" in web.get("/").text
        assert web.get("/", follow_redirects=False).status_code == 200
        assert other.get("/", follow_redirects=False).status_code == 303
    finally:
        other.__exit__(None, None, None)
    assert _account(web).failed_logins == 0
    web.post_form("/sign-out", {})
    assert web.sign_in(password=PASSWORD).status_code == 401
    assert web.sign_in(password=NEW_PASSWORD).status_code == 303


# --------------------------------------------------------------------------- reset


def test_a_supervisor_reset_ends_sessions_and_forces_a_new_password(web: WebClient) -> None:
    target = _account(web).id
    victim = _other_browser(web)  # the caseworker, signed in elsewhere
    try:
        for _ in range(MAX_FAILED_SIGN_INS):
            web.sign_in(password=WRONG)  # and locked out
        web.sign_in(SUPERVISOR)
        page = web.get(f"/accounts/{target}/password")
        assert "Reset the password for Casey Worker" in page.text
        short = web.post_form(
            f"/accounts/{target}/password", {"password": "short"}, from_page="/accounts"
        )
        assert short.status_code == 400 and "at least 12 characters" in short.text
        done = web.post_form(
            f"/accounts/{target}/password",
            {"password": "temporary password 1"},
            from_page="/accounts",
            follow=True,
        )
        assert "Reset the password for casey.worker@nhs.net" in done.text
        assert "Must change password" in done.text
        assert victim.get("/", follow_redirects=False).status_code == 303
    finally:
        victim.__exit__(None, None, None)
    web.post_form("/sign-out", {})

    signed_in = web.sign_in(password="temporary password 1")  # the lock-out is cleared
    assert signed_in.headers["location"] == "/account/password"
    for path in ("/", "/directory", "/accounts"):
        answer = web.get(path, follow_redirects=False)
        assert answer.headers["location"] == "/account/password", path
    page = web.get("/account/password")
    assert "A supervisor has reset your password" in page.text
    assert _change(web, "temporary password 1", NEW_PASSWORD).status_code == 303
    assert web.get("/", follow_redirects=False).status_code == 200
    assert not _account(web).must_change_password


def test_only_a_supervisor_resets_and_not_their_own(web: WebClient) -> None:
    supervisor = _account(web, SUPERVISOR).id
    web.sign_in(CASEWORKER)
    assert web.get(f"/accounts/{supervisor}/password").status_code == 403
    refused = web.post_form(f"/accounts/{supervisor}/password", {"password": "i want your account"})
    assert refused.status_code == 403
    web.post_form("/sign-out", {})
    assert web.sign_in(SUPERVISOR).status_code == 303  # the password is unchanged
    own = web.post_form(
        f"/accounts/{supervisor}/password", {"password": "a new one for me"}, from_page="/accounts"
    )
    assert own.status_code == 409
    assert "Change your own password" in own.text
    assert not _account(web, SUPERVISOR).must_change_password


def test_a_supervisor_cannot_reset_another_supervisors_password(web: WebClient) -> None:
    """The one who resets chooses the password and could sign in as the other first."""
    with web.settings.database.transaction() as session:
        other = add_caseworker(
            session,
            email="sue.super@nhs.net",
            name="Sue Super",
            password=NEW_PASSWORD,
            supervisor=True,
        ).id
    web.sign_in(SUPERVISOR)
    accounts = web.get("/accounts").text
    assert f'href="/accounts/{_account(web).id}/password"' in accounts  # a caseworker's: offered
    assert f'href="/accounts/{other}/password"' not in accounts
    refused = web.post_form(
        f"/accounts/{other}/password", {"password": "i will be sue now"}, from_page="/accounts"
    )
    assert refused.status_code == 409
    assert "pcse caseworker set-password" in refused.text
    web.post_form("/sign-out", {})
    assert web.sign_in("sue.super@nhs.net", password=NEW_PASSWORD).status_code == 303


# --------------------------------------------------------------------------- command line


def _pcse(db_url: str, tmp_path: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    from service.cli import cli

    config = tmp_path / "pcse.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), *args], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        return 1, str(result.exception)  # the entry point prints it as one line
    return result.exit_code, result.stdout


def test_cli_set_password_ends_sessions_and_clears_the_lock_out(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    add_accounts(database)
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(SignInRefused):
            authenticate(database, CASEWORKER, WRONG)
    with database.transaction() as session:
        before = find_caseworker(session, CASEWORKER)
        assert before.locked_until is not None
        epoch = before.session_epoch
    code, out = _pcse(
        db_url,
        tmp_path,
        "caseworker",
        "set-password",
        "Casey.Worker@nhs.net",
        stdin="a password from stdin\n",
    )
    assert code == 0, out
    assert out.strip() == "Set the password for casey.worker@nhs.net; its sessions have ended."
    account = authenticate(database, CASEWORKER, "a password from stdin")
    assert account.session_epoch == epoch + 1
    assert account.locked_until is None and not account.must_change_password
    code, _ = _pcse(
        db_url,
        tmp_path,
        "caseworker",
        "set-password",
        CASEWORKER,
        "--temporary",
        stdin="a temporary password\n",
    )
    assert code == 0
    with database.transaction() as session:
        assert find_caseworker(session, CASEWORKER).must_change_password
    assert _pcse(db_url, tmp_path, "caseworker", "set-password", CASEWORKER, stdin="short\n") == (
        1,
        "The password must be at least 12 characters long.",
    )
    assert _pcse(
        db_url,
        tmp_path,
        "caseworker",
        "set-password",
        "nobody@nhs.net",
        stdin="long enough password\n",
    ) == (1, "There is no account for nobody@nhs.net.")


def test_cli_activate_brings_back_a_deactivated_account(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    add_accounts(database)
    assert _pcse(db_url, tmp_path, "caseworker", "activate", CASEWORKER) == (
        1,
        "The account for casey.worker@nhs.net is already active.",
    )
    with database.transaction() as session:
        find_caseworker(session, CASEWORKER).active = False
    code, out = _pcse(db_url, tmp_path, "caseworker", "activate", CASEWORKER)
    assert (code, out.strip()) == (0, "Reactivated casey.worker@nhs.net.")
    assert authenticate(database, CASEWORKER, PASSWORD).active


def test_an_ipv6_client_is_limited_by_its_slash_64_not_by_each_address(
    database: Database, tmp_path: Path
) -> None:
    """An IPv6 client can pick any of 2^64 addresses in its network: rotating through them
    does not buy more attempts; another /64 is another client."""
    add_accounts(database)
    web = _web(database, tmp_path, password_checks_per_client=3, password_checks_overall=100)
    with web.client:
        for number in range(3):
            with TestClient(web.client.app, client=(f"2001:db8:1:2::{number:x}", 1)) as client:
                assert WebClient(client, web.settings).sign_in(SUPERVISOR, "").status_code == 400
        with TestClient(web.client.app, client=("2001:db8:1:2:ffff::9", 1)) as rotated:
            assert WebClient(rotated, web.settings).sign_in(SUPERVISOR).status_code == 429
        with TestClient(web.client.app, client=("2001:db8:1:3::1", 1)) as neighbour:
            assert WebClient(neighbour, web.settings).sign_in(SUPERVISOR).status_code == 303


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("2001:db8:1:2::7", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("unknown", "unknown"),
    ],
)
def test_the_per_client_key(address: str, key: str) -> None:
    from caseworker.throttle import client_key

    assert client_key({"type": "http", "client": (address, 1)}) == key
