"""Every kind of message the service sends, and the context each template is given.

Besides these keys every template gets `case` (a dict, or None), `recipient_name`
(or None) and `pcse` (the service's own details: inbox address, website, time limits).
"""

from __future__ import annotations

PURPOSES: dict[str, tuple[str, ...]] = {
    # approvers: who has been asked to approve, as the requester may know them; may be empty.
    "acknowledgement": ("summary", "approvers"),
    "needs_info": ("findings", "form_name"),
    "approval_request": (
        "approver_name",
        "asker",
        "capacity",
        "nominees",
        "main_contact",
        "requested_by",
        "token",
        "expires_on",
        "approve_link",
        "reject_link",
    ),
    "approval_reminder": (
        "approver_name",
        "asker",
        "capacity",
        "nominees",
        "main_contact",
        "requested_by",
        "token",
        "expires_on",
        "approve_link",
        "reject_link",
    ),
    # An earlier approval request no longer counts: what it asked about has changed.
    "approval_void": ("approver_name", "reason"),
    "requester_reminder": ("findings",),
    "outcome_completed": ("changes",),
    "outcome_rejected": ("reason",),
    # The workflow also passes `waited_for` (whose answer did not come); the template words
    # it generally without one.
    "outcome_expired": (),
    "outcome_triage": ("reason",),
    # roles: one {"role", "service_title", "assignable_roles"} per admin role given at once.
    "welcome_admin": ("organisation_name", "roles"),
    "welcome_main_contact": ("organisation_name", "assignable_roles"),
    "main_contact_replaced": ("organisation_name", "new_contact_name"),
    "redirect_performer_registration": (),
    "redirect_market_entry": ("market_entry_address",),
    "redirect_existing_admins": ("service_title",),
    "admin_limit_reached": ("service_title", "limit"),
    "attachment_unreadable": ("filename", "problem"),
    "answer_unclear": ("approver_name",),
    # A caseworker's own words to the requester (escaped like any value), signed by them.
    "caseworker_reply": ("message", "caseworker"),
    # A duplicate was merged into this case: the one reference to keep.
    "case_merged": ("duplicate_ref",),
}

# Messages that only make sense about a case: enqueue refuses them without one.
CASE_REQUIRED: frozenset[str] = frozenset(
    {
        "acknowledgement",
        "needs_info",
        "approval_request",
        "approval_reminder",
        "approval_void",
        "requester_reminder",
        "outcome_completed",
        "outcome_rejected",
        "outcome_expired",
        "outcome_triage",
        "answer_unclear",
        "caseworker_reply",
        "case_merged",
    }
)

# The three files that make up one message.
TEMPLATE_SUFFIXES = (".subject", ".txt", ".html")


class UnknownPurpose(ValueError):
    """A programming error: no template exists for this purpose."""


class MissingContext(ValueError):
    """A programming error: the caller left out a key the purpose's templates need."""


def check_context(purpose: str, context: dict, has_case: bool) -> None:
    """Fail early and clearly when a caller's context does not fit the purpose."""
    if purpose not in PURPOSES:
        raise UnknownPurpose(f"no templates for purpose {purpose!r}")
    missing = [key for key in PURPOSES[purpose] if key not in context]
    if missing:
        raise MissingContext(f"{purpose} needs context key(s): {', '.join(missing)}")
    if purpose in CASE_REQUIRED and not has_case:
        raise MissingContext(f"{purpose} is always about a case; pass case=")
