"""Zonal OCR of a scanned form: find the form by its title and headings, then read each field
from the zone beside its label. Runs in the sandboxed worker (it needs the page images).

Words are placed in PDF points of an A4 page after the page is turned upright, so the same
geometry as forms/page_text.py applies: a section runs from its heading to the next one
found, a value is what lies right of its label on the same row. Labels and headings are
matched loosely (OCR may misread a letter of a label; it is the values that must be exact).
A tick box is judged by the ink inside the box drawn right of its label, not by what
Tesseract makes of a cross. Each value keeps the lowest confidence of its words.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from forms.definitions import FieldDef, FormDefinition, definitions
from forms.ocr_zones import INKED, Zone, ZoneText, read_zones, value_zone
from forms.page_text import PageForm, Word, normalise_token, tokens
from forms.scan_page import ScanPage

LABEL_MATCH = 0.84  # similarity a line's first words need to count as the label
# Ink inside a tick box: below EMPTY the box is empty, above TICKED it holds a mark.
EMPTY_INK = 0.04
TICKED_INK = 0.10
JUNK = frozenset("|[](){}_—–-=~.,:;'\"‘’“”")
TICK_ZONE_PT = 260.0
BOX_EDGES = "[]|{}‘“”'-–—_.,:;~=*"
LINE_CENTRE_SLACK = 4.0  # points: words whose centres are this close share a line


# --------------------------------------------------------------------------- the form


def _similar(line: list[Word], wanted: list[str]) -> list[Word] | None:
    """The first words of `line` that read like `wanted`, allowing an OCR slip or a split
    or joined word; None when none do."""
    useful = [w for w in line if w.token]
    numbers = [t for t in wanted if any(c.isdigit() for c in t)]
    if numbers and not all(n in {w.token for w in useful} for n in numbers):
        return None  # "User administrator 1" is never "User administrator 2"
    target = " ".join(wanted)
    best: tuple[float, list[Word]] | None = None
    for count in range(max(1, len(wanted) - 1), min(len(useful), len(wanted) + 1) + 1):
        seen = " ".join(w.token for w in useful[:count])
        matcher = difflib.SequenceMatcher(None, seen, target)
        # The quick ratios are upper bounds of ratio(): most lines fail them, cheaply.
        if matcher.real_quick_ratio() < LABEL_MATCH or matcher.quick_ratio() < LABEL_MATCH:
            continue
        ratio = matcher.ratio()
        if ratio >= LABEL_MATCH and (best is None or ratio > best[0]):
            best = (ratio, useful[:count])
    return best[1] if best else None


def _find(lines: list[list[Word]], text: str, span: tuple[int, int] | None = None) -> int | None:
    wanted = tokens(text)[:6]
    start, end = span or (0, len(lines))
    for number in range(start, end):
        if wanted and _similar(lines[number], wanted):
            return number
    return None


class ScanForm(PageForm):
    """PageForm with headings and labels matched loosely, as OCR needs."""

    def sections(self, definition: FormDefinition) -> dict[str, tuple[int, int]]:
        """Headings are looked for in the form's order, each after the last one found."""
        found = []
        start = 0
        for section in definition.sections:
            line = _find(self.lines, section.heading, (start, len(self.lines)))
            if line is not None:
                found.append((line, section.id))
                start = line + 1
        found.sort()
        return {
            section_id: (start + 1, found[i + 1][0] if i + 1 < len(found) else len(self.lines))
            for i, (start, section_id) in enumerate(found)
        }

    def _label(self, field: FieldDef, span: tuple[int, int]) -> list[Word] | None:
        wanted = tokens(field.label)[:6]
        for line in self.lines[span[0] : span[1]]:
            matched = _similar(line, wanted)
            if matched:
                return matched
        return None


def ocr_lines(words: list[Word], segment: dict[Word, tuple[int, int, int]]) -> list[list[Word]]:
    """Words grouped into lines: Tesseract's own lines (which cope with ascenders and
    descenders: OCR boxes hug the ink, so "name" starts lower than "Full"), joined with the
    others on the same row (a label and its value often come back as separate blocks)."""
    pieces: dict[tuple[int, tuple[int, int, int]], list[Word]] = {}
    for word in words:
        pieces.setdefault((word.page, segment.get(word, (0, 0, id(word)))), []).append(word)

    def middle(piece: list[Word]) -> float:
        return (min(w.top for w in piece) + max(w.bottom for w in piece)) / 2

    lines: list[list[Word]] = []
    centre = 0.0
    for piece in sorted(pieces.values(), key=lambda p: (p[0].page, middle(p))):
        if (
            lines
            and lines[-1][0].page == piece[0].page
            and middle(piece) - centre < LINE_CENTRE_SLACK
        ):
            lines[-1].extend(piece)
        else:
            lines.append(list(piece))
            centre = middle(piece)
    for line in lines:
        line.sort(key=lambda w: w.x0)
    return lines


def identify(lines: list[list[Word]]) -> FormDefinition | None:
    """The form whose version mark, title and headings read best on the pages."""
    text = " ".join(w.token for line in lines for w in line)
    best, best_score = None, 0.0
    for definition in definitions():
        headings = sum(_find(lines, s.heading) is not None for s in definition.sections)
        score = headings / len(definition.sections)
        if _find(lines, definition.title) is not None:
            score += 0.5
        if " ".join(tokens(definition.version)) in text:
            score += 1.0
        if score > best_score:
            best, best_score = definition, score
    return best if best_score >= 0.75 else None


# --------------------------------------------------------------------------- the values


@dataclass
class Reading:
    value: str | bool | None
    confidence: float
    page: int | None = None
    box: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "confidence": round(self.confidence, 1),
            "page": self.page,
            "box": self.box,
        }


def _joined(words: list[Word], kind: str) -> str:
    # An address or a code split by OCR ("jane.smith @nhs.net", "B82 005") is one token.
    glue = "" if kind in ("email", "ods_code") else " "
    return glue.join(w.text for w in words)


def _text_reading(
    form: ScanForm, label: list[Word], f: FieldDef, conf: dict[Word, float]
) -> Reading:
    row = [w for w in form._row_words(label) if normalise_token(w.text) and w.text not in JUNK]
    row = [w for w in row if w.text.strip("|[]") != ""]
    if not row:
        return Reading(None, 100.0, label[-1].page, _box(label))
    words = [Word(w.text, w.x0, w.x1, w.top, w.bottom, w.font, w.page) for w in row]
    confidence = min(conf.get(w, 0.0) for w in row)
    # The box drawn round a value is often read as a bracket or bar at either end.
    value = _joined(words, f.type).strip(BOX_EDGES).strip()
    if len(value) < 2:  # a speck or a box's corner, not a value
        return Reading(None, confidence, row[0].page, _box(row))
    return Reading(value, confidence, row[0].page, _box(row))


def _box(words: list[Word]) -> list[float]:
    return [
        min(w.x0 for w in words),
        min(w.top for w in words),
        max(w.x1 for w in words),
        max(w.bottom for w in words),
    ]


def _dark_profile(crop: Image.Image, vertical: bool) -> list[float]:
    """Share of dark pixels in each column (or row) of a crop."""
    dark = crop.point(lambda p: 255 if p < 140 else 0)
    size = (dark.width, 1) if vertical else (1, dark.height)
    squashed = dark.resize(size, Image.Resampling.BOX)
    return [float(v) / 255 for v in squashed.tobytes()]


def _edges(profile: list[float], least: int, most: int) -> tuple[int, int] | None:
    """The first pair of dark bands `least`..`most` apart: a box's two sides."""
    dense = [i for i, v in enumerate(profile) if v > 0.45]
    for i, first in enumerate(dense):
        for second in dense[i + 1 :]:
            if second - first > most:
                break
            if second - first >= least:
                return first, second
    return None


def _square(profile: list[float], side: int, centre: float) -> tuple[int, int] | None:
    """The pair of dark rows `side` apart (within a third) nearest the label's middle."""
    dense = [i for i, v in enumerate(profile) if v > 0.45]
    pairs = [
        (abs(b - a - side) + abs((a + b) / 2 - centre), a, b)
        for i, a in enumerate(dense)
        for b in dense[i + 1 :]
        if abs(b - a - side) <= side / 3
    ]
    if not pairs:
        return None
    _, top, bottom = min(pairs)
    return top, bottom


def _tick(page: ScanPage, label: list[Word]) -> Reading:
    """Whether the box right of the label holds a mark, judged by the ink inside it, at the
    scan's own resolution."""
    ocr_per_pt = page.image.width / 595.28
    last = label[-1]
    left = int((last.x1 + 3) * ocr_per_pt)
    right = min(int((last.x1 + 3 + TICK_ZONE_PT) * ocr_per_pt), page.image.width - 1)
    top = max(int((label[0].top - 6) * ocr_per_pt), 0)
    bottom = min(int((last.bottom + 6) * ocr_per_pt), page.image.height - 1)
    box = [round(v / ocr_per_pt, 1) for v in (left, top, right, bottom)]
    if right - left < 10 or bottom - top < 5:
        return Reading(None, 0.0, last.page, box)
    zone = page.level_crop((left, top, right, bottom))
    per_pt = ocr_per_pt * zone.width / (right - left)
    least, most = int(7 * per_pt), int(18 * per_pt)
    sides = _edges(_dark_profile(zone, vertical=True), least, most)
    if sides is None:
        return Reading(None, 0.0, last.page, box)
    inset = max(int(2 * per_pt), 2)
    column = zone.crop((sides[0], 0, sides[1] + 1, zone.height))
    # A tick box is square and level with its label: of the dark rows, the pair as far
    # apart as its sides and beside the label (a rule drawn above is not its top).
    middle = ((label[0].top + last.bottom) / 2 - box[1]) * per_pt
    rows = _square(_dark_profile(column, vertical=False), sides[1] - sides[0], middle)
    if rows is None:
        return Reading(None, 0.0, last.page, box)
    inside = column.crop((inset, rows[0] + inset, column.width - inset, rows[1] - inset + 1))
    if inside.width < 2 or inside.height < 2:
        return Reading(None, 0.0, last.page, box)
    ink = sum(_dark_profile(inside, vertical=True)) / inside.width
    box = [
        round(box[0] + sides[0] / per_pt, 1),
        round(box[1] + rows[0] / per_pt, 1),
        round(box[0] + sides[1] / per_pt, 1),
        round(box[1] + rows[1] / per_pt, 1),
    ]
    if ink <= EMPTY_INK:
        return Reading(False, 95.0, last.page, box)
    if ink >= TICKED_INK:
        return Reading(True, 95.0, last.page, box)
    return Reading(ink >= (EMPTY_INK + TICKED_INK) / 2, 40.0, last.page, box)


def _zone_reading(
    page_reading: Reading, zone: Zone, read: ZoneText, f: FieldDef, per_pt: float
) -> Reading:
    """The zone's reading where the box's border was found (read inside it, the border cannot
    spoil it), else the surer of the two; a clean box is empty whatever the page's reading
    made of its border, and a box with ink that nothing could read has no value at all."""
    box = [round(v / per_pt, 1) for v in zone.box]
    if read.text:
        glue = "" if f.type in ("email", "ods_code") else " "
        value = glue.join(read.text.split()).strip(BOX_EDGES).strip()
        better = (
            zone.bordered
            or page_reading.value is None
            or read.confidence >= page_reading.confidence
        )
        if len(value) >= 2 and better:
            return Reading(value, read.confidence, zone.page, box)
        return page_reading
    if page_reading.value is None or (zone.bordered and zone.ink < INKED):
        return Reading(None, read.confidence, zone.page, box)
    return page_reading


def read_form(pages: list[ScanPage], timeout: float = 30.0) -> dict[str, Any]:
    """The form on the pages and a reading of each field whose label was found."""
    words = [w for page in pages for w in page.words]
    conf: dict[Word, float] = {}
    segment: dict[Word, tuple[int, int, int]] = {}
    for page in pages:
        conf.update(page.conf)
        segment.update(page.segment)
    form = ScanForm(ocr_lines(words, segment), words, [])
    summary: dict[str, Any] = {
        "pages": len(pages),
        "page_words": [len(p.words) for p in pages],
        "turned": [p.turned for p in pages],
        "skew": [round(p.skew, 2) for p in pages],
        "form_version": None,
        "readings": {},
        "parts": [],
    }
    definition = identify(form.lines)
    if definition is None:
        return summary
    summary["form_version"] = definition.version
    spans = form.sections(definition)
    parts: set[str] = set()
    readings: dict[str, Any] = {}
    first: dict[str, Reading] = {}
    zones: list[tuple[Zone, FieldDef]] = []
    for section in definition.sections:
        span = spans.get(section.id)
        if span is None:
            continue
        parts.add(section.part)
        for f in section.fields:
            label = form._label(f, span)
            if label is None:
                readings[f.key] = Reading(None, 0.0).as_dict()
            elif f.type == "checkbox":
                readings[f.key] = _tick(pages[label[-1].page], label).as_dict()
            else:
                first[f.key] = _text_reading(form, label, f, conf)
                zone = value_zone(pages[label[-1].page].image, label, f.key)
                if zone is not None:
                    zones.append((zone, f))
                readings[f.key] = first[f.key].as_dict()
    second = read_zones(pages, [z for z, _ in zones], timeout)
    for zone, f in zones:
        per_pt = pages[zone.page].image.width / 595.28
        readings[f.key] = _zone_reading(first[f.key], zone, second[f.key], f, per_pt).as_dict()
    summary["readings"] = readings
    summary["parts"] = sorted(parts)
    return summary
