"""Outlook's winmail.dat (TNEF): the files and the body it wraps, read with tnefparse."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from intake.charsets import decode_bytes

log = logging.getLogger(__name__)


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


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"), None)[0]
    return str(value).rstrip("\x00")


def unpack_tnef(data: bytes) -> TnefContent:
    """Raises ValueError when `data` is not TNEF or is damaged."""
    from tnefparse import TNEF

    # tnefparse reads damaged files into whatever exception its code meets first
    # (struct.error, UnboundLocalError, LookupError among them): each means "damaged", and
    # the file is then kept as it came.
    try:
        parsed = TNEF(data, do_checksum=False)
    except Exception as exc:
        raise ValueError(f"not a readable winmail.dat ({type(exc).__name__})") from exc
    content = TnefContent()
    for attachment in parsed.attachments:
        try:
            name = _as_text(attachment.long_filename()) or _as_text(attachment.name)
        except Exception:
            name = ""
        if attachment.data:
            content.files.append((name, bytes(attachment.data)))
    content.text = _as_text(parsed.body).replace("\r\n", "\n")
    html = _as_text(parsed.htmlbody)
    content.html = html or None
    content.rtf_unread = bool(_rtf_of(parsed)) and not (content.text.strip() or content.html)
    if not (content.files or content.text.strip() or content.html):
        raise ValueError("a winmail.dat with no files or text in it")
    return content


def _rtf_of(parsed: object) -> bytes:
    """The compressed RTF body tnefparse found, if any (decompressing it may fail)."""
    try:
        return bytes(getattr(parsed, "rtfbody", None) or b"")
    except Exception:
        return b"?"  # there is one, unreadable
