"""Pages of a scanned form as greyscale images, ready for OCR; runs in the sandboxed worker.

A PDF's pages are rendered with pypdfium2; an image attachment (JPEG, PNG, TIFF, a
copier's multi-page TIFF) is opened with Pillow. Sizes are checked from the headers before
any pixel is decoded, so a bomb (huge dimensions, or a small file that inflates to
gigabytes) is refused with a reason rather than filling the worker's memory.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

from PIL import Image, ImageOps

# Pillow refuses (DecompressionBombError) anything past this many pixels in one frame;
# checked again below, before decoding, with a reason the practice can act on.
MAX_IMAGE_PIXELS = 60_000_000  # about A4 at 600 dpi, twice over
MAX_SIDE = 20_000
MIN_PAGE_SIDE = 600  # pixels: an A4 page scanned at even 75 dpi is larger
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

# OCR reads each whole page at this width: an A4 page at about 120 dpi. Scans are scaled
# down for it (the labels and headings of a form are 9–15 pt, plenty at 120 dpi),
# which keeps the cost per page low and the same for every scanner. The values are read
# again from their boxes at up to SOURCE_WIDTH (300 dpi), where the scan has the detail.
OCR_WIDTH = 1000
SOURCE_WIDTH = 2480
A4_WIDTH_PT = 595.28


class PageError(Exception):
    """An image or page that cannot be read; `code` is the finding code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


IMAGE_SIGNATURES = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def image_kind(data: bytes) -> str | None:
    """ "jpeg", "png", "tiff", "heif" or None, from the file's first bytes (never its name)."""
    for signature, kind in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return kind
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    return None


def is_image(data: bytes) -> bool:
    """An image a scanned or photographed form may come as."""
    return image_kind(data) is not None


def _check_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise PageError("image_unreadable", f"{what} has no pixels")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise PageError(
            "image_too_large",
            f"{what} is {width} x {height} pixels, more than a scanned page can be",
        )


def at_width(image: Image.Image, width: int) -> Image.Image:
    """The image scaled down to `width` (never up)."""
    if image.width <= width * 1.1:
        return image
    return image.resize((width, round(image.height * width / image.width)), Image.Resampling.BOX)


def _for_reading(image: Image.Image) -> Image.Image:
    """Greyscale, upright as the file says (EXIF orientation), at most SOURCE_WIDTH wide."""
    image = ImageOps.exif_transpose(image) or image
    return at_width(image.convert("L"), SOURCE_WIDTH)


def _open_heif() -> None:
    """Teach Pillow HEIC/HEIF (the iPhone's photos) with pillow-heif, where it is installed."""
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise PageError(
            "image_unsupported", "HEIC/HEIF photos (the iPhone's format) cannot be read here"
        ) from exc
    pillow_heif.register_heif_opener()


def image_pages(data: bytes, max_pages: int) -> list[Image.Image]:
    """Every frame of an image file, checked before decoding."""
    if image_kind(data) == "heif":
        _open_heif()
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PageError("image_too_large", str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise PageError("image_unreadable", f"{type(exc).__name__}: {exc}"[:300]) from exc
    if max(image.width, image.height) < MIN_PAGE_SIDE:
        # A logo or an icon from a signature: not worth reading, and never a form.
        raise PageError("not_a_page", f"{image.width} x {image.height} pixels")
    frames = int(getattr(image, "n_frames", 1))
    if frames > max_pages:
        raise PageError("image_too_large", f"{frames} pages")
    pages = []
    for index in range(frames):
        image.seek(index)
        _check_size(image.width, image.height, f"page {index + 1}")
        try:
            image.load()
            pages.append(_for_reading(image))
        except Image.DecompressionBombError as exc:
            raise PageError("image_too_large", str(exc)) from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise PageError("image_unreadable", f"{type(exc).__name__}: {exc}"[:300]) from exc
    return pages


def pdf_pages(data: bytes, max_pages: int, width: int = SOURCE_WIDTH) -> Iterator[Image.Image]:
    """Each page of a PDF rendered to greyscale at `width` pixels (its height in proportion)."""
    import pypdfium2  # type: ignore[import-untyped]

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise PageError("pdf_unreadable", str(exc)[:300]) from exc
    try:
        if len(document) > max_pages:
            raise PageError("pdf_too_large", f"{len(document)} pages")
        for index in range(len(document)):
            page = document[index]
            page_width, page_height = page.get_size()
            if page_width <= 0 or page_height <= 0:
                raise PageError("pdf_unreadable", f"page {index + 1} has no size")
            scale = min(width, _scanned_width(page, page_width)) / page_width
            _check_size(round(page_width * scale), round(page_height * scale), f"page {index + 1}")
            yield page.render(scale=scale, grayscale=True).to_pil().convert("L")
    finally:
        document.close()


def _scanned_width(page: object, page_width: float) -> float:
    """The page's width in pixels at the resolution of the scan drawn on it (the densest
    picture on the page; never under OCR_WIDTH): rendering finer than the scan adds no
    detail, only pixels to draw and read. Unbounded for a page with no picture."""
    import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

    density = 0.0
    for picture in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2):  # type: ignore[attr-defined]
        left, bottom, right, top = picture.get_bounds()
        pixels_wide, pixels_high = picture.get_px_size()
        if right - left > 1 and top - bottom > 1:
            # Pixels per point, whichever way round the picture is placed.
            density = max(
                density, math.sqrt(pixels_wide * pixels_high / ((right - left) * (top - bottom)))
            )
    return max(density * page_width, OCR_WIDTH) if density else math.inf


def points_per_pixel(image: Image.Image) -> float:
    """Positions are compared in PDF points of an A4 page, whatever the scan's resolution."""
    return A4_WIDTH_PT / image.width
