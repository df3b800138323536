"""The [limits] section: what reading one attachment may cost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LimitsConfig:
    attachment_max_bytes: int = 20 * 1024 * 1024
    pdf_timeout_seconds: float = 15
    pdf_memory_mb: int = 512
    pdf_max_pages: int = 20
    # Scanned forms and photographs, read by OCR (Tesseract) in the same sandbox.
    ocr_timeout_seconds: float = 60
    ocr_max_pages: int = 6
    # A value read with less confidence than this (0–100) is not guessed: a person checks it.
    ocr_min_confidence: float = 88
    # CPU seconds one message may take to read, classify and hand over before it is parked.
    message_seconds: float = 30
