"""Readers for PDF forms and email-body requests. Pure: bytes in, fields and findings out.

read_pdf(data, limits=None) -> ParsedRequest        # in a sandboxed child process
read_attachment(data, limits=None) -> ParsedRequest # a PDF, or a scan as JPEG/PNG/TIFF (OCR)
read_ahead(documents, limits=None) -> ReadAhead     # a batch's forms read side by side;
reading(ahead)                                      #   read_attachment takes them from there
current_read_ahead() -> ReadAhead | None            # this thread's, in a `reading` block
is_form_file(content_type, filename, data) -> bool  # may this attachment hold a form?
is_image(data) -> bool                              # JPEG, PNG, TIFF or HEIC, by its bytes
render_page(data, page, width, limits=None) -> PNG  # a page of an attached form, for people
read_email_request(subject, text, sender) -> ParsedRequest
blank_form_path(name) -> Path                       # the shipped blank forms

The names are imported on first use, so that a command that needs only the blank forms (the
sender, say) does not load the PDF and email readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forms.blanks import blank_form_names, blank_form_path
    from forms.email_request import read_email_request
    from forms.model import Finding, ParsedRequest
    from forms.pdf_reader import is_form_file, read_ahead, read_attachment, read_pdf
    from forms.readahead import ReadAhead, reading
    from forms.readahead import current as current_read_ahead
    from forms.sandbox import PdfLimits, PdfReaderUnavailable
    from forms.scan_pages import is_image
    from forms.scan_render import render_page

# Where each name lives (forms.readahead's `current` is exported as current_read_ahead).
_HOMES: dict[str, tuple[str, str]] = {
    "Finding": ("forms.model", "Finding"),
    "ParsedRequest": ("forms.model", "ParsedRequest"),
    "PdfLimits": ("forms.sandbox", "PdfLimits"),
    "PdfReaderUnavailable": ("forms.sandbox", "PdfReaderUnavailable"),
    "ReadAhead": ("forms.readahead", "ReadAhead"),
    "blank_form_names": ("forms.blanks", "blank_form_names"),
    "blank_form_path": ("forms.blanks", "blank_form_path"),
    "current_read_ahead": ("forms.readahead", "current"),
    "is_form_file": ("forms.pdf_reader", "is_form_file"),
    "is_image": ("forms.scan_pages", "is_image"),
    "read_ahead": ("forms.pdf_reader", "read_ahead"),
    "read_attachment": ("forms.pdf_reader", "read_attachment"),
    "read_email_request": ("forms.email_request", "read_email_request"),
    "read_pdf": ("forms.pdf_reader", "read_pdf"),
    "reading": ("forms.readahead", "reading"),
    "render_page": ("forms.scan_render", "render_page"),
}


def __getattr__(name: str) -> Any:
    # Looked up afresh each time (a dictionary look-up once imported), not stored here: a
    # test that patches a name in its home module, then undoes it, leaves nothing behind.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'forms' has no attribute {name!r}")
    return getattr(importlib.import_module(home[0]), home[1])


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "Finding",
    "ParsedRequest",
    "PdfLimits",
    "PdfReaderUnavailable",
    "ReadAhead",
    "blank_form_names",
    "blank_form_path",
    "current_read_ahead",
    "is_form_file",
    "is_image",
    "read_ahead",
    "read_attachment",
    "read_email_request",
    "read_pdf",
    "reading",
    "render_page",
]
