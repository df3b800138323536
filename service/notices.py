"""What an operator must put right, said the same way by `pcse status`, the caseworker
pages' banner and the service's log."""

from __future__ import annotations

from datetime import UTC, datetime

from intake.secret_expiry import secret_expiries
from service.config import Config


def operator_warnings(config: Config, today: datetime | None = None) -> list[str]:
    """One sentence per problem, today (UTC) unless told otherwise."""
    day = (today or datetime.now(UTC)).date()
    warnings = [expiry.sentence() for expiry in secret_expiries(config.mailboxes, day)]
    if not config.mailboxes:
        warnings.append(
            f"No [[mailboxes]] are configured ({config.source}): no mail is read. The "
            "README's Configuration section shows one."
        )
    return warnings
