"""The second, zonal reading of a scanned form: each value's box, cut from the level page
image inside its drawn border, enlarged, and read again by Tesseract, all boxes of a form
in one strip (one Tesseract run per form).

Read with the whole page, a value beside the box's border often loses a letter to it
("[Drzoe" for "Dr Zoë") or gains one; read inside the border, it comes back clean. A box
with ink in it where nothing was read is reported as such: blank or not, nobody can say.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from forms.ocr_engine import read_words
from forms.page_text import Word
from forms.scan_page import ScanPage

ZOOM = 2  # Tesseract reads best with letters well over 20 pixels tall
GAP = 30  # pixels of white between zones in the strip
BAND_PT = 7.0  # how far above and below the label's words the zone reaches
INSET_PT = 2.2  # how far inside the drawn border the zone starts
DENSE = 0.5  # share of dark pixels that makes a column or row part of a border
INKED = 0.015  # share of dark pixels inside a box that means something is written there
A4_WIDTH_PT = 595.28


@dataclass
class Zone:
    key: str
    page: int
    box: tuple[int, int, int, int]  # left, top, right, bottom in the level page's pixels
    ink: float  # share of dark pixels inside
    bordered: bool  # a drawn box was found round it


@dataclass
class ZoneText:
    text: str | None
    confidence: float


def _profile(crop: Image.Image, vertical: bool, darker_than: int = 175) -> list[float]:
    """Share of dark pixels per column (or row). Thin grey borders come out of a soft scan
    lighter than text, hence the generous threshold."""
    dark = crop.point(lambda p: 255 if p < darker_than else 0)
    size = (dark.width, 1) if vertical else (1, dark.height)
    return [float(v) / 255 for v in dark.resize(size, Image.Resampling.BOX).tobytes()]


def _ink(crop: Image.Image) -> float:
    if crop.width < 1 or crop.height < 1:
        return 0.0
    values = _profile(crop, vertical=True, darker_than=140)
    return sum(values) / len(values)


def value_zone(image: Image.Image, label: list[Word], key: str) -> Zone | None:
    """The inside of the box right of the label, or the band beside it when no box is drawn."""
    per_pt = image.width / A4_WIDTH_PT
    left = int((label[-1].x1 + 3) * per_pt)
    right = image.width - int(25 * per_pt)
    top = max(int((min(w.top for w in label) - BAND_PT) * per_pt), 0)
    bottom = min(int((max(w.bottom for w in label) + BAND_PT) * per_pt), image.height)
    if right - left < 20 or bottom - top < 8:
        return None
    band = image.crop((left, top, right, bottom))
    columns = [i for i, v in enumerate(_profile(band, vertical=True)) if v > DENSE]
    inset = int(INSET_PT * per_pt)
    box = (left, top, right, bottom)
    bordered = False
    if len(columns) >= 2 and columns[-1] - columns[0] > 40 * per_pt:
        x0, x1 = left + columns[0], left + columns[-1]
        inner = image.crop((x0 + inset, top, x1 - inset, bottom))
        rows = [i for i, v in enumerate(_profile(inner, vertical=False)) if v > DENSE]
        if len(rows) >= 2 and rows[-1] - rows[0] > 8 * per_pt:
            box = (x0 + inset, top + rows[0] + inset, x1 - inset, top + rows[-1] - inset)
            bordered = True
    if box[2] - box[0] < 10 or box[3] - box[1] < 6:
        return None
    return Zone(key, label[-1].page, box, _ink(image.crop(box)), bordered)


def _crop(page: ScanPage, zone: Zone) -> Image.Image:
    """The zone cut from the page at the scan's own resolution, enlarged to ZOOM times the
    OCR resolution where the scan has less detail than that."""
    scale = page.source.width / page.image.width
    crop = page.level_crop(zone.box)
    zoom = ZOOM / scale
    if zoom > 1.05:
        size = (round(crop.width * zoom), round(crop.height * zoom))
        crop = crop.resize(size, Image.Resampling.BICUBIC)
    return crop


def read_zones(pages: list[ScanPage], zones: list[Zone], timeout: float) -> dict[str, ZoneText]:
    """Every zone read in one Tesseract run over a strip of the zones, one per line."""
    crops = [_crop(pages[zone.page], zone) for zone in zones]
    if not crops:
        return {}
    width = max(c.width for c in crops) + 2 * GAP
    height = sum(c.height + GAP for c in crops) + GAP
    strip = Image.new("L", (width, height), 255)
    places: list[tuple[str, int, int]] = []
    y = GAP
    for zone, crop in zip(zones, crops, strict=True):
        strip.paste(crop, (GAP, y))
        places.append((zone.key, y, y + crop.height))
        y += crop.height + GAP
    found: dict[str, list[tuple[float, str, float]]] = {}
    for word in read_words(strip, timeout, psm=6):
        if not any(c.isalnum() or c == "@" for c in word.text):
            continue  # a border or a speck read as a bar, a dash or a symbol
        middle = word.top + word.height / 2
        for key, y0, y1 in places:
            if y0 <= middle <= y1:
                found.setdefault(key, []).append((word.left, word.text, word.conf))
                break
    read: dict[str, ZoneText] = {}
    for zone in zones:
        words = sorted(found.get(zone.key, []))
        if words:
            read[zone.key] = ZoneText(
                " ".join(text for _, text, _ in words), min(conf for _, _, conf in words)
            )
        else:
            # Nothing read: sure only when the box is clean.
            read[zone.key] = ZoneText(None, 100.0 if zone.ink < INKED else 0.0)
    return read
