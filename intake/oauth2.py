"""OAuth2 access tokens for XOAUTH2 sign-in (IMAP and SMTP), chosen by the configuration.

A provider is a zero-argument callable returning a bearer token. Tokens are cached and
fetched again a few minutes before they expire, so a long-running service never signs in
with a stale one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import PcseError

if TYPE_CHECKING:
    from intake.settings import IntakeConfig as Config
    from intake.settings import MailboxConfig

log = logging.getLogger(__name__)

TokenProvider = Callable[[], str]

# Fetch a new token this long before the old one expires.
REFRESH_MARGIN_SECONDS = 300.0
# Lifetime assumed for a token whose expiry cannot be read (a plain opaque string).
DEFAULT_LIFETIME_SECONDS = 600.0
COMMAND_TIMEOUT_SECONDS = 60.0


class OAuth2Error(PcseError):
    """No token could be obtained; the message says which setting or service is at fault."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.time() seconds


class CachedTokenProvider:
    """Calls `fetch` for a token only when there is none or it is about to expire."""

    def __init__(
        self,
        fetch: Callable[[], Token],
        *,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._token: Token | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            token = self._token
            if token is None or token.expires_at - self._margin <= self._clock():
                token = self._fetch()
                if not token.value:
                    raise OAuth2Error("The token provider returned an empty token.")
                self._token = token
            return token.value

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it); the next call fetches a new one."""
        with self._lock:
            self._token = None


# --------------------------------------------------------------------------- msal


def msal_fetcher(
    *,
    tenant: str,
    client_id: str,
    client_secret: str,
    scope: str,
    clock: Callable[[], float] = time.time,
    secret_env: str = "",
) -> Callable[[], Token]:
    """Microsoft 365 client-credentials flow (an app registration with IMAP/SMTP permission)."""
    import msal

    app = msal.ConfidentialClientApplication(
        client_id,
        authority=f"https://login.microsoftonline.com/{tenant}",
        client_credential=client_secret,
    )

    def fetch() -> Token:
        return token_from_result(app.acquire_token_for_client(scopes=[scope]), clock(), secret_env)

    return fetch


# Entra ID's codes for a client secret that has lapsed, and for one that is wrong.
SECRET_EXPIRED = "AADSTS7000222"
SECRET_INVALID = "AADSTS7000215"


def token_from_result(result: dict[str, Any], now: float, secret_env: str = "") -> Token:
    """The token in msal's answer, or one clear sentence on why there is none."""
    if "access_token" in result:
        lifetime = float(result.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        return Token(result["access_token"], now + lifetime)
    problem = str(result.get("error_description") or result.get("error") or "no token")
    where = f" in {secret_env}" if secret_env else ""
    if SECRET_EXPIRED in problem:
        raise OAuth2Error(
            f"The app registration's client secret has expired ({SECRET_EXPIRED}): create a "
            f"new one in Entra ID, put it{where} and update oauth2_client_secret_expires."
        )
    if SECRET_INVALID in problem:
        raise OAuth2Error(
            f"Microsoft 365 does not accept the client secret ({SECRET_INVALID}): check that "
            f"the secret's value (not its id) is set{where}."
        )
    raise OAuth2Error(f"Microsoft 365 refused the client credentials: {problem.splitlines()[0]}")


# --------------------------------------------------------------------------- command


def _jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without checking the signature (only to cache it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


def parse_command_output(output: str, now: float) -> Token:
    """A token from a command's output: JSON {access_token, expires_in} or the bare token."""
    text = output.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
            value = str(document["access_token"]).strip()
        except (ValueError, KeyError) as exc:
            raise OAuth2Error("The token command printed JSON without an access_token.") from exc
        lifetime = document.get("expires_in")
        if lifetime is not None:
            return Token(value, now + float(lifetime))
        return Token(value, _jwt_expiry(value) or now + DEFAULT_LIFETIME_SECONDS)
    value = text.splitlines()[0].strip() if text else ""
    return Token(value, _jwt_expiry(value) or now + DEFAULT_LIFETIME_SECONDS)


def command_fetcher(
    command: str,
    *,
    clock: Callable[[], float] = time.time,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> Callable[[], Token]:
    """Run `command` (no shell) and read a token from what it prints."""
    argv = shlex.split(command)
    if not argv:
        raise OAuth2Error("oauth2_token_command is empty.")

    def fetch() -> Token:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise OAuth2Error(f"The token command {argv[0]} does not exist.") from exc
        except subprocess.TimeoutExpired as exc:
            raise OAuth2Error(f"The token command did not finish in {timeout:.0f} s.") from exc
        if done.returncode != 0:
            # stderr may say why; it never holds the token, which goes to stdout.
            detail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise OAuth2Error(
                f"The token command exited with status {done.returncode}: {detail[0][:200]}"
            )
        token = parse_command_output(done.stdout, clock())
        if not token.value:
            raise OAuth2Error("The token command printed no token.")
        return token

    return fetch


# --------------------------------------------------------------------------- from the config


def _env(name: str, what: str, mailbox: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise OAuth2Error(
            f"Mailbox {mailbox!r} uses OAuth2 but the environment variable {name} "
            f"({what}) is not set."
        )
    return value


def fetcher_for(box: MailboxConfig) -> Callable[[], Token]:
    if box.oauth2_provider == "command":
        if not box.oauth2_token_command:
            raise OAuth2Error(
                f'Mailbox {box.name!r} has oauth2_provider = "command" but no oauth2_token_command.'
            )
        return command_fetcher(box.oauth2_token_command)
    if box.oauth2_provider == "msal":
        return msal_fetcher(
            tenant=_env(box.oauth2_tenant_env, "the tenant id", box.name),
            client_id=_env(box.oauth2_client_id_env, "the client id", box.name),
            client_secret=_env(box.oauth2_client_secret_env, "the client secret", box.name),
            scope=box.oauth2_scope,
            secret_env=box.oauth2_client_secret_env,
        )
    raise OAuth2Error(
        f'Mailbox {box.name!r}: oauth2_provider must be "msal" or "command", '
        f"not {box.oauth2_provider!r}."
    )


_providers: dict[tuple[str, str, str | None], CachedTokenProvider] = {}
_providers_lock = threading.Lock()


def token_provider(box: MailboxConfig) -> CachedTokenProvider:
    """The provider for a mailbox, shared within the process so its cache is shared too."""
    key = (box.name, box.oauth2_provider, box.oauth2_token_command)
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = CachedTokenProvider(fetcher_for(box))
            _providers[key] = provider
        return provider


def smtp_token_provider(config: Config) -> CachedTokenProvider:
    """SMTP with auth = "oauth2" uses the first mailbox that signs in with OAuth2."""
    for box in config.mailboxes:
        if box.auth == "oauth2":
            return token_provider(box)
    raise OAuth2Error(
        '[smtp] auth = "oauth2" needs a [[mailboxes]] entry with auth = "oauth2" '
        "to take its token provider from."
    )


def xoauth2_string(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as SMTP AUTH needs it."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"
