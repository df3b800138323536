"""Who vouches for a sender: the trust model for the mail server that received the message.

Anyone can write any From header; only the receiving mail server's own verdict says who
sent a message. Three profiles, chosen in the configuration:

- ``authserv-id``: the topmost Authentication-Results header(s), written by the receiving
  servers named in ``trusted_authserv_ids``, must say ``dmarc=pass`` for the From domain.
  A trusted id found below a header that is not trusted (written before the message
  reached us, so by anyone), or two trusted headers that disagree, fail the check.
- ``microsoft365`` (NHSmail): exactly one ``X-MS-Exchange-Organization-AuthAs`` header.
  Exchange's header firewall strips ``X-MS-Exchange-Organization-*`` from mail entering
  the tenant, so a sender cannot write it. ``Internal`` vouches for a sender of the
  tenant's own domains; ``Anonymous`` (mail from outside) needs the topmost
  Authentication-Results, which Exchange writes without an authserv-id, to say
  ``dmarc=pass`` for the From domain. Exchange puts its block after MIME-Version when the
  message is read over IMAP, so only the count is relied on, never the position.
- ``none``: nothing is checked (demos and tests, with allow_unauthenticated_senders).

Every function here is pure: header values in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from core.addresses import SenderIdentity
from core.authresults import AuthResults, AuthResultsError, parse

AUTH_AS = "X-MS-Exchange-Organization-AuthAs"


# Headers a message holds at most once (RFC 5322 section 3.6, RFC 2045): what the service
# reads of them, and what a signature covers, must be the same copy.
SINGLE_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)


class Profile(StrEnum):
    AUTHSERV_ID = "authserv-id"
    MICROSOFT365 = "microsoft365"
    NONE = "none"


class Status(StrEnum):
    AUTHENTICATED = "authenticated"  # the receiving server vouched for the From address
    NOT_AUTHENTICATED = "not_authenticated"  # it did not, or its headers were wrong
    UNVERIFIED = "unverified"  # From is not exactly one clean mailbox
    NOT_CHECKED = "not_checked"  # profile "none": nobody was asked


@dataclass(frozen=True)
class SenderPolicy:
    profile: Profile = Profile.NONE
    trusted_authserv_ids: tuple[str, ...] = ()
    # microsoft365: the tenant's own domains, for which AuthAs: Internal vouches.
    internal_domains: tuple[str, ...] = ("nhs.net",)

    def describe(self) -> str:
        if self.profile is Profile.AUTHSERV_ID:
            return f"authserv-id ({', '.join(self.trusted_authserv_ids) or 'none trusted'})"
        if self.profile is Profile.MICROSOFT365:
            return f"microsoft365 (internal domains: {', '.join(self.internal_domains)})"
        return "none (senders are not checked)"


@dataclass(frozen=True)
class SenderVerdict:
    status: Status
    vouched_by: str | None  # the header that vouched, as an operator would look for it
    detail: str  # one sentence: what was found
    # Sent from a mailbox inside the tenant (AuthAs: Internal), not vouched for by DKIM or
    # SPF, which a replay of the sender's mail to someone else can also pass.
    internal: bool = False

    @property
    def trusted(self) -> bool:
        """May this sender answer for themself (reply on their case, answer with a token)?
        Under profile "none" the operator chose to take From at its word."""
        return self.status in (Status.AUTHENTICATED, Status.NOT_CHECKED)

    @property
    def authenticated(self) -> bool:
        """Did the receiving server vouch? Nothing is granted on identity alone without it."""
        return self.status is Status.AUTHENTICATED


def authenticate(
    policy: SenderPolicy,
    sender: SenderIdentity,
    authentication_results: Sequence[str],
    auth_as: Sequence[str],
    on_behalf: Sequence[str] = (),
    repeated: Sequence[str] = (),
    header_break: str | None = None,
) -> SenderVerdict:
    """The verdict on a message's sender; header values are raw, topmost first.

    `on_behalf` holds the addresses of any Sender or Resent-From header: a message sent by
    one mailbox on behalf of another (a delegate answering from a partner's mailbox) is
    not the From address's own word. `repeated` names the SINGLE_HEADERS the message
    holds more than once; `header_break` says why its header section is not all headers.
    """
    if not sender.parsed_cleanly or sender.address is None:
        return SenderVerdict(
            Status.UNVERIFIED, None, sender.problem or "The From header names no sender."
        )
    if repeated:
        return _failed(
            f"The message has more than one {', '.join(repeated)} header. A DKIM signature "
            "vouches for the lowest copy and the service reads the highest, so a copy added "
            "above the signed one passes; which one the sender wrote cannot be told."
        )
    if header_break:
        return _failed(
            f"The message's header section is malformed: {header_break}. The service reads "
            "no headers past that line and a verifier may read on, so the two may not have "
            "checked the same message."
        )
    others = sorted({a for a in on_behalf if a != sender.address})
    if others:
        return _failed(
            f"Sent by {', '.join(others)} on behalf of {sender.address} (a Sender "
            "or Resent-From header): only the From address's own mail counts."
        )
    domain = sender.address.rsplit("@", 1)[1]
    if policy.profile is Profile.AUTHSERV_ID:
        return _by_authserv_id(policy, domain, authentication_results)
    if policy.profile is Profile.MICROSOFT365:
        return _by_microsoft365(policy, domain, authentication_results, auth_as)
    return SenderVerdict(
        Status.NOT_CHECKED, None, "Sender authentication is off in the configuration."
    )


class ReceivedMail(Protocol):
    """What a verdict is made from: the strict From reading and the receiving server's
    headers (intake.mailparse.ParsedMail; the workflow's IncomingMail)."""

    sender_identity: SenderIdentity
    authentication_results: list[str]
    auth_as: list[str]
    on_behalf: list[str]
    repeated_headers: list[str]
    header_break: str | None


def verdict_for(policy: SenderPolicy, mail: ReceivedMail) -> SenderVerdict:
    """The verdict on a received message's sender under `policy`."""
    return authenticate(
        policy,
        mail.sender_identity,
        mail.authentication_results,
        mail.auth_as,
        mail.on_behalf,
        mail.repeated_headers,
        mail.header_break,
    )


def _failed(detail: str) -> SenderVerdict:
    return SenderVerdict(Status.NOT_AUTHENTICATED, None, detail)


def _by_authserv_id(policy: SenderPolicy, domain: str, headers: Sequence[str]) -> SenderVerdict:
    trusted = {t.strip().lower() for t in policy.trusted_authserv_ids if t.strip()}
    top: list[AuthResults] = []
    for index, raw in enumerate(headers):
        try:
            parsed = parse(raw)
        except AuthResultsError as exc:
            claimed = (raw.split(";", 1)[0].split() or [""])[0].lower()
            if claimed in trusted:
                return _failed(
                    f"The Authentication-Results header from {claimed} could not be read ({exc})."
                )
            continue
        if parsed.authserv_id in trusted:
            if len(top) < index:
                return _failed(
                    f"A header claiming the trusted authserv-id "
                    f"{parsed.authserv_id} stands below one that is not trusted: "
                    "it was written before the message reached us."
                )
            top.append(parsed)
    if not top:
        return _failed(
            "No Authentication-Results header from a trusted authserv-id stands "
            "at the top of the message."
        )
    return _dmarc_agrees(top, domain, ", ".join(sorted({t.authserv_id or "" for t in top})))


def _dmarc_agrees(headers: list[AuthResults], domain: str, who: str) -> SenderVerdict:
    """Every DMARC result in the trusted headers passes for the From domain, and there is one."""
    dmarcs = [r for h in headers for r in h.of("dmarc")]
    if not dmarcs:
        return _failed(f"{who} reported no DMARC result.")
    for result in dmarcs:
        header_from = (result.prop("header.from") or "").lower()
        if result.result != "pass" or header_from != domain:
            return _failed(
                f"{who}: dmarc={result.result} header.from={header_from or '?'}; "
                f"the From domain is {domain}."
            )
    # Header by header, not by count: two results in one header must not stand in for
    # another header that reports none.
    if any(len(h.of("dmarc")) != 1 for h in headers):
        return _failed(
            f"The trusted headers from {who} disagree: each must report one DMARC result."
        )
    return SenderVerdict(
        Status.AUTHENTICATED,
        f"Authentication-Results: {who}",
        f"{who}: dmarc=pass header.from={domain}.",
    )


def _by_microsoft365(
    policy: SenderPolicy, domain: str, headers: Sequence[str], auth_as: Sequence[str]
) -> SenderVerdict:
    if len(auth_as) != 1:
        return _failed(
            f"The message carries {len(auth_as)} {AUTH_AS} headers; Exchange "
            "Online writes exactly one."
        )
    value = " ".join(auth_as[0].split()).lower()
    if value == "internal":
        internal = {d.lower() for d in policy.internal_domains}
        if domain in internal:
            return SenderVerdict(
                Status.AUTHENTICATED,
                f"{AUTH_AS}: Internal",
                f"Sent from inside the tenant by a mailbox of {domain}.",
                internal=True,
            )
        return _failed(
            f"{AUTH_AS} is Internal, but {domain} is not one of the tenant's "
            "domains in the configuration."
        )
    if value != "anonymous":
        return _failed(f"{AUTH_AS} is {auth_as[0][:40]!r}, neither Internal nor Anonymous.")
    if not headers:
        return _failed("Mail from outside the tenant with no Authentication-Results header.")
    try:
        topmost = parse(headers[0])
    except AuthResultsError as exc:
        return _failed(f"The topmost Authentication-Results header could not be read ({exc}).")
    if topmost.authserv_id is not None:
        return _failed(
            f"The topmost Authentication-Results header names {topmost.authserv_id}"
            "; Exchange Online writes its own without an authserv-id."
        )
    verdict = _dmarc_agrees([topmost], domain, "Exchange Online")
    if not verdict.authenticated:
        return verdict
    return SenderVerdict(
        Status.AUTHENTICATED,
        f"{AUTH_AS}: Anonymous and Authentication-Results (dmarc=pass)",
        f"Mail from outside the tenant; Exchange Online: dmarc=pass header.from={domain}.",
    )
