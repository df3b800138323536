"""What the workflow needs from its surroundings, built by the service from the configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from core.clock import Clock, SystemClock
from core.senderauth import SenderPolicy
from forms.sandbox import PdfLimits
from workflow.targets import TargetsConfig


@dataclass
class WorkflowEnv:
    clock: Clock = field(default_factory=SystemClock)
    reminder_after_days: float = 3
    expire_after_days: float = 10
    # Who vouches for a sender (core.senderauth). The default, profile "none", takes From
    # at its word: the service refuses to run with it unless the config allows it.
    sender_policy: SenderPolicy = field(default_factory=SenderPolicy)
    from_address: str = "pcse.portalenquiries@nhs.net"
    # The display name our emails carry ([smtp] from_name): an attribution may name us by it
    # alone ("PCSE Online user management wrote:").
    from_name: str = "PCSE Online user management"
    # Addresses that are ours: never answered automatically (loop protection).
    our_addresses: frozenset[str] = frozenset({"pcse.portalenquiries@nhs.net"})
    templates_dir: str | None = None
    max_replies_per_hour: int = 5
    # What reading one PDF attachment may cost ([limits] pdf_*); None: the reader's defaults.
    pdf_limits: PdfLimits | None = None
    # Is this person (an address or a name) an active supervisor? Supervisors alone reopen
    # expired cases. The accounts are the caseworker package's (caseworker.accounts
    # .is_supervisor, wired by service.context); with nothing wired, nobody is.
    is_supervisor: Callable[[Session, str], bool] = field(default=lambda _session, _by: False)
    # Target times ([targets]): the queue's overdue markers and filter.
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    # The caseworker account a name or address stands for (caseworker.accounts.account_of),
    # or None: an approval with open findings needs two different accounts.
    account_of: Callable[[Session, str], str | None] = field(
        default=lambda _session, by: by.strip().casefold() or None
    )
