"""Warn before an OAuth2 client secret expires, and say plainly when it has.

An app registration's client secret has a fixed lifetime (at most two years in Entra ID).
When it lapses the token endpoint refuses the service, which then can neither read the
inbox nor send mail. The operator records the date in the mailbox's configuration
(`oauth2_client_secret_expires = 2027-05-01`); `pcse status`, the caseworker pages and
the service's log warn from WARN_DAYS before that date, and every day after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from core.timeutil import day_in_words
from intake.settings import MailboxConfig

WARN_DAYS = 30


@dataclass(frozen=True)
class SecretExpiry:
    mailbox: str
    secret_env: str
    expires: date
    days_left: int  # negative once expired

    @property
    def expired(self) -> bool:
        return self.days_left < 0

    def sentence(self) -> str:
        renew = (
            "create a new client secret for the app registration in Entra ID, put it in "
            f"{self.secret_env} and set oauth2_client_secret_expires to its expiry date"
        )
        if self.expired:
            return (
                f"The OAuth2 client secret of mailbox {self.mailbox!r} expired on "
                f"{day_in_words(self.expires)}: the service cannot sign in to read or send mail "
                f"until you {renew}."
            )
        when = "today" if self.days_left == 0 else f"in {self.days_left} day(s)"
        return (
            f"The OAuth2 client secret of mailbox {self.mailbox!r} expires on "
            f"{day_in_words(self.expires)} ({when}): {renew}, then restart the service."
        )


def secret_expiries(
    mailboxes: Iterable[MailboxConfig], today: date, warn_days: int = WARN_DAYS
) -> list[SecretExpiry]:
    """The OAuth2 client secrets that expire within `warn_days` of `today`, or have."""
    found = []
    for box in mailboxes:
        expires = box.oauth2_client_secret_expires
        if box.auth != "oauth2" or box.oauth2_provider != "msal" or expires is None:
            continue
        days_left = (expires - today).days
        if days_left <= warn_days:
            found.append(SecretExpiry(box.name, box.oauth2_client_secret_env, expires, days_left))
    return found
