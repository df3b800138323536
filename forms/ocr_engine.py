"""Tesseract on one page image: words with their boxes and confidences, turned upright.

Runs in the sandboxed worker. Tesseract is called as a program (`tesseract stdin stdout
… tsv`) with the image on a pipe, so nothing is written to disk; it runs single-threaded
(the pool gives parallelism), with a CPU limit, and dies with the worker. The page is
turned upright in two steps: a quarter-turn found by Tesseract's orientation detection
(OSD, asked only when the page read upright makes no sense), then the small skew of a
copier scan, measured from the slope of the lines of words and taken out of the word
positions and of the image used for the tick boxes.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import os
import re
import resource
import signal
import subprocess
from dataclasses import dataclass
from statistics import median

from PIL import Image

import forms.ocr_library as ocr_library

TESSERACT = "tesseract"
MAX_SKEW_DEGREES = 8.0


class OcrError(Exception):
    """Tesseract could not run or gave no answer; `code` is the finding code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class OcrWord:
    """One word as Tesseract read it, in the page image's pixels."""

    text: str
    left: float
    top: float
    width: float
    height: float
    conf: float  # 0–100
    line: tuple[int, int, int]  # (block, paragraph, line) in Tesseract's layout

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2


def _die_with_parent() -> None:
    """In the Tesseract child: killed with the worker, and bounded in CPU on its own."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    cpu = int(os.environ.get("PCSE_OCR_CPU_SECONDS", "60"))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _run(image: Image.Image, args: list[str], timeout: float) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PPM")  # PGM for a greyscale image: no compression to undo
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            [TESSERACT, "stdin", "stdout", *args],
            input=buffer.getvalue(),
            capture_output=True,
            timeout=timeout,
            env=env,
            preexec_fn=_die_with_parent,
            check=False,
        )
    except FileNotFoundError as exc:
        raise OcrError("ocr_unavailable", "Tesseract is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise OcrError("pdf_timeout", f"OCR took more than {timeout:g} s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        raise OcrError("ocr_failed", f"Tesseract failed: {message[0][:200]}")
    return done.stdout.decode("utf-8", "replace")


def _tsv(image: Image.Image, timeout: float, psm: int) -> str:
    """Tesseract's TSV: from the model kept loaded in this process, else from the program."""
    try:
        tsv = ocr_library.tsv(image, psm, timeout)
    except ocr_library.Unavailable:
        args = ["--psm", str(psm), "-l", "eng", "-c", "tessedit_do_invert=0", "tsv"]
        return _run(image, args, timeout)
    if tsv is None:
        raise OcrError("pdf_timeout", f"OCR took more than {timeout:g} s")
    return tsv


def read_words(image: Image.Image, timeout: float, psm: int = 11) -> list[OcrWord]:
    """Every word on the image, from Tesseract's TSV: sparse text (psm 11) for a page, one
    block of lines (psm 6) for a strip of value zones."""
    words = []
    for row in _tsv(image, timeout, psm).splitlines():
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        words.append(
            OcrWord(
                text=cells[11].strip(),
                left=float(cells[6]),
                top=float(cells[7]),
                width=float(cells[8]),
                height=float(cells[9]),
                conf=max(0.0, float(cells[10])),
                line=(int(cells[2]), int(cells[3]), int(cells[4])),
            )
        )
    return words


_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.M)


def quarter_turn(image: Image.Image, timeout: float) -> int:
    """Degrees to turn the page clockwise to stand it upright (0, 90, 180 or 270), by OSD;
    0 when OSD cannot tell (too little text)."""
    try:
        found = ocr_library.rotation(image, 150)
    except ocr_library.Unavailable:
        return _quarter_turn_by_program(image, timeout)
    return found or 0


def _quarter_turn_by_program(image: Image.Image, timeout: float) -> int:
    try:
        answer = _run(image, ["--psm", "0", "-l", "osd", "--dpi", "150"], timeout)
    except OcrError as exc:
        if exc.code == "ocr_failed":
            return 0
        raise
    found = _ROTATE.search(answer)
    return int(found.group(1)) % 360 if found else 0


def turn(image: Image.Image, clockwise: int) -> Image.Image:
    if clockwise == 90:
        return image.transpose(Image.Transpose.ROTATE_270)
    if clockwise == 180:
        return image.transpose(Image.Transpose.ROTATE_180)
    if clockwise == 270:
        return image.transpose(Image.Transpose.ROTATE_90)
    return image


def skew_degrees(words: list[OcrWord]) -> float:
    """The page's skew: the median slope of Tesseract's lines of words, in degrees
    (positive when lines fall to the right). Lines of one word say nothing and are left out."""
    lines: dict[tuple[int, int, int], list[OcrWord]] = {}
    for word in words:
        if word.conf > 50 and len(word.text) > 1:
            lines.setdefault(word.line, []).append(word)
    slopes = []
    for line in lines.values():
        if len(line) < 2:
            continue
        first = min(line, key=lambda w: w.left)
        last = max(line, key=lambda w: w.left)
        (x0, y0), (x1, y1) = first.centre, last.centre
        if x1 - x0 > 3 * max(first.height, 1):
            slopes.append((y1 - y0) / (x1 - x0))
    if not slopes:
        return 0.0
    angle = math.degrees(math.atan(median(slopes)))
    return angle if abs(angle) <= MAX_SKEW_DEGREES else 0.0


def straighten(image: Image.Image, angle: float) -> Image.Image:
    """The image turned by `angle` degrees anticlockwise about its centre: a page whose
    lines fall to the right by `angle` comes out level."""
    if abs(angle) < 0.05:
        return image
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)


def level_point(x: float, y: float, angle: float, size: tuple[int, int]) -> tuple[float, float]:
    """Where (x, y) lands after straighten(image, angle): the same turn, for one point."""
    cx, cy = size[0] / 2, size[1] / 2
    a = math.radians(angle)
    dx, dy = x - cx, y - cy
    return cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)
