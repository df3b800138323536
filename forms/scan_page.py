"""One scanned page read by OCR and turned upright: its words placed in points on an A4
page, the level page image for finding boxes, and the page at the scan's own resolution
for reading values. Runs in the sandboxed worker."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from forms.ocr_engine import (
    OcrWord,
    level_point,
    quarter_turn,
    read_words,
    skew_degrees,
    straighten,
    turn,
)
from forms.page_text import Word
from forms.scan_pages import OCR_WIDTH, at_width, points_per_pixel

# A page read upright has many confident words; fewer means it is on its side or upside down.
UPRIGHT_MIN_WORDS = 12
UPRIGHT_MIN_CONF = 70.0
UPRIGHT_SHARE = 0.4  # upside down, Tesseract still finds a few "words" it is sure of


@dataclass
class ScanPage:
    """One page turned upright: the level image, its words in points, and how it was turned."""

    image: Image.Image
    words: list[Word]
    conf: dict[Word, float]
    segment: dict[Word, tuple[int, int, int]]  # Tesseract's line each word was read in
    turned: int
    skew: float
    source: Image.Image  # the same page at the scan's own resolution (up to 300 dpi), upright
    # but not levelled: turning a 300 dpi page costs more than reading it, so only the
    # value boxes are cut from it and levelled (level_crop)

    def level_crop(self, box: tuple[int, int, int, int]) -> Image.Image:
        """The part of the level page image `box` covers, cut from the source and levelled
        there: the box's centre is found in the source, a margin round it is cut, turned
        by the skew and trimmed back to the box."""
        scale = self.source.width / self.image.width
        if scale <= 1.05 and abs(self.skew) < 0.05:
            return self.image.crop(box)
        left, top, right, bottom = (v * scale for v in box)
        size = (self.source.width, self.source.height)
        # Where the box's centre was before straighten(): the inverse turn.
        cx, cy = level_point((left + right) / 2, (top + bottom) / 2, -self.skew, size)
        half_w, half_h = (right - left) / 2, (bottom - top) / 2
        margin = abs(math.sin(math.radians(self.skew))) * half_w + 4
        wide = self.source.crop(
            (
                round(cx - half_w - margin),
                round(cy - half_h - margin),
                round(cx + half_w + margin),
                round(cy + half_h + margin),
            )
        )
        level = straighten(wide, self.skew)
        return level.crop(
            (round(margin), round(margin), round(margin + 2 * half_w), round(margin + 2 * half_h))
        )


def _sure_words(words: list[OcrWord]) -> int:
    return sum(1 for w in words if w.conf >= UPRIGHT_MIN_CONF and len(w.text) > 2)


def _upright_enough(words: list[OcrWord]) -> bool:
    sure = _sure_words(words)
    return sure >= UPRIGHT_MIN_WORDS and sure >= UPRIGHT_SHARE * len(words)


def _placed(
    words: list[OcrWord], angle: float, image: Image.Image, number: int
) -> tuple[list[Word], dict[Word, float], dict[Word, tuple[int, int, int]]]:
    scale = points_per_pixel(image)
    placed: list[Word] = []
    conf: dict[Word, float] = {}
    segment: dict[Word, tuple[int, int, int]] = {}
    for w in words:
        cx, cy = level_point(*w.centre, angle, image.size)
        word = Word(
            w.text,
            round((cx - w.width / 2) * scale, 1),
            round((cx + w.width / 2) * scale, 1),
            round((cy - w.height / 2) * scale, 1),
            round((cy + w.height / 2) * scale, 1),
            "ocr",
            number,
        )
        placed.append(word)
        conf[word] = min(conf.get(word, 100.0), w.conf)
        segment[word] = w.line
    return placed, conf, segment


def read_page(
    source: Image.Image,
    number: int,
    timeout: float,
    hint: int = 0,
) -> ScanPage:
    """OCR one page; ask OSD for a quarter turn only when the page does not read upright.
    `hint` is the turn the previous page needed: pages fed together are usually alike."""
    base = at_width(source, OCR_WIDTH)
    turned = hint
    words = read_words(turn(base, turned), timeout)
    if not _upright_enough(words):
        # OSD's answer first, then its opposite (OSD sometimes mistakes 90° for 270°);
        # the turn under which most words read surely wins.
        tried = {turned: words}
        found = quarter_turn(base, timeout)
        for candidate in (found, (found + 180) % 360):
            if candidate not in tried:
                tried[candidate] = read_words(turn(base, candidate), timeout)
                if _upright_enough(tried[candidate]):
                    break
        turned = max(tried, key=lambda t: _sure_words(tried[t]))
        words = tried[turned]
    image = turn(base, turned)
    angle = skew_degrees(words)
    placed, conf, segment = _placed(words, angle, image, number)
    level = straighten(image, angle)
    return ScanPage(level, placed, conf, segment, turned, angle, turn(source, turned))
