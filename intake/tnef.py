"""Outlook's winmail.dat (TNEF): the files and the body it wraps, read with tnefparse in a
sandboxed child (intake.tnef_worker)."""

from __future__ import annotations

import atexit
import base64
import threading
from dataclasses import dataclass, field
from typing import Any

from core.child_process import Child, ChildDied


@dataclass
class TnefContent:
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (name as sent, data)
    text: str = ""
    html: str | None = None
    # Its body was only in rich text (RTF), which is not read.
    rtf_unread: bool = False


def is_tnef(content_type: str, filename: str | None) -> bool:
    return content_type in ("application/ms-tnef", "application/vnd.ms-tnef") or (
        (filename or "").strip().lower() == "winmail.dat"
    )


# A winmail.dat is read in a child of its own (intake.tnef_worker): these bound what one
# may cost, and TNEF_SECONDS is also what all of one message's winmail.dat files may take
# together (intake.mailparse). A real one, its files no larger than the message that
# brought them, is read in well under a second; a hostile one claiming billions of values
# is stopped at either limit.
TNEF_MEMORY_MB = 256
TNEF_SECONDS = 5.0


class _Reader:
    """One child kept for the process, started on the first winmail.dat and replaced after
    any failure; one file at a time."""

    def __init__(self) -> None:
        self._child: Child | None = None
        self._lock = threading.Lock()

    def unpack(self, data: bytes, seconds: float) -> dict[str, Any]:
        with self._lock:
            try:
                if self._child is None or not self._child.alive:
                    self._child = Child("intake.tnef_worker", str(TNEF_MEMORY_MB))
                answer = self._child.request({}, data, seconds)
            except TimeoutError:
                self._drop()
                return {"ok": False, "detail": f"no answer within {seconds:.3g} s"}
            except ChildDied as exc:
                self._drop()
                return {"ok": False, "detail": f"its reader stopped ({exc})"}
            if not answer.get("ok"):
                self._drop()  # whatever the file did to it, the next starts afresh
            return answer

    def _drop(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def close(self) -> None:
        with self._lock:
            self._drop()


_READER = _Reader()
atexit.register(_READER.close)


def unpack_tnef(data: bytes, seconds: float = TNEF_SECONDS) -> TnefContent:
    """Raises ValueError when `data` is not TNEF, is damaged, or asks more than its limits
    (`seconds` of waiting for its reader, at most)."""
    answer = _READER.unpack(data, seconds)
    if not answer.get("ok"):
        raise ValueError(str(answer.get("detail") or "not a readable winmail.dat")[:300])
    content = TnefContent(
        files=[(str(name), base64.b64decode(data)) for name, data in answer.get("files", [])],
        text=str(answer.get("text") or ""),
        html=str(answer.get("html") or "") or None,
    )
    content.rtf_unread = bool(answer.get("rtf")) and not (content.text.strip() or content.html)
    if not (content.files or content.text.strip() or content.html):
        raise ValueError("a winmail.dat with no files or text in it")
    return content
