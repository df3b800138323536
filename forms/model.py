"""What a reader returns: the request it found, its fields, and its findings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem with what was sent, in words a practice manager understands.

    `code` is stable and machine-readable (e.g. "missing_field", "invalid_ods_code",
    "part_missing", "scanned_form", "pdf_encrypted", "pdf_unreadable"); `field` is the
    key of the field concerned, or None for the document as a whole.
    """

    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParsedRequest:
    """A request read from a form or an email body.

    `kind` is one of core.states.CaseKind's values, or None when the reader could
    not tell. `fields` holds normalised values keyed by the form definition's keys;
    `source` says where they came from ("acroform", "page_text", "email_body", "scan").
    """

    kind: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    source: str = "email_body"
    form_version: str | None = None

    @property
    def complete(self) -> bool:
        return not self.findings

    def findings_as_dicts(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.findings]
