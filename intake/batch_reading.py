"""Messages read ahead of their turn, so that the handler can start reading their forms
side by side (forms.readahead) while the messages before them are worked.

As each claimed batch begins, its messages, and as many of the pending messages after it,
are read from the raw store; those that may carry a form are parsed, and handed to the
handler's read-ahead. A backlog of scanned forms then keeps the PDF workers busy on the
next forms while the processing thread waits for this one, instead of one form at a time.

Each message is still worked in turn, in its transaction or savepoint, exactly as without
this: the parse made here (or, for the others, the raw bytes read here) is handed to it
instead of reading the same message again. A parse that fails or runs over the message's
CPU budget here is dropped, and the message meets the same trouble where it is worked, and
is judged there. A message read ahead that another worker claims is forgotten once the
claims here have passed it; at most MAX_BYTES of mail is held.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from core.inbound import IncomingMail
from intake import ledger
from intake.budget import WATCHDOG, MessageTooSlow
from intake.mailparse import ParsedMail
from intake.models import InboundMessage

log = logging.getLogger(__name__)

# A raw message that names none of these holds no form: not worth parsing ahead.
_MAY_CARRY_FORM = re.compile(rb"(?i)application/pdf|\.pdf\b|image/(?:jpeg|png|tiff)")
# At most this much raw mail is held read ahead.
MAX_BYTES = 64 * 1024 * 1024


@runtime_checkable
class ReadsAhead(Protocol):
    """A handler that can start what it will need of messages before it is given them."""

    def read_ahead(self, mails: Sequence[IncomingMail]) -> AbstractContextManager[object]:
        """Begin the work the handler will want of these messages (until the block ends,
        or, where one is under way already, until that one ends)."""
        ...


class BatchReading:
    """The messages read ahead for one run of the processor, and the handler's read-ahead
    of their forms."""

    def __init__(
        self,
        handler: object,
        raw: Callable[[InboundMessage], bytes],
        parse: Callable[[bytes], ParsedMail],
        message_seconds: float | None,
    ) -> None:
        self.handler = handler if isinstance(handler, ReadsAhead) else None  # else nothing
        self._raw_of = raw
        self._parse = parse
        self.message_seconds = message_seconds
        self._parsed: dict[int, ParsedMail] = {}
        self._raw: dict[int, bytes] = {}
        self._sizes: dict[int, int] = {}
        self._seen: set[int] = set()
        self._ahead = contextlib.ExitStack()

    @property
    def held_bytes(self) -> int:
        return sum(self._sizes.values())

    def add(
        self, rows: Sequence[InboundMessage], is_copy: Callable[[InboundMessage], bool]
    ) -> None:
        """Read ahead these rows (a claimed batch and the pending messages after it) that
        were not read already, skipping copies of earlier messages (they are not worked)."""
        if self.handler is None:
            return
        fresh = sorted((r for r in rows if r.id not in self._seen), key=lambda r: r.id)
        if fresh:
            self._forget_below(min(r.id for r in rows))
        mails: list[ParsedMail] = []
        for row in fresh:
            if row.sha256 == ledger.UNREAD_SHA256 or is_copy(row):
                self._seen.add(row.id)
                continue
            if self.held_bytes + row.size > MAX_BYTES:
                break  # the rest wait for room, as the messages held are worked
            self._seen.add(row.id)
            mail = self._read(row)
            if mail is not None:
                mails.append(mail)
        if mails:
            self._ahead.enter_context(self.handler.read_ahead(mails))

    def _read(self, row: InboundMessage) -> ParsedMail | None:
        try:
            data = self._raw_of(row)
        except Exception:  # met again, and judged, when the message is worked
            return None
        self._sizes[row.id] = len(data)
        mail = self._parsed_ahead(row, data) if _MAY_CARRY_FORM.search(data) else None
        if mail is None:
            self._raw[row.id] = data
            return None
        self._parsed[row.id] = mail
        return mail

    def _parsed_ahead(self, row: InboundMessage, data: bytes) -> ParsedMail | None:
        try:
            with WATCHDOG.limit(self.message_seconds):
                mail = self._parse(data)
        except (Exception, MessageTooSlow) as exc:  # met again, and judged, when worked
            log.debug("inbound %d not parsed ahead: %s", row.id, type(exc).__name__)
            return None
        return None if mail.unreadable else mail

    def _forget_below(self, first: int) -> None:
        """Messages read ahead that another worker claimed: this one's claims have passed
        them (claims are taken in order of id)."""
        for held in (self._parsed, self._raw, self._sizes):
            for inbound_id in [i for i in held if i < first]:
                del held[inbound_id]

    def take(self, inbound_id: int) -> ParsedMail | bytes | None:
        """The message parsed ahead, else its raw bytes read ahead, once; None when
        neither was."""
        self._sizes.pop(inbound_id, None)
        return self._parsed.pop(inbound_id, None) or self._raw.pop(inbound_id, None)

    def close(self) -> None:
        self._parsed.clear()
        self._raw.clear()
        self._sizes.clear()
        self._ahead.close()
