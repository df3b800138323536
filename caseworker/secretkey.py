"""The key that signs session cookies: from the environment, or kept under ./var locally."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from caseworker.settings import WebConfig
from core.errors import ConfigError


class _HasWeb(Protocol):
    @property
    def web(self) -> WebConfig: ...


LOCAL_KEY_FILE = Path("var") / "web-secret.key"
MIN_KEY_LENGTH = 32


def signing_key(config: _HasWeb, local_file: Path = LOCAL_KEY_FILE) -> str:
    """The value of the variable named by [web] secret_key_env; when it is unset, a key
    generated once and kept (mode 0600) in `local_file`, for local use."""
    name = config.web.secret_key_env
    value = os.environ.get(name, "")
    if value:
        if len(value) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"The session signing key in ${name} must be at least {MIN_KEY_LENGTH} "
                "characters long."
            )
        return value
    return _local_key(local_file)


def _local_key(path: Path) -> str:
    if path.exists():
        return _kept_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it first; use theirs, once written.
        return _kept_key(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


def _kept_key(path: Path, attempts: int = 20) -> str:
    """The key in `path`. A short or empty one would let anyone sign cookies: it is read
    again for a moment (another process may have made the file and not yet written it),
    then refused."""
    for attempt in range(attempts):
        key = path.read_text(encoding="utf-8").strip()
        if len(key) >= MIN_KEY_LENGTH:
            return key
        time.sleep(0.05 * (attempt + 1) / attempts)
    raise ConfigError(
        f"The session signing key in {path} is {len(key)} characters long, under "
        f"{MIN_KEY_LENGTH}: delete the file for a new one to be made, or set the variable "
        "[web] secret_key_env names."
    )
