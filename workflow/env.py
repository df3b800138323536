"""What the workflow needs from its surroundings, built by the service from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from forms.sandbox import PdfLimits
from workflow.clock import Clock, SystemClock


@dataclass
class WorkflowEnv:
    clock: Clock = field(default_factory=SystemClock)
    reminder_after_days: float = 3
    expire_after_days: float = 10
    # Authentication-Results authserv-ids whose dmarc=pass verdict we trust; empty: no check.
    trusted_authserv_ids: tuple[str, ...] = ()
    from_address: str = "pcse.portalenquiries@nhs.net"
    # Addresses that are ours: never answered automatically (loop protection).
    our_addresses: frozenset[str] = frozenset({"pcse.portalenquiries@nhs.net"})
    templates_dir: str | None = None
    max_replies_per_hour: int = 5
    # What reading one PDF attachment may cost ([limits] pdf_*); None: the reader's defaults.
    pdf_limits: PdfLimits | None = None
