"""Header safety and threading: every value that reaches a header passes through here.

Names, addresses and Message-IDs come from senders and forms. They are stripped of
CR/LF and other control characters (no header injection), display names are encoded
by the email package (email.headerregistry.Address), and Message-IDs are kept only
when they look like one.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import make_msgid

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")
_MSGID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")
_BARE_MSGID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_DOT_ATOM_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
# Most Message-IDs kept in References; RFC 5322 suggests trimming long chains.
MAX_REFERENCES = 20
# A msg-id is written whole, never folded or encoded: one longer than this would not fit
# on a header line of 998 characters.
MAX_MSGID = 900
_PRINTABLE = re.compile(r"[!-~]+")


def one_line(value: str | None, max_length: int = 200) -> str:
    """A single line of text with no control characters, whitespace collapsed, cut to length."""
    if not value:
        return ""
    cleaned = " ".join(_CONTROLS.sub(" ", value).split())
    if len(cleaned) > max_length:
        cleaned = cleaned[: max_length - 1].rstrip() + "…"
    return cleaned


def plain_address_shape(value: str) -> bool:
    """The cheap checks: one @, no spaces or controls, ASCII, a dotted domain, short enough."""
    if not value or _CONTROLS.search(value) or not value.isascii():
        return False  # headers and SMTP here carry ASCII addresses only (no SMTPUTF8)
    if value.count("@") != 1 or any(c.isspace() for c in value) or len(value) > 254:
        return False
    local, domain = value.split("@")
    return bool(local) and "." in domain.strip(".")


def is_dot_atom_address(value: str) -> bool:
    """local@domain, each dot-separated atext (RFC 5322): an address that needs no quotes
    and that the email package and smtplib read back exactly as it is. Not one holding
    "=?": atext allows it, but the email package decodes what follows as an encoded word
    (`=?utf-8?q?ours=40nhs.net?=@evil.example` reads back as another address)."""
    return "=?" not in value and _DOT_ATOM_ADDRESS.fullmatch(value) is not None


def clean_address(value: str | None) -> str | None:
    """The address in lower case, or None when it is not one plain, valid address."""
    if not value or _CONTROLS.search(value):
        return None
    candidate = value.strip().lower()
    if not plain_address_shape(candidate):
        return None
    if is_dot_atom_address(candidate):
        return candidate  # read back by the email package exactly as it is (see above)
    try:
        parsed = Address(addr_spec=candidate)
    except (HeaderParseError, ValueError, IndexError):
        return None
    return candidate if parsed.addr_spec == candidate else None


def mailbox(name: str | None, address: str) -> Address:
    """A header address; the display name is cleaned here and encoded by the email package."""
    return Address(display_name=one_line(name), addr_spec=address)


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def new_message_id(from_address: str) -> str:
    """A fresh Message-ID in our own domain, fixed when the outbox row is written."""
    return make_msgid(domain=domain_of(from_address))


def message_ids(value: str | None) -> list[str]:
    """The well-formed Message-IDs in a header value, in order, each with its angle brackets."""
    if not value:
        return []
    value = _CONTROLS.sub(" ", value)
    found = [f"<{m}>" for m in _MSGID.findall(value)]
    if not found and _BARE_MSGID.match(value.strip()):
        found = [f"<{value.strip()}>"]
    # One holding "=?" would be decoded as an encoded word when written into our headers;
    # one not of printable ASCII, or too long for a line, cannot be written as a msg-id.
    return [
        msgid
        for msgid in found
        if "=?" not in msgid and len(msgid) <= MAX_MSGID and _PRINTABLE.fullmatch(msgid)
    ]


def references_chain(ancestors: list[str], parent: str) -> str:
    """RFC 5322 References: the ancestry then the parent, without repeats, trimmed.

    When trimming, the first (the thread's root) is kept with the most recent ones.
    """
    chain: list[str] = []
    for msgid in [*ancestors, parent]:
        if msgid not in chain:
            chain.append(msgid)
        else:
            chain.remove(msgid)
            chain.append(msgid)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return " ".join(chain)


def with_case_ref(subject: str, ref: str | None) -> str:
    """The subject, starting with "[<ref>]" unless it already carries it."""
    subject = one_line(subject, 300)
    if not ref:
        return subject
    tag = f"[{ref}]"
    if tag in subject:
        return subject
    return one_line(f"{tag} {subject}", 300)
