"""Messages read ahead of their turn, so that the handler can start reading their forms
side by side (forms.readahead) while the messages before them are worked.

When a batch is claimed, and before its transaction begins (no write lock is held), its
messages and as many of the pending messages after it are read from the raw store; those
that may carry a form are parsed and classified, and handed to the handler's read-ahead,
which reads the forms of those it will read. A backlog of scanned forms then keeps the PDF
workers busy on the next forms while the processing thread waits for this one.

Each message is still worked in turn, in its transaction or savepoint, exactly as without
this: the parse made here (or, for the others, the raw bytes read here) is handed to it
instead of reading the same message again, and the CPU the parse took here counts against
the message's own budget ([limits] message_seconds): a message whose parse ran over it here
is failed as too slow when it is worked, as it would have been. A parse that fails is
dropped, and the message meets the same trouble where it is worked. A message read ahead
that another worker claims is forgotten once the claims here pass it; at most MAX_BYTES of
mail, counted as parsed, is held.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.inbound import Classification, IncomingMail
from intake import ledger
from intake.budget import WATCHDOG, MessageTooSlow, thread_clock
from intake.mailparse import ParsedMail
from intake.models import InboundMessage

log = logging.getLogger(__name__)

# A cheap filter for raw messages that may carry a form, parsed ahead; one it misses (a PDF
# sent as octet-stream with no .pdf name, say) is read in its turn, as without read-ahead.
_MAY_CARRY_FORM = re.compile(
    rb"(?i)application/pdf|image/(?:jpeg|jpg|png|tiff|heic|heif)|\.(?:pdf|jpe?g|png|tiff?|heic)\b"
)
# At most this much mail is held read ahead (a parsed message counted by what it holds).
MAX_BYTES = 64 * 1024 * 1024

Classify = Callable[[InboundMessage, ParsedMail], Classification]


@runtime_checkable
class ReadsAhead(Protocol):
    """A handler that can start what it will need of messages before it is given them."""

    def read_ahead(
        self, found: Sequence[tuple[IncomingMail, Classification]], message_seconds: float | None
    ) -> AbstractContextManager[object]:
        """Begin the work the handler will want of these messages, as classified now (until
        the block ends, or, where one is under way already, until that one ends); what it
        does ahead for a message may take `message_seconds` of CPU (intake.budget)."""
        ...


@dataclass
class _Ahead:
    """What was read ahead of one message."""

    # Parsed, else its raw bytes; None where the parse ran over its budget or read nothing.
    data: ParsedMail | bytes | None
    size: int  # what it holds in memory
    spent: float = 0.0  # CPU seconds its parse took here (infinite: over its budget)


class BatchReading:
    """The messages read ahead for one run of the processor, and the handler's read-ahead
    of their forms."""

    def __init__(
        self,
        handler: object,
        raw: Callable[[InboundMessage], bytes],
        parse: Callable[[bytes], ParsedMail],
        message_seconds: float | None,
        stop: threading.Event,
    ) -> None:
        self.handler = handler if isinstance(handler, ReadsAhead) else None  # else nothing
        self._raw_of = raw
        self._parse = parse
        self.message_seconds = message_seconds
        self.stop = stop
        self._held: dict[int, _Ahead] = {}
        self._seen: set[int] = set()
        self._ahead = contextlib.ExitStack()

    @property
    def held_bytes(self) -> int:
        return sum(ahead.size for ahead in self._held.values())

    def add(
        self,
        rows: Sequence[InboundMessage],
        is_copy: Callable[[InboundMessage], bool],
        classify: Classify,
    ) -> None:
        """Read ahead these rows (a claimed batch and the pending messages after it) that
        were not read already, skipping copies of earlier messages (they are not worked)."""
        if self.handler is None:
            return
        fresh = sorted((r for r in rows if r.id not in self._seen), key=lambda r: r.id)
        if fresh:
            self._forget_below(min(r.id for r in rows))
        found: list[tuple[IncomingMail, Classification]] = []
        for row in fresh:
            if self.stop.is_set():
                break
            if row.sha256 == ledger.UNREAD_SHA256 or is_copy(row):
                self._seen.add(row.id)
                continue
            if self.held_bytes + row.size > MAX_BYTES:
                break  # the rest wait for room, as the messages held are worked
            self._seen.add(row.id)
            mail = self._read(row)
            if mail is not None:
                with contextlib.suppress(Exception):  # classified again, and judged, when worked
                    found.append((mail, classify(row, mail)))
        if found:
            self._ahead.enter_context(self.handler.read_ahead(found, self.message_seconds))

    def _read(self, row: InboundMessage) -> ParsedMail | None:
        try:
            data = self._raw_of(row)
        except Exception:  # met again, and judged, when the message is worked
            return None
        if not _MAY_CARRY_FORM.search(data):
            self._held[row.id] = _Ahead(data, len(data))
            return None
        ahead = self._parsed_ahead(row, data)
        if ahead is None:
            return None
        self._held[row.id] = ahead
        return ahead.data if isinstance(ahead.data, ParsedMail) else None

    def _parsed_ahead(self, row: InboundMessage, data: bytes) -> _Ahead | None:
        clock = thread_clock()
        started = clock()
        try:
            with WATCHDOG.limit(self.message_seconds):
                mail = self._parse(data)
        except MessageTooSlow:
            return _Ahead(None, 0, float("inf"))  # failed as too slow when it is worked
        except Exception as exc:  # met again, and judged, when worked
            log.debug("inbound %d not parsed ahead: %s", row.id, type(exc).__name__)
            return None
        spent = clock() - started
        if mail.unreadable:
            return _Ahead(None, 0, spent)
        return _Ahead(mail, _held_by(mail), spent)

    def _forget_below(self, first: int) -> None:
        """Messages read ahead that another worker claimed: this one's claims have passed
        them (claims are taken in order of id)."""
        for inbound_id in [i for i in self._held if i < first]:
            del self._held[inbound_id]

    def spent(self, inbound_id: int) -> float:
        """CPU seconds the message's parse took here (infinite when it ran over its budget)."""
        ahead = self._held.get(inbound_id)
        return ahead.spent if ahead is not None else 0.0

    def take(self, inbound_id: int) -> ParsedMail | bytes | None:
        """The message parsed ahead, else its raw bytes read ahead, once; None when
        neither was."""
        ahead = self._held.pop(inbound_id, None)
        return ahead.data if ahead is not None else None

    def close(self) -> None:
        self._held.clear()
        self._ahead.close()


def _held_by(mail: ParsedMail) -> int:
    """What a parsed message holds in memory: its text (a str may take four bytes a
    character) and its attachments."""
    return (
        sys.getsizeof(mail.text or "")
        + sys.getsizeof(mail.html or "")
        + sum(len(a.data) for a in mail.attachments)
    )
