"""Bar charts as geometry for server-drawn SVG (templates/report_chart.html draws them).

No script runs in the browser: the page's SVG is complete as sent, and each chart has a
table beside it holding the same figures for anyone who cannot see the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 480
ROW_HEIGHT = 28
ROW_GAP = 8
LABEL_WIDTH = 190  # horizontal charts: room for the row's label on the left
VALUE_ROOM = 70  # and for the value written after the bar
COLUMN_AREA_HEIGHT = 180
COLUMN_LABEL_ROOM = 36


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as written beside the bar
    x: float
    y: float
    width: float
    height: float
    tone: str = "primary"  # a CSS class suffix: primary or secondary


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    orientation: str  # "horizontal" (rows) or "vertical" (columns)
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    summary: str = ""

    @property
    def empty(self) -> bool:
        return not self.bars


@dataclass(frozen=True)
class Row:
    label: str
    value: float
    text: str
    tone: str = "primary"


def _scale(values: Sequence[float], room: float) -> float:
    top = max(values, default=0.0)
    return room / top if top > 0 else 0.0


def horizontal(chart_id: str, title: str, rows: Sequence[Row], summary: str = "") -> Chart:
    """One bar per row, longest for the largest value, labelled on the left."""
    room = WIDTH - LABEL_WIDTH - VALUE_ROOM
    per = _scale([r.value for r in rows], room)
    bars = [
        Bar(
            label=row.label,
            value=row.value,
            text=row.text,
            x=LABEL_WIDTH,
            y=n * (ROW_HEIGHT + ROW_GAP),
            width=max(row.value * per, 1.0 if row.value > 0 else 0.0),
            height=ROW_HEIGHT,
            tone=row.tone,
        )
        for n, row in enumerate(rows)
    ]
    height = max(len(rows) * (ROW_HEIGHT + ROW_GAP) - ROW_GAP, ROW_HEIGHT)
    return Chart(chart_id, title, "horizontal", WIDTH, height, bars, summary)


def vertical(
    chart_id: str, title: str, rows: Sequence[Row], summary: str = "", width: int = WIDTH * 2
) -> Chart:
    """One column per row (e.g. per week), tallest for the largest value."""
    per = _scale([r.value for r in rows], COLUMN_AREA_HEIGHT - 16)
    slot = width / max(len(rows), 1)
    column = max(slot * 0.6, 2.0)
    bars = []
    for n, row in enumerate(rows):
        height = row.value * per
        bars.append(
            Bar(
                label=row.label,
                value=row.value,
                text=row.text,
                x=n * slot + (slot - column) / 2,
                y=COLUMN_AREA_HEIGHT - height,
                width=column,
                height=height,
                tone=row.tone,
            )
        )
    return Chart(
        chart_id, title, "vertical", width, COLUMN_AREA_HEIGHT + COLUMN_LABEL_ROOM, bars, summary
    )
