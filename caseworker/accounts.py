"""Caseworker accounts: Argon2 password hashes, sign-in with a lock-out, supervisors' changes."""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caseworker.timeutil import as_utc, when
from forms.normalise import normalise_email, tidy_name
from workflow.errors import PcseError
from workflow.models import Caseworker, utcnow

MAX_FAILED_SIGN_INS = 5
LOCK_OUT_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# Verified against when the address is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class AccountError(PcseError):
    """An account change that cannot be made; the message says why."""


class SignInRefused(PcseError):
    """A sign-in that did not succeed; the message is safe to show on the page."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


WRONG_DETAILS = "The email address or password is not right."


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
    session.flush()
    return account


def authenticate(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> Caseworker:
    """The caseworker whose password this is; counts failures and locks the account after 5."""
    now = now or utcnow()
    account = find_caseworker(session, email)
    if account is None or not account.active:
        _verify(_DUMMY_HASH, password)
        raise SignInRefused(WRONG_DETAILS)
    locked_until = as_utc(account.locked_until)
    if locked_until is not None and locked_until > now:
        raise SignInRefused(
            "This account is locked after too many failed sign-ins. "
            f"Try again after {when(locked_until)}.",
            locked=True,
        )
    if not _verify(account.password_hash, password):
        _count_failure(account, now)
        raise SignInRefused(WRONG_DETAILS)
    account.failed_logins = 0
    account.locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account


def end_sessions(session: Session, account_id: int) -> None:
    """Sign the account out everywhere: every session cookie issued so far stops working."""
    session.execute(update(Caseworker).where(Caseworker.id == account_id)
                    .values(session_epoch=Caseworker.session_epoch + 1))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(account: Caseworker, now: datetime) -> None:
    account.failed_logins = (account.failed_logins or 0) + 1
    if account.failed_logins >= MAX_FAILED_SIGN_INS:
        account.locked_until = now + LOCK_OUT_FOR
        account.failed_logins = 0


def list_caseworkers(session: Session) -> list[Caseworker]:
    return list(session.scalars(select(Caseworker).order_by(Caseworker.active.desc(),
                                                            Caseworker.name)))


def deactivate_caseworker(session: Session, account_id: int, *, by: Caseworker) -> Caseworker:
    account = session.get(Caseworker, account_id)
    if account is None:
        raise AccountError("There is no such account.")
    if account.id == by.id:
        raise AccountError("You cannot deactivate your own account.")
    if not account.active:
        raise AccountError(f"The account for {account.email} is already deactivated.")
    account.active = False
    return account
