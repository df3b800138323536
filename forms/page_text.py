"""Read a flattened or printed-to-PDF form from the words on its pages, located by their labels.

The extractor gives each page's words with their positions. A section starts at its heading
and runs to the next heading found; inside it, a field's label starts a line and its value is
what lies to the right of the label on the same row. A checkbox counts as ticked when any
mark (a letter, a tick glyph or a drawn tick) lies in that place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from forms.definitions import FieldDef, FormDefinition

LINE_TOLERANCE = 2.5  # words whose tops differ by less than this share a line
ROW_SLACK = 6.0  # a value may sit this far above or below its label
LABEL_MATCH_WORDS = 6  # long labels are matched on their first words
EMPTY_BOX_GLYPHS = frozenset({"☐", "□", "o", "◻", "❏"})
DINGBAT_FONTS = re.compile(r"dingbat|wingding|symbol", re.I)
_EDGE_PUNCTUATION = "()[]{}:;,.!?*\"'‘’“”–—-_"


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    font: str
    page: int

    @property
    def token(self) -> str:
        return normalise_token(self.text)


@dataclass(frozen=True)
class Place:
    """Where something starts on the pages, for ordering: page, then top."""

    page: int
    top: float
    line: int  # index into the line list


def normalise_token(text: str) -> str:
    return text.replace("’", "'").strip(_EDGE_PUNCTUATION).casefold()


def tokens(text: str) -> list[str]:
    return [t for t in (normalise_token(w) for w in text.split()) if t]


def build_words(pages: list[list[list[Any]]]) -> list[Word]:
    return [
        Word(str(w[0]), float(w[1]), float(w[2]), float(w[3]), float(w[4]), str(w[5]), number)
        for number, page in enumerate(pages)
        for w in page
    ]


def build_lines(words: list[Word]) -> list[list[Word]]:
    """Words grouped into lines, in reading order (page, top, left to right)."""
    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (w.page, w.top, w.x0)):
        last = lines[-1] if lines else None
        if last and last[0].page == word.page and abs(last[0].top - word.top) < LINE_TOLERANCE:
            last.append(word)
        else:
            lines.append([word])
    for line in lines:
        line.sort(key=lambda w: w.x0)
    return lines


def _line_starts_with(line: list[Word], wanted: list[str]) -> list[Word] | None:
    """The words of `line` that spell `wanted` at its start (punctuation-only words skipped)."""
    matched: list[Word] = []
    index = 0
    for word in line:
        token = word.token
        if not token:
            continue
        if index == len(wanted):
            break
        if token != wanted[index]:
            return None
        matched.append(word)
        index += 1
    return matched if index == len(wanted) else None


def find_heading(lines: list[list[Word]], heading: str) -> Place | None:
    wanted = tokens(heading)
    for number, line in enumerate(lines):
        if wanted and _line_starts_with(line, wanted):
            return Place(line[0].page, line[0].top, number)
    return None


def full_text(words: list[Word]) -> str:
    return " ".join(w.text for w in words)


@dataclass
class PageForm:
    """A form's sections and fields as found on the pages."""

    lines: list[list[Word]]
    words: list[Word]
    marks: list[tuple[int, float, float, float, float]]  # page, x0, x1, top, bottom

    def sections(self, definition: FormDefinition) -> dict[str, tuple[int, int]]:
        """Each found section's range of lines: from its heading to the next heading found."""
        found = []
        for section in definition.sections:
            place = find_heading(self.lines, section.heading)
            if place is not None:
                found.append((place.line, section.id))
        found.sort()
        ranges = {}
        for index, (start, section_id) in enumerate(found):
            end = found[index + 1][0] if index + 1 < len(found) else len(self.lines)
            ranges[section_id] = (start + 1, end)
        return ranges

    def _label(self, field: FieldDef, span: tuple[int, int]) -> list[Word] | None:
        wanted = tokens(field.label)[:LABEL_MATCH_WORDS]
        for line in self.lines[span[0] : span[1]]:
            matched = _line_starts_with(line, wanted)
            if matched:
                return matched
        return None

    def _row_words(self, label: list[Word]) -> list[Word]:
        first, last = label[0], label[-1]
        low, high = first.top - ROW_SLACK, last.bottom + ROW_SLACK
        return sorted(
            (
                w
                for w in self.words
                if w.page == last.page
                and w.x0 >= last.x1 + 1
                and low <= (w.top + w.bottom) / 2 <= high
            ),
            key=lambda w: w.x0,
        )

    def _row_has_mark(self, label: list[Word]) -> bool:
        first, last = label[0], label[-1]
        low, high = first.top - ROW_SLACK, last.bottom + ROW_SLACK
        return any(
            page == last.page and x0 >= last.x1 and low <= (top + bottom) / 2 <= high
            for page, x0, _x1, top, bottom in self.marks
        )

    def value(self, field: FieldDef, span: tuple[int, int]) -> str | bool | None:
        """The field's value, or None when its label is not on the page."""
        label = self._label(field, span)
        if label is None:
            return None
        row = self._row_words(label)
        if field.type == "checkbox":
            ticked = [
                w
                for w in row
                if DINGBAT_FONTS.search(w.font) or w.text.strip() not in EMPTY_BOX_GLYPHS
            ]
            return bool(ticked) or self._row_has_mark(label)
        return " ".join(w.text for w in row)


def page_form(extracted: dict[str, Any]) -> PageForm:
    words = build_words(extracted.get("words") or [])
    marks = [
        (number, float(mark[0]), float(mark[1]), float(mark[2]), float(mark[3]))
        for number, page in enumerate(extracted.get("marks") or [])
        for mark in page
    ]
    return PageForm(build_lines(words), words, marks)


def read_fields(definition: FormDefinition, form: PageForm) -> tuple[dict[str, Any], set[str]]:
    """The raw value of every field whose label was found, and the parts whose headings were."""
    spans = form.sections(definition)
    values: dict[str, Any] = {}
    parts = set()
    for section in definition.sections:
        span = spans.get(section.id)
        if span is None:
            continue
        parts.add(section.part)
        for field in section.fields:
            values[field.key] = form.value(field, span)
    return values, parts
