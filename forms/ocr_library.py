"""Tesseract kept loaded in the sandboxed worker, through tesserocr (the library the
`tesseract` program is built on, with its own copy of Tesseract in the wheel).

Starting the program costs a process and a model load for every run, about a fifth of a
page's reading, and a form takes several runs; the worker is long-lived, so it loads the
English model once, on its first scan, and keeps it for every later one (the orientation
model only when a page first needs it). The worker's own limits apply: its memory cap
holds the models, it writes no files, and a run past its time is stopped by Tesseract's
own deadline. Where tesserocr or the models cannot be had, `available()` says so and
forms/ocr_engine.py runs the program instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

# Where Debian's tesseract-ocr-eng and tesseract-ocr-osd put the models (the wheel looks in
# the working directory unless told).
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)


class Unavailable(Exception):
    """tesserocr or a model is missing: read with the program instead."""


class _Engines:
    """One API per model, made on first use and kept for the worker's life."""

    def __init__(self) -> None:
        self.apis: dict[str, Any] = {}
        self.broken: str | None = None

    def get(self, lang: str) -> Any:
        if self.broken:
            raise Unavailable(self.broken)
        if lang not in self.apis:
            try:
                self.apis[lang] = _start(lang)
            except Unavailable as exc:
                self.broken = str(exc)
                raise
        return self.apis[lang]


def tessdata() -> str | None:
    """The folder holding eng.traineddata: $TESSDATA_PREFIX, else Debian's."""
    wanted = [os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_DIRS]
    for folder in wanted:
        if folder and (Path(folder) / "eng.traineddata").is_file():
            return folder.rstrip("/") + "/"
    return None


def _start(lang: str) -> Any:
    try:
        import tesserocr  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise Unavailable("tesserocr is not installed") from exc
    path = tessdata()
    if path is None:
        raise Unavailable("no Tesseract models (eng.traineddata) found")
    psm = tesserocr.PSM.OSD_ONLY if lang == "osd" else tesserocr.PSM.SPARSE_TEXT
    try:
        api = tesserocr.PyTessBaseAPI(path=path, lang=lang, psm=psm)
    except RuntimeError as exc:
        raise Unavailable(f"Tesseract could not load the {lang} model") from exc
    api.SetVariable("tessedit_do_invert", "0")
    return api


ENGINES = _Engines()


def _set_image(api: Any, image: Image.Image) -> bytes:
    """Hand the greyscale pixels over as they are (no encoding, no resolution: Tesseract
    estimates it from the text, as the program does with an image on a pipe). The bytes
    must outlive the reading: Tesseract does not copy them."""
    grey = image if image.mode == "L" else image.convert("L")
    pixels = grey.tobytes()
    api.SetImageBytes(pixels, grey.width, grey.height, 1, grey.width)
    return pixels


def tsv(image: Image.Image, psm: int, timeout: float) -> str | None:
    """Tesseract's TSV for the image read with page segmentation `psm` (the program's
    columns, without its header line), or None when the reading ran out of time."""
    api = ENGINES.get("eng")
    api.SetPageSegMode(psm)
    pixels = _set_image(api, image)
    done = api.Recognize(max(1, int(timeout * 1000)))
    text = api.GetTSVText(0) if done else None
    api.Clear()
    del pixels
    return None if text is None else str(text)


def rotation(image: Image.Image, dpi: int) -> int | None:
    """Degrees to turn the page clockwise to stand it upright, by orientation detection;
    None when it cannot tell."""
    api = ENGINES.get("osd")
    pixels = _set_image(api, image)
    api.SetSourceResolution(dpi)
    found = api.DetectOrientationScript()
    api.Clear()
    del pixels
    if not found:
        return None
    # orient_deg is how far the text is turned (anticlockwise); the turn back is its opposite.
    return (360 - int(found["orient_deg"])) % 360
