"""The [limits] section: what reading one attachment may cost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LimitsConfig:
    attachment_max_bytes: int = 20 * 1024 * 1024
    pdf_timeout_seconds: float = 15
    pdf_memory_mb: int = 512
    pdf_max_pages: int = 20
    # CPU seconds one message may take to read, classify and hand over before it is parked.
    message_seconds: float = 30
