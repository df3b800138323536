"""One strict reading of address headers, for the ledger, the workflow, the outbox and pages.

Who sent a message decides what it may do, so From is read strictly: the raw header is
split into mailboxes first and encoded words are decoded only inside a display name,
afterwards. A From that does not come out as exactly one clean mailbox (two mailboxes, a
parser defect, an `@` or a line break in the decoded display name, an address of an odd
shape, a header too long to be real) leaves the sender *unverified*: the message is kept
and reaches a person, and it can never approve or answer for anyone.

Everything here runs in time linear in the input: headers are capped before any parser
sees them, and the one regular expression on the fast path uses possessive quantifiers
over disjoint character classes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import errors as email_errors
from email import policy

# A real From header is a line or two; the policy parser is quadratic on hostile input,
# so nothing longer reaches it.
MAX_FROM_CHARS = 1000
# To and Cc: how much of each header, and how many headers, are read for addresses.
MAX_RECIPIENT_CHARS = 8000
MAX_RECIPIENT_HEADERS = 20
MAX_RECIPIENTS = 500
MAX_DISPLAY_NAME = 200

# Dot-atom addresses only: no quoted local parts, no address literals.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++"
ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*+@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++")
# `Plain Name <addr>`, `"Quoted Name" <addr>` or a bare `addr`: most mail, read without the
# policy parser. The name classes exclude `@`, `=`, `,`, quotes and brackets, so a match
# is unambiguous and anything unusual takes the full parser.
_FAST_FROM = re.compile(
    r"[ \t]*+(?:"
    r"(?P<plain>[A-Za-z0-9 \t.'_-]*+)<(?P<a1>[^<>\s@\"(),;:\\\[\]]++@[^<>\s@\"(),;:\\\[\]]++)>"
    # Printable ASCII only: control characters, lookalike at signs and direction marks
    # are each a reason to leave the sender unverified, which the full reading gives.
    r"|\"(?P<quoted>[ !#-<>?A-\[\]-~]*+)\"[ \t]*+"
    r"<(?P<a2>[^<>\s@\"(),;:\\\[\]]++@[^<>\s@\"(),;:\\\[\]]++)>"
    r"|(?P<a3>[^<>\s@\"(),;:\\\[\]]++@[^<>\s@\"(),;:\\\[\]]++)"
    r")[ \t]*+"
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Defects the policy parser reports for syntax that is old but unambiguous ("Dr. A. Patel").
_HARMLESS_DEFECTS = (email_errors.ObsoleteHeaderDefect,)


@dataclass(frozen=True)
class Mailbox:
    display_name: str  # decoded, after the header was split
    address: str  # lower-cased dot-atom addr-spec


@dataclass(frozen=True)
class SenderIdentity:
    """What the From header says, read strictly.

    `address` is the one mailbox's address when the header holds exactly one (even if
    something else about it was wrong); `problem` says why the sender is unverified, and
    is None only for a header that parsed cleanly to exactly one mailbox.
    """

    address: str | None
    display_name: str
    problem: str | None
    mailboxes: tuple[Mailbox, ...] = ()

    @property
    def parsed_cleanly(self) -> bool:
        return self.problem is None and self.address is not None

    @classmethod
    def of(cls, mailboxes: Sequence[Mailbox], problem: str | None = None) -> SenderIdentity:
        """From already-split mailboxes (a message built in code, or a test's)."""
        if len(mailboxes) != 1:
            return cls(
                None,
                "",
                problem
                or f"The From header holds {len(mailboxes)} mailboxes; exactly one is needed.",
                tuple(mailboxes),
            )
        box = mailboxes[0]
        return cls(box.address, box.display_name, problem, tuple(mailboxes))


def unverified(problem: str) -> SenderIdentity:
    return SenderIdentity(None, "", problem)


def clean_address(value: str) -> str | None:
    """The address lower-cased if it is a plain dot-atom address of a sane length."""
    value = value.strip()
    if len(value) > 254 or not ADDRESS.fullmatch(value):
        return None
    return value.lower()


def mailbox_key(address: str) -> str:
    """The mailbox an address reaches, for telling whether two addresses are one person's:
    lower-cased, with any "+tag" of the local part left out. Exchange Online, like most mail
    systems, delivers jane.smith+pcn@nhs.net to jane.smith@nhs.net, so a nominee written
    that way is the approver themself. Other aliases of one mailbox cannot be told from the
    address alone."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.split('+', 1)[0]}@{domain}"


def is_own_address(address: str, ours: frozenset[str] | set[str]) -> bool:
    """True for our addresses, plus-tagged variants included (pcse.x+apv-…@nhs.net)."""
    return address.lower() in ours or mailbox_key(address) in ours


def parse_from(raw_values: Sequence[str]) -> SenderIdentity:
    """The sender named by the raw From header(s), strictly."""
    if not raw_values:
        return unverified("The message has no From header.")
    if len(raw_values) > 1:
        # Read for display only, and each under the same cap as a single From.
        found = [
            m
            for raw in raw_values[:MAX_RECIPIENT_HEADERS]
            if len(raw) <= MAX_FROM_CHARS
            for m in _mailboxes(raw)[0]
        ]
        return SenderIdentity(
            None, "", f"The message has {len(raw_values)} From headers.", tuple(found)
        )
    raw = raw_values[0]
    if len(raw) > MAX_FROM_CHARS:
        return unverified(
            f"The From header is {len(raw)} characters long, over the "
            f"{MAX_FROM_CHARS} a real one needs."
        )
    mailboxes, problem = _mailboxes(raw)
    return SenderIdentity.of(mailboxes, problem)


def _mailboxes(raw: str) -> tuple[list[Mailbox], str | None]:
    """The mailboxes in one raw address header, and the first thing wrong with it."""
    value = _FOLD.sub("", raw)
    fast = _FAST_FROM.fullmatch(value)
    if fast:
        return _fast_mailbox(fast)
    control = None
    if _CONTROL.search(value):
        # Read on without them to find the one address (for the acknowledgement), but the
        # sender stays unverified.
        control = "The From header holds a control character or a bare line break."
        value = _CONTROL.sub(" ", value)
    try:
        header = policy.default.header_factory("from", value)
        parsed = [(str(a.display_name or ""), str(a.addr_spec or "")) for a in header.addresses]
        defects = [d for d in header.defects if not isinstance(d, _HARMLESS_DEFECTS)]
    except Exception as exc:  # the policy parser raises many kinds on hostile input
        return [], f"The From header could not be parsed ({type(exc).__name__})."
    mailboxes: list[Mailbox] = []
    problem = control or (
        f"The From header is malformed ({type(defects[0]).__name__})." if defects else None
    )
    for display, addr_spec in parsed:
        address = clean_address(addr_spec)
        if address is None:
            problem = problem or f"The From address {addr_spec[:80]!r} is not a plain address."
            continue
        name, name_problem = _display_name(display)
        problem = problem or name_problem
        mailboxes.append(Mailbox(name, address))
    if len(mailboxes) == 1 and problem is None:
        problem = _plain_form_problem(value, mailboxes[0].address)
    return mailboxes, problem


def _plain_form_problem(value: str, address: str) -> str | None:
    """Why a header the policy parser read as one mailbox is not written plainly: RFC 5322
    allows comments inside an address, source routes and groups, which read the same to
    this parser but not necessarily to the mail server that checked the sender."""
    tokens, bare_colon = _scan(value)
    if [clean_address(t) for t in tokens] != [address]:
        return "The From address is not written plainly (a comment, route or quoting in it)."
    if bare_colon:
        return "The From header is written as a group."
    return None


def _fast_mailbox(match: re.Match[str]) -> tuple[list[Mailbox], str | None]:
    address = clean_address(match.group("a1") or match.group("a2") or match.group("a3"))
    if address is None:
        return [], "The From address is not a plain address."
    name = match.group("plain") if match.group("a1") else match.group("quoted") or ""
    return [Mailbox(" ".join(name.split())[:MAX_DISPLAY_NAME], address)], None


# Characters that draw an address or reorder text in a display name without being one:
# fullwidth and small at signs and angle brackets.
_LOOKALIKES = frozenset("\uff20\ufe6b\uff1c\uff1e\ufe64\ufe65")


def _display_name(decoded: str) -> tuple[str, str | None]:
    """The display name as shown to people, and why it makes the sender unverified."""
    # Shown without its control characters: NUL, which PostgreSQL will not store, above all.
    name = " ".join(_CONTROL.sub(" ", decoded).split())[:MAX_DISPLAY_NAME]
    if "@" in decoded:
        return name, "The From display name holds an email address; only the address counts."
    if _CONTROL.search(decoded) or "\r" in decoded or "\n" in decoded:
        return name, "The From display name holds a control character."
    if any(c in _LOOKALIKES or unicodedata.category(c) == "Cf" for c in decoded):
        return name, (
            "The From display name holds characters that imitate an address or reorder text."
        )
    return name, None


# --------------------------------------------------------------------------- recipients


_LIST_SEPARATORS = frozenset(",;")


def recipient_addresses(raw_values: Iterable[str]) -> tuple[list[str], list[str]]:
    """Every plain address in To/Cc headers, in order, and what was cut (as findings).

    A linear scan that skips quoted strings and comments, so a display name that looks
    like an address is never read as one; nothing is decoded.
    """
    found: list[str] = []
    cut: list[str] = []
    values = list(raw_values)
    if len(values) > MAX_RECIPIENT_HEADERS:
        cut.append(
            f"{len(values)} To/Cc headers; only the first {MAX_RECIPIENT_HEADERS} were read."
        )
        values = values[:MAX_RECIPIENT_HEADERS]
    for raw in values:
        if len(raw) > MAX_RECIPIENT_CHARS:
            cut.append(
                f"A To/Cc header of {len(raw)} characters was read only to {MAX_RECIPIENT_CHARS}."
            )
            raw = raw[:MAX_RECIPIENT_CHARS]
        for token in _address_tokens(raw):
            address = clean_address(token)
            if address is not None and address not in found:
                found.append(address)
        if len(found) >= MAX_RECIPIENTS:
            cut.append(f"More than {MAX_RECIPIENTS} recipients; the rest were not read.")
            return found[:MAX_RECIPIENTS], cut
    return found, cut


def _address_tokens(raw: str) -> list[str]:
    """Candidate addr-specs: what stands in <…>, else bare words holding `@`, per element."""
    return _scan(raw)[0]


def _scan(raw: str) -> tuple[list[str], bool]:
    """The candidate addr-specs of an address header, and whether a ':' stands outside
    quoted strings, comments and <…> (group syntax or a source route)."""
    tokens: list[str] = []
    bare_colon = False
    element: list[str] = []  # bare words of the current list element
    bracketed: list[str] = []
    word: list[str] = []
    angle: list[str] | None = None
    quoted = escaped = False
    depth = 0

    def end_word() -> None:
        if word:
            element.append("".join(word))
            word.clear()

    def end_element() -> None:
        end_word()
        if bracketed:
            tokens.extend(bracketed)
        else:
            tokens.extend(w for w in element if "@" in w)
        element.clear()
        bracketed.clear()

    for char in raw:
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif depth:
            if char == "\\":
                escaped = True
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
        elif angle is not None:
            if char == ">":
                bracketed.append("".join(angle))
                angle = None
            else:
                angle.append(char)
        elif char == '"':
            end_word()
            quoted = True
        elif char == "(":
            end_word()
            depth = 1
        elif char == "<":
            end_word()
            angle = []
        elif char in _LIST_SEPARATORS:
            end_element()
        elif char.isspace():
            end_word()
        else:
            bare_colon = bare_colon or char == ":"
            word.append(char)
    end_element()
    return tokens, bare_colon
