"""An IMAP mailbox through imapclient: TLS or plain, password or XOAUTH2, UIDs throughout."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from intake.oauth2 import CachedTokenProvider, OAuth2Error, token_provider
from intake.source import Fetched, SourceError, SourceUnavailable

if TYPE_CHECKING:
    from intake.settings import MailboxConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
# Errors that mean the connection is gone (worth reconnecting), not that the server said no.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, IMAPClientAbortError)
SIZE_CHUNK = 1000


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str | None = None
    token: CachedTokenProvider | Callable[[], str] | None = None


def credentials_for(box: MailboxConfig) -> Credentials:
    if not box.username:
        raise SourceError(f"Mailbox {box.name!r} needs a username.")
    if box.auth == "oauth2":
        return Credentials(box.username, token=token_provider(box))
    secret = box.secret()
    if not secret:
        where = f"the environment variable {box.password_env}" if box.password_env else "password"
        raise SourceError(f"Mailbox {box.name!r} has no password: set {where}.")
    return Credentials(box.username, password=secret)


class ImapSource:
    """One IMAP folder (the inbox) and the folders messages are moved to."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        credentials: Credentials,
        *,
        folder: str = "INBOX",
        ssl_on: bool = True,
        starttls: bool = False,
        extra_folders: Sequence[str] = (),
        timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        use_move: bool = True,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.credentials = credentials
        self.folder = folder
        self.ssl_on = ssl_on
        self.starttls = starttls
        self.extra_folders = tuple(extra_folders)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.use_move = use_move
        self.client: IMAPClient | None = None

    @classmethod
    def from_config(cls, box: MailboxConfig, credentials: Credentials, **kwargs: Any) -> ImapSource:
        return cls(
            box.name,
            box.imap_host or "",
            box.imap_port,
            credentials,
            folder=box.folder,
            ssl_on=box.imap_ssl,
            starttls=box.starttls,
            extra_folders=(box.processed_folder, box.failed_folder),
            **kwargs,
        )

    # ------------------------------------------------------------------ connection

    def _where(self) -> str:
        return f"mailbox {self.name!r} at {self.host}:{self.port}"

    def connect(self) -> None:
        self.close()
        context = self.ssl_context or ssl.create_default_context()
        try:
            client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.ssl_on,
                ssl_context=context if self.ssl_on else None,
                timeout=self.timeout,
            )
            if self.starttls and not self.ssl_on:
                client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"The certificate of {self._where()} is not trusted: {exc.verify_message}."
            ) from exc
        except CONNECTION_ERRORS as exc:
            raise SourceUnavailable(f"Could not reach {self._where()}: {exc}.") from exc
        except IMAPClientError as exc:
            raise SourceUnavailable(f"{self._where()} did not greet us properly: {exc}.") from exc
        try:
            self._login(client)
        except BaseException:
            _shutdown(client)
            raise
        self.client = client

    def _login(self, client: IMAPClient) -> None:
        user = self.credentials.username
        try:
            if self.credentials.token is not None:
                self._oauth2_login(client, user)
            else:
                client.login(user, self.credentials.password or "")
        except LoginError as exc:
            raise SourceError(f"{self._where()} refused the sign-in for {user}: {exc}.") from exc
        except CONNECTION_ERRORS as exc:
            raise SourceUnavailable(f"Lost {self._where()} while signing in: {exc}.") from exc
        except OAuth2Error as exc:
            raise SourceError(f"No OAuth2 token for {self._where()}: {exc}") from exc

    def _oauth2_login(self, client: IMAPClient, user: str) -> None:
        token = self.credentials.token
        assert token is not None
        try:
            client.oauth2_login(user, token())
        except LoginError:
            # A cached token the server no longer accepts: fetch a fresh one, once.
            if not isinstance(token, CachedTokenProvider):
                raise
            token.invalidate()
            client.oauth2_login(user, token())

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # closing a broken connection
            _shutdown(client)

    def _call(self, what: str, func: Callable[[], T]) -> T:
        if self.client is None:
            raise SourceUnavailable(f"Not connected to {self._where()}.")
        try:
            return func()
        except CONNECTION_ERRORS as exc:
            self.close()
            raise SourceUnavailable(f"Lost {self._where()} while {what}: {exc}.") from exc
        except IMAPClientError as exc:
            raise SourceError(f"{self._where()} refused {what}: {exc}.") from exc

    @property
    def _client(self) -> IMAPClient:
        assert self.client is not None
        return self.client

    def has_capability(self, name: str) -> bool:
        return self._call("listing capabilities", lambda: self._client.has_capability(name))

    # ------------------------------------------------------------------ the interface

    def select(self, readonly: bool = False) -> int:
        info = self._call(
            f"opening {self.folder}",
            lambda: self._client.select_folder(self.folder, readonly=readonly),
        )
        if not readonly:
            for folder in self.extra_folders:
                self._ensure_folder(folder)
        return int(info[b"UIDVALIDITY"])

    def _ensure_folder(self, folder: str) -> None:
        if self._call(f"looking for {folder}", lambda: self._client.folder_exists(folder)):
            return
        try:
            self._call(f"creating {folder}", lambda: self._client.create_folder(folder))
            log.info("created folder %s in mailbox %s", folder, self.name)
        except SourceError:
            # Another worker may have created it a moment ago.
            if not self._call(f"looking for {folder}", lambda: self._client.folder_exists(folder)):
                raise

    def uids(self) -> list[int]:
        # Without MOVE or UIDPLUS, moved messages linger flagged as deleted: skip those.
        removable = (self.use_move and self.has_capability("MOVE")) or self.has_capability(
            "UIDPLUS"
        )
        criteria = ["ALL"] if removable else ["NOT", "DELETED"]
        return sorted(self._call("searching", lambda: self._client.search(criteria)))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for start in range(0, len(uids), SIZE_CHUNK):
            chunk = list(uids[start : start + SIZE_CHUNK])
            response = self._call(
                "reading sizes",
                lambda c=chunk: self._client.fetch(  # type: ignore[misc]
                    c, ["RFC822.SIZE"]
                ),
            )
            for uid, data in response.items():
                if b"RFC822.SIZE" in data:
                    found[uid] = int(data[b"RFC822.SIZE"])
        return found

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """BODY.PEEK[] of each UID; a UID that fails alone is returned with its problem."""
        wanted = list(uids)
        try:
            response = self._call("fetching", lambda: self._client.fetch(wanted, ["BODY.PEEK[]"]))
        except SourceUnavailable:
            raise
        except SourceError:
            if len(wanted) == 1:
                raise
            return [item for uid in wanted for item in self._fetch_alone(uid)]
        return [_fetched(uid, response[uid]) for uid in wanted if uid in response]

    def _fetch_alone(self, uid: int) -> list[Fetched]:
        try:
            response = self._call("fetching", lambda: self._client.fetch([uid], ["BODY.PEEK[]"]))
        except SourceUnavailable:
            raise
        except SourceError as exc:
            return [Fetched(uid, None, str(exc))]
        return [_fetched(uid, response[uid])] if uid in response else []

    def move(self, uids: Sequence[int], folder: str) -> None:
        wanted = list(uids)
        if not wanted:
            return
        if self.use_move and self.has_capability("MOVE"):
            self._move_present(wanted, folder)
            return
        # COPY, flag, and expunge exactly these UIDs, leaving anything else flagged alone.
        self._call(f"copying to {folder}", lambda: self._client.copy(wanted, folder))
        self._call("flagging", lambda: self._client.add_flags(wanted, [DELETED], silent=True))
        if self.has_capability("UIDPLUS"):
            self._call("expunging", lambda: self._client.uid_expunge(wanted))
        else:
            log.warning(
                "mailbox %s offers neither MOVE nor UIDPLUS; copied messages stay "
                "flagged \\Deleted in %s",
                self.name,
                self.folder,
            )

    def _move_present(self, wanted: list[int], folder: str, tries: int = 3) -> None:
        """MOVE; when another worker moved some of them first (the server answers NO
        [EXPUNGEISSUED]), move those still here. Each was recorded before any move, so one
        moved by someone else is no loss."""
        for _ in range(tries):
            try:
                self._call(
                    f"moving to {folder}",
                    lambda w=wanted: self._client.move(  # type: ignore[misc]
                        w, folder
                    ),
                )
                return
            except SourceUnavailable:
                raise
            except SourceError as exc:
                if "EXPUNGEISSUED" not in str(exc).upper():
                    raise
            uid_set = ",".join(str(uid) for uid in wanted)
            present = set(
                self._call(
                    "searching",
                    lambda u=uid_set: self._client.search(  # type: ignore[misc]
                        ["UID", u]
                    ),
                )
            )
            wanted = [uid for uid in wanted if uid in present]
            if not wanted:
                return
        raise SourceError(f"{self._where()} kept refusing to move messages to {folder}.")


def _fetched(uid: int, data: dict[bytes, Any]) -> Fetched:
    body = data.get(b"BODY[]")
    if body is None:
        return Fetched(uid, None, "the server sent no content for this message")
    return Fetched(uid, bytes(body))


def _shutdown(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()
