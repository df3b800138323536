"""The sandboxed PDF worker: `python -m forms.pdf_worker MEMORY_MB`.

It caps its own address space (RLIMIT_AS), file writes and core dumps before it touches
any PDF, then answers requests on stdin/stdout until stdin closes. Each request is a
length-prefixed JSON header followed by the PDF bytes; each answer is length-prefixed JSON
(never pickle: the answer comes from code that has read hostile input).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import struct
import sys
import time
from typing import IO, Any

HEADER = struct.Struct(">I")
MAX_HEADER = 1 << 20


def limit_resources(memory_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The worker never writes files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def send(out: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    out.write(HEADER.pack(len(body)) + body)
    out.flush()


def _read_exactly(inp: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = inp.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(inp: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    head = _read_exactly(inp, HEADER.size)
    if head is None:
        return None
    (length,) = HEADER.unpack(head)
    if length > MAX_HEADER:
        return None
    raw = _read_exactly(inp, length)
    if raw is None:
        return None
    request = json.loads(raw)
    data = _read_exactly(inp, int(request["size"]))
    if data is None:
        return None
    return request, data


def _dispatch(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Extract a PDF's fields and text (the default), read a scan by OCR, or draw a page."""
    op = request.get("op", "extract")
    if op == "ocr":
        from forms.scan_worker import ocr

        return ocr(request, data)
    if op == "render":
        from forms.scan_worker import render

        return render(request, data)
    from forms.pdf_extract import extract

    return {"ok": True, **extract(data, max_pages=request["max_pages"], marks=request["marks"])}


def answer(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    from forms.pdf_extract import ExtractError

    try:
        return _dispatch(request, data)
    except ExtractError as exc:
        return {"ok": False, "code": exc.code, "detail": exc.detail}
    except MemoryError:
        return {"ok": False, "code": "pdf_too_large", "detail": "memory limit reached"}
    except RecursionError:
        return {"ok": False, "code": "pdf_unreadable", "detail": "objects nested too deeply"}
    except Exception as exc:  # any failure inside pdfminer is a property of the file
        detail = f"{type(exc).__name__}: {exc}"[:300]
        if _out_of_memory(exc):
            return {
                "ok": False,
                "code": "pdf_too_large",
                "detail": f"memory limit reached ({detail})",
            }
        return {"ok": False, "code": "pdf_unreadable", "detail": detail}


def _out_of_memory(exc: BaseException) -> bool:
    """pdfplumber wraps what pdfminer raised; zlib reports exhaustion as an error string."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MemoryError) or "allocate" in str(current).lower():
            return True
        pending.extend([current.__cause__, current.__context__, *current.args])
    return False


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    memory_mb = int(sys.argv[1])
    # Keep the protocol on a private copy of stdout; stray prints go to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    limit_resources(memory_mb)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    import forms.pdf_extract  # noqa: F401  (loaded once, before the first request)

    send(out, {"ready": True})
    while True:
        received = receive(inp)
        if received is None:
            return
        request, data = received
        started = time.process_time() + _children_cpu()
        result = answer(request, data)
        del data
        # Tesseract runs as a child of the worker: its CPU counts too.
        result["cpu_seconds"] = round(time.process_time() + _children_cpu() - started, 6)
        result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        send(out, result)


if __name__ == "__main__":
    main()
