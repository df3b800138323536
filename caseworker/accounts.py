"""Caseworker accounts: Argon2 password hashes, sign-in with a lock-out, new passwords,
supervisors' changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from caseworker.models import Caseworker
from caseworker.timeutil import when
from core.db import Database
from core.errors import PcseError
from core.timeutil import as_utc, utcnow
from forms.normalise import normalise_email, tidy_name

log = logging.getLogger(__name__)

MAX_FAILED_SIGN_INS = 5
LOCK_OUT_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


@cache
def dummy_hash() -> str:
    """Verified against when the address is unknown, so both answers take the same time.
    Made on first use: hashing costs a tenth of a second, which every command paid at start."""
    return _hasher.hash("not a password anyone has")


class AccountError(PcseError):
    """An account change that cannot be made; the message says why."""


class SignInRefused(PcseError):
    """A sign-in that did not succeed; the message is safe to show on the page."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


WRONG_DETAILS = "The email address or password is not right."
# The sign-in page's one answer to every refusal: telling a locked account from a wrong
# password would tell anyone which addresses have accounts.
SIGN_IN_REFUSED = (
    f"{WRONG_DETAILS} After {MAX_FAILED_SIGN_INS} failed sign-ins an account is locked for "
    f"{LOCK_OUT_FOR.seconds // 60} minutes."
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.")


def find_caseworker(session: Session, email: str) -> Caseworker | None:
    address = (email or "").strip().lower()
    return session.scalars(select(Caseworker).where(Caseworker.email == address)).first()


def add_caseworker(
    session: Session, *, email: str, name: str, password: str, supervisor: bool = False
) -> Caseworker:
    address = normalise_email(email)
    if address is None:
        raise AccountError(f"{email!r} is not a valid email address.")
    cleaned_name = tidy_name(name)
    if not cleaned_name:
        raise AccountError("Enter the caseworker's name.")
    check_new_password(password)
    if find_caseworker(session, address) is not None:
        raise AccountError(f"There is already an account for {address}.")
    account = Caseworker(
        email=address,
        name=cleaned_name,
        password_hash=hash_password(password),
        is_supervisor=supervisor,
        active=True,
        failed_logins=0,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:  # another supervisor added the same address a moment ago
        raise AccountError(f"There is already an account for {address}.") from None
    return account


def is_active_account(session: Session, account_id: int, email: str) -> bool:
    """Is `email` the address of the active account `account_id`?"""
    found = session.scalar(
        select(Caseworker.id).where(
            Caseworker.id == account_id,
            Caseworker.email == (email or "").strip().lower(),
            Caseworker.active.is_(True),
        )
    )
    return found is not None


@dataclass(frozen=True)
class Attempt:
    """A password check, counted as a failure before the password is looked at."""

    account_id: int | None  # None: no active account has the address
    password_hash: str
    failures: int  # counting this attempt
    locked_until: datetime | None  # while set, the password is not checked at all


def begin_attempt(
    session: Session,
    now: datetime,
    *,
    email: str | None = None,
    account_id: int | None = None,
    spared: int | None = None,
) -> Attempt:
    """Count the attempt before the password is checked, in one UPDATE … RETURNING, so that
    however many run in parallel, each gets its own count and no more than
    MAX_FAILED_SIGN_INS passwords are checked before the account locks. Commit it before
    hashing: the hash then holds no lock on the row or the database. The account `spared`
    (a known browser's own, within its own allowance) is counted but not refused by a
    lock-out: anyone could lock it with a few anonymous guesses."""
    if email is not None:
        target = Caseworker.email == (email or "").strip().lower()
    else:
        target = Caseworker.id == account_id
    # A lock-out that has run its course gives a fresh allowance.
    session.execute(
        update(Caseworker)
        .where(target, Caseworker.locked_until <= now)
        .values(failed_logins=0, locked_until=None)
    )
    row = session.execute(
        update(Caseworker)
        .where(target, Caseworker.active.is_(True))
        .values(failed_logins=Caseworker.failed_logins + 1)
        .returning(
            Caseworker.id,
            Caseworker.failed_logins,
            Caseworker.locked_until,
            Caseworker.password_hash,
        )
    ).first()
    if row is None:
        # Checked against anyway, so an unknown address costs what a known one does.
        return Attempt(None, dummy_hash(), 0, None)
    locked_until = as_utc(row.locked_until)
    if locked_until is None and row.failed_logins > MAX_FAILED_SIGN_INS:
        locked_until = _lock(session, row.id, now)
    if row.id == spared:
        locked_until = None
    return Attempt(row.id, row.password_hash, row.failed_logins, locked_until)


def finish_attempt(
    session: Session, attempt: Attempt, password_ok: bool, now: datetime
) -> tuple[int, bool] | None:
    """After the check: (session epoch, must change password) for a success, else None,
    locking the account when this was the last failure allowed."""
    if attempt.account_id is None:
        return None
    if not password_ok:
        if attempt.failures >= MAX_FAILED_SIGN_INS:
            _lock(session, attempt.account_id, now)
            log.warning(
                "caseworker account %d locked after %d failed password checks",
                attempt.account_id,
                attempt.failures,
            )
        return None
    # Guarded by the hash that was checked: a password changed meanwhile does not count.
    row = session.execute(
        update(Caseworker)
        .where(
            Caseworker.id == attempt.account_id,
            Caseworker.active.is_(True),
            Caseworker.password_hash == attempt.password_hash,
        )
        .values(failed_logins=0, locked_until=None)
        .returning(Caseworker.session_epoch, Caseworker.must_change_password)
    ).first()
    return (row.session_epoch, row.must_change_password) if row else None


def locked_out(locked_until: datetime) -> SignInRefused:
    return SignInRefused(
        "This account is locked after too many failed sign-ins. "
        f"Try again after {when(locked_until)}.",
        locked=True,
    )


def authenticate(
    database: Database, email: str, password: str, *, now: datetime | None = None
) -> Caseworker:
    """The caseworker whose password this is (command line and tests), by the sign-in page's
    steps: the attempt is counted and committed first, then the hash runs outside any
    transaction. Raises SignInRefused."""
    now = now or utcnow()
    with database.transaction() as session:
        attempt = begin_attempt(session, now, email=email)
    if attempt.locked_until is not None:
        raise locked_out(attempt.locked_until)
    ok = verify_password(attempt.password_hash, password)
    with database.transaction() as session:
        if finish_attempt(session, attempt, ok, now) is None:
            ok = False
        account = session.get(Caseworker, attempt.account_id) if ok else None
    if account is None:
        raise SignInRefused(WRONG_DETAILS)
    return account


def set_password(
    session: Session,
    account_id: int,
    password_hash: str,
    *,
    must_change: bool = False,
    expected_hash: str | None = None,
) -> int | None:
    """Give the account a new password hash: every session of it ends and the lock-out is
    cleared. Returns the new session epoch; None when there is no such account, or its
    hash is no longer `expected_hash` (changed meanwhile)."""
    statement = update(Caseworker).where(Caseworker.id == account_id)
    if expected_hash is not None:
        statement = statement.where(Caseworker.password_hash == expected_hash)
    return session.execute(
        statement.values(
            password_hash=password_hash,
            must_change_password=must_change,
            session_epoch=Caseworker.session_epoch + 1,
            failed_logins=0,
            locked_until=None,
        ).returning(Caseworker.session_epoch)
    ).scalar_one_or_none()


def reset_password(session: Session, account_id: int, password_hash: str, *, by: int) -> str:
    """A supervisor's reset: the account must choose a new password at its next sign-in.
    Returns the account's address."""
    account = session.get(Caseworker, account_id)
    if account is None:
        raise AccountError("There is no such account.")
    if account.id == by:
        raise AccountError("Change your own password on the Change your password page.")
    if not account.active:
        raise AccountError(f"The account for {account.email} is deactivated.")
    if account.is_supervisor:
        # The one who resets chooses the password, and could sign in with it first.
        raise AccountError(
            f"{account.email} is a supervisor: a supervisor's password is reset on the server "
            "with `pcse caseworker set-password`, so that no supervisor can sign in as another."
        )
    set_password(session, account_id, password_hash, must_change=True)
    log.info("caseworker account %d: password reset by account %d", account_id, by)
    return account.email


def store_rehash(session: Session, account_id: int, old_hash: str, new_hash: str) -> None:
    """The same password hashed with current parameters; sessions stay as they are."""
    session.execute(
        update(Caseworker)
        .where(Caseworker.id == account_id, Caseworker.password_hash == old_hash)
        .values(password_hash=new_hash)
    )


def end_sessions(session: Session, account_id: int) -> None:
    """Sign the account out everywhere: every session cookie issued so far stops working."""
    session.execute(
        update(Caseworker)
        .where(Caseworker.id == account_id)
        .values(session_epoch=Caseworker.session_epoch + 1)
    )


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def _lock(session: Session, account_id: int, now: datetime) -> datetime:
    """Lock the account from now, unless a lock-out is already running; its end."""
    locked_until = session.execute(
        update(Caseworker)
        .where(Caseworker.id == account_id)
        .values(locked_until=func.coalesce(Caseworker.locked_until, now + LOCK_OUT_FOR))
        .returning(Caseworker.locked_until)
    ).scalar_one()
    return as_utc(locked_until or now + LOCK_OUT_FOR)


def list_caseworkers(session: Session) -> list[Caseworker]:
    return list(
        session.scalars(select(Caseworker).order_by(Caseworker.active.desc(), Caseworker.name))
    )


def deactivate_caseworker(session: Session, account_id: int, *, by: Caseworker) -> Caseworker:
    account = session.get(Caseworker, account_id)
    if account is None:
        raise AccountError("There is no such account.")
    if account.id == by.id:
        raise AccountError("You cannot deactivate your own account.")
    if not account.active:
        raise AccountError(f"The account for {account.email} is already deactivated.")
    account.active = False
    # Signed out everywhere, so that reactivating the account later brings no cookie back.
    account.session_epoch += 1
    return account


def activate_caseworker(session: Session, email: str) -> Caseworker:
    """Reactivate a deactivated account (operators, from the command line)."""
    account = find_caseworker(session, email)
    if account is None:
        raise AccountError(f"There is no account for {email.strip().lower()}.")
    if account.active:
        raise AccountError(f"The account for {account.email} is already active.")
    account.active = True
    return account


def account_of(session: Session, by: str) -> str | None:
    """The address of the one active account `by` (an address or a name) names, or None:
    two names for one account are one person (the second-person rule on approvals). An
    address is the account's own, whatever another account is called; a name that two
    accounts share names neither (accounts_named tells the two cases apart)."""
    found = accounts_named(session, by)
    return found[0] if len(found) == 1 else None


def accounts_named(session: Session, by: str) -> list[str]:
    """The addresses of the active accounts `by` names: the one with that address, else
    every one with that name."""
    key = by.strip().casefold()
    active = select(Caseworker.email).where(Caseworker.active.is_(True))
    by_address = session.scalars(active.where(func.lower(Caseworker.email) == key)).all()
    if by_address:
        return [email.lower() for email in by_address]
    by_name = session.scalars(active.where(func.lower(Caseworker.name) == key)).all()
    return sorted(email.lower() for email in by_name)


def _account(session: Session, by: str) -> Caseworker | None:
    """The one active account `by` (an address or a name) names (account_of), or None."""
    address = account_of(session, by)
    return find_caseworker(session, address) if address else None


def name_of(session: Session, by: str) -> str | None:
    """The name of the one active account `by` (an address or a name) names, or None: what
    a reply from the command line is signed with, never the free text of `--by`."""
    found = _account(session, by)
    return found.name if found else None


def is_supervisor(session: Session, by: str) -> bool:
    """Is `by` (an address or a name) an active supervisor? With no caseworker accounts at
    all, nobody is: what needs a supervisor or a second caseworker waits for accounts
    (`pcse caseworker add`), where `--by` would otherwise let anyone be one. A name two
    accounts share names neither, as for account_of."""
    found = _account(session, by)
    return bool(found and found.active and found.is_supervisor)
