"""What intake needs to know: each mailbox ([[mailboxes]]), where raw bytes are kept
([storage]), and the few shared settings it reads (the `IntakeConfig` protocol, which
service.config.Config satisfies)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from core.settings import SecurityConfig


@dataclass
class MailboxConfig:
    name: str = "enquiries"
    address: str = "pcse.portalenquiries@nhs.net"
    maildir: str | None = None
    imap_host: str | None = None
    imap_port: int = 993
    imap_ssl: bool = True
    starttls: bool = False
    username: str | None = None
    auth: str = "password"  # or "oauth2"
    password: str | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    failed_folder: str = "Failed"
    batch_size: int = 100
    # OAuth2 (XOAUTH2): either Microsoft 365 client credentials via msal, or a command.
    oauth2_provider: str = "msal"  # or "command"
    oauth2_tenant_env: str = "PCSE_OAUTH2_TENANT"
    oauth2_client_id_env: str = "PCSE_OAUTH2_CLIENT_ID"
    oauth2_client_secret_env: str = "PCSE_OAUTH2_CLIENT_SECRET"
    # When the app registration's client secret expires (a TOML date): warnings from 30
    # days before (intake.secret_expiry).
    oauth2_client_secret_expires: date | None = None
    oauth2_scope: str = "https://outlook.office365.com/.default"
    oauth2_token_command: str | None = None

    @property
    def is_imap(self) -> bool:
        return self.imap_host is not None

    def secret(self) -> str | None:
        """The password, from the file or the environment variable it names."""
        if self.password is not None:
            return self.password
        if self.password_env:
            return os.environ.get(self.password_env)
        return None


@dataclass
class StorageConfig:
    raw_dir: str = "var/raw"


class _Limits(Protocol):
    @property
    def attachment_max_bytes(self) -> int: ...
    @property
    def message_seconds(self) -> float: ...


class IntakeConfig(Protocol):
    """The settings intake reads (service.config.Config provides them)."""

    @property
    def mailboxes(self) -> list[MailboxConfig]: ...
    @property
    def storage(self) -> StorageConfig: ...
    @property
    def limits(self) -> _Limits: ...
    @property
    def security(self) -> SecurityConfig: ...
    @property
    def our_addresses(self) -> set[str]: ...
