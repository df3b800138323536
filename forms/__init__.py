"""Readers for PDF forms and email-body requests. Pure: bytes in, fields and findings out.

read_pdf(data, limits=None) -> ParsedRequest        # in a sandboxed child process
read_email_request(subject, text, sender) -> ParsedRequest
blank_form_path(name) -> Path                       # the shipped blank forms
"""

from forms.blanks import blank_form_names, blank_form_path
from forms.email_request import read_email_request
from forms.model import Finding, ParsedRequest
from forms.pdf_reader import read_pdf
from forms.sandbox import PdfLimits, PdfReaderUnavailable

__all__ = [
    "Finding",
    "ParsedRequest",
    "PdfLimits",
    "PdfReaderUnavailable",
    "blank_form_names",
    "blank_form_path",
    "read_email_request",
    "read_pdf",
]
