"""Hostile PDFs, made on the spot: empty, not a PDF, truncated, encrypted, a thousand pages,
a decompression bomb, an endless content stream, a self-drawing XObject. The forms tests
read each one; the benches attach them to requests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen.canvas import Canvas

# A good form to cut short: the forms corpus (read as data, like the benches' mail).
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "forms"


def _raw_pdf(*objects: bytes) -> bytes:
    """A PDF assembled from object bodies (numbered from 1) with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def _page_with_content(content: bytes, filters: bytes = b"") -> bytes:
    return _raw_pdf(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d %s >>\nstream\n" % (len(content), filters) + content + b"\nendstream",
    )


def inflating_to(megabytes: int) -> bytes:
    """A zlib stream of about megabytes/1000 MB that inflates to `megabytes` MB of zeros.

    One fully flushed block is repeated, so it is quick to make however large it inflates.
    """
    zeros = b"\0" * (1 << 20)
    packer = zlib.compressobj(9)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush(zlib.Z_FINISH)[:-4]
    checksum = 1
    for _ in range(megabytes):
        checksum = zlib.adler32(zeros, checksum)
    return first + block * (megabytes - 1) + end + struct.pack(">I", checksum)


def bomb(megabytes: int = 800) -> bytes:
    """A page whose content stream of about a megabyte inflates far beyond the memory limit."""
    return _page_with_content(inflating_to(megabytes), b"/Filter /FlateDecode")


def endless() -> bytes:
    """The page tree is a reference to a reference to itself: resolving it never ends."""
    return _raw_pdf(b"<< /Type /Catalog /Pages 2 0 R >>", b"3 0 R", b"2 0 R")


def recursive() -> bytes:
    """A form XObject that draws itself."""
    return _raw_pdf(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /X1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length 7 >>\nstream\n/X1 Do\n\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] "
        b"/Resources << /XObject << /X1 5 0 R >> >> /Length 7 >>\nstream\n/X1 Do\n\nendstream",
    )


def pages(count: int) -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out)
    for number in range(count):
        canvas.drawString(50, 800, f"Page {number + 1}")
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def encrypted() -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out, encrypt=StandardEncryption("letmein", ownerPassword="owner"))
    canvas.drawString(50, 800, "GPP Practice User Administrator Certification Form")
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def truncated() -> bytes:
    data = (CORPUS / "uar-acroform.pdf").read_bytes()
    return data[: len(data) * 2 // 3]


HOSTILE = {
    "empty": (lambda: b"", {"empty_attachment"}),
    "whitespace-only": (lambda: b"\r\n  \n", {"empty_attachment"}),
    "not-a-pdf": (lambda: b"PK\x03\x04\x14\x00 a zip file, not a PDF", {"not_a_pdf"}),
    "word-document": (lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, {"not_a_pdf"}),
    "truncated": (truncated, {"pdf_unreadable"}),
    "encrypted": (encrypted, {"pdf_encrypted"}),
    "thousand-pages": (lambda: pages(1000), {"pdf_too_large"}),
    "bomb": (bomb, {"pdf_too_large"}),
    "endless": (endless, {"pdf_timeout"}),
    # pdfminer stops the self-drawing XObject; what matters is that it ends as a finding.
    "recursive": (recursive, {"unknown_form", "pdf_unreadable", "pdf_timeout"}),
    "garbage-after-header": (lambda: b"%PDF-1.4\n" + bytes(range(256)) * 40, {"pdf_unreadable"}),
}
