"""Readers for PDF forms and email-body requests. Pure: bytes in, fields and findings out.

    read_pdf(data, limits=None) -> ParsedRequest        # sandboxed child process
    read_email_request(subject, text, sender) -> ParsedRequest
    blank_form_path(name) -> Path
"""

from forms.blanks import blank_form_names, blank_form_path
from forms.model import Finding, ParsedRequest
from forms.pdf_reader import read_pdf
from forms.sandbox import PdfLimits

__all__ = [
    "Finding",
    "ParsedRequest",
    "PdfLimits",
    "blank_form_names",
    "blank_form_path",
    "read_pdf",
]
