"""The scanned-form requests the sandboxed worker answers: OCR of a document, and one page
drawn as a PNG for the case page. Called by forms/pdf_worker.py, inside the sandbox."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from core.child_process import refusal
from forms.ocr_engine import OcrError
from forms.ocr_read import read_form
from forms.scan_page import ScanPage, read_page
from forms.scan_pages import PageError, image_kind, image_pages, pdf_pages


def _pages(data: bytes, max_pages: int, width: int | None = None) -> list[Image.Image]:
    if image_kind(data):
        return image_pages(data, max_pages)
    return list(pdf_pages(data, max_pages, width)) if width else list(pdf_pages(data, max_pages))


def ocr(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Every page read by zonal OCR: the form found and a reading of each of its fields."""
    timeout = float(request.get("timeout", 30))
    try:
        pages = _pages(data, int(request["max_pages"]))
        # Pages fed together are usually turned alike: each page is read first as the
        # page before it had to be turned, and turned again only when it does not read.
        read: list[ScanPage] = []
        for number, image in enumerate(pages):
            hint = read[-1].turned if read else 0
            read.append(read_page(image, number, timeout, hint))
        form = read_form(read, timeout)
    except PageError as exc:
        return refusal(exc.code, exc.detail, exc)
    except OcrError as exc:  # Tesseract failed or ran out of time: the worker starts afresh
        return {"ok": False, "code": exc.code, "detail": exc.detail}
    return {"ok": True, "ocr": form}


def render(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Page `page` (from 0) as a PNG `width` pixels wide, and how many pages there are."""
    width = int(request.get("width", 800))
    try:
        pages = _pages(data, int(request["max_pages"]), width)
    except PageError as exc:
        return refusal(exc.code, exc.detail, exc)
    number = int(request.get("page", 0))
    if not 0 <= number < len(pages):
        return refusal("no_such_page", f"{len(pages)} pages")
    image = pages[number]
    if image.width != width:
        image = image.resize((width, round(image.height * width / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False)
    return {"ok": True, "pages": len(pages), "png": base64.b64encode(buffer.getvalue()).decode()}
