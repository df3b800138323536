"""The sandboxed winmail.dat reader: `python -m intake.tnef_worker MEMORY_MB`.

tnefparse trusts the counts a file gives: a winmail.dat of 29 bytes claiming four billion
values makes it build objects until memory runs out. So it runs here, in a child that caps
its own address space (core.child_process) before it reads anything, and answers in JSON
frames: the files (base64), the text, the HTML, and whether only an RTF body was found.
"""

from __future__ import annotations

import base64
import sys
from typing import Any

from core.child_process import limit_resources, protocol_streams, receive, send


def _as_text(value: object) -> str:
    from intake.charsets import decode_bytes

    if value is None:
        return ""
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"), None)[0]
    return str(value).rstrip("\x00")


def _rtf_of(parsed: object) -> bool:
    """Whether tnefparse found a compressed RTF body (decompressing it may fail)."""
    try:
        return bool(getattr(parsed, "rtfbody", None))
    except Exception:
        return True  # there is one, unreadable


def unpack(data: bytes) -> dict[str, Any]:
    """What the file holds, or a refusal saying why it could not be read."""
    from tnefparse import TNEF

    # tnefparse reads damaged files into whatever exception its code meets first
    # (struct.error, UnboundLocalError, LookupError among them): each means "damaged".
    try:
        parsed = TNEF(data, do_checksum=False)
    except MemoryError:
        return {"ok": False, "detail": "it claims more than it holds (memory limit reached)"}
    except Exception as exc:
        return {"ok": False, "detail": f"not a readable winmail.dat ({type(exc).__name__})"}
    files: list[list[str]] = []
    for attachment in parsed.attachments:
        try:
            name = _as_text(attachment.long_filename()) or _as_text(attachment.name)
        except Exception:
            name = ""
        if attachment.data:
            files.append([name, base64.b64encode(bytes(attachment.data)).decode("ascii")])
    return {
        "ok": True,
        "files": files,
        "text": _as_text(parsed.body).replace("\r\n", "\n"),
        "html": _as_text(parsed.htmlbody),
        "rtf": _rtf_of(parsed),
    }


def main() -> None:
    memory_mb = int(sys.argv[1])
    inp, out = protocol_streams()
    limit_resources(memory_mb)
    import tnefparse  # noqa: F401  (loaded once, before the first request)

    send(out, {"ready": True})
    while True:
        received = receive(inp)
        if received is None:
            return
        _, data = received
        try:
            answer = unpack(data)
        except MemoryError:
            answer = {"ok": False, "detail": "it claims more than it holds (memory limit reached)"}
        del data
        send(out, answer)


if __name__ == "__main__":
    main()
