"""Settings every package shares: the database, and who vouches for a sender.

service.config reads them from the TOML ([database], [security])."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.senderauth import Profile, SenderPolicy


@dataclass
class DatabaseConfig:
    url: str = "sqlite:///var/pcse.sqlite3"


@dataclass
class SecurityConfig:
    # Who vouches for a sender (core.senderauth): "microsoft365" (NHSmail), "authserv-id"
    # (with trusted_authserv_ids) or "none" (only with allow_unauthenticated_senders).
    sender_authentication: str = "microsoft365"
    trusted_authserv_ids: list[str] = field(default_factory=list)
    # microsoft365: the tenant's own domains, for which AuthAs: Internal vouches.
    internal_domains: list[str] = field(default_factory=lambda: ["nhs.net"])
    allow_unauthenticated_senders: bool = False

    def policy(self) -> SenderPolicy:
        return SenderPolicy(
            Profile(self.sender_authentication),
            tuple(self.trusted_authserv_ids),
            tuple(self.internal_domains),
        )

    @property
    def senders_unchecked(self) -> bool:
        return self.sender_authentication == Profile.NONE
