"""The sandboxed PDF worker: `python -m forms.pdf_worker MEMORY_MB`.

It caps its own address space (RLIMIT_AS), file writes and core dumps before it touches
any PDF, then answers requests on stdin/stdout until stdin closes, in the frames of
core.child_process: a JSON header and the PDF's bytes in, JSON out (never pickle: the
answer comes from code that has read hostile input).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from typing import Any

from core.child_process import limit_resources, protocol_streams, receive, refusal, send


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
        return refusal(exc.code, exc.detail, exc)
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


def _resident_kb() -> int:
    """The worker's resident memory now (ru_maxrss cannot tell: Linux carries it over from
    the process that started the worker)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    memory_mb = int(sys.argv[1])
    inp, out = protocol_streams()
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
        result["rss_kb"] = _resident_kb()
        send(out, result)


if __name__ == "__main__":
    main()
