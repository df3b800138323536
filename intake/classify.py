"""What kind of message is this? A pure function of the parsed mail and what the database knows.

Order matters: our own mail looping back, duplicates, bounces and automatic replies are
settled before anything that would start or advance a case, because an out-of-office
reply to an approval request carries the request's token and case reference too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, bindparam, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from core.addresses import is_own_address
from core.inbound import Classification, MessageKind
from core.patterns import CASE_REF_RE, TOKEN_RE
from core.rowwrites import pending_may_wait
from intake.mailparse import ParsedMail
from intake.models import InboundMessage

TOKEN = TOKEN_RE
CASE_REF = CASE_REF_RE

# Only with the colon that automatic replies put after the marker, so that a person's
# "Out of office cover for our practice" is still read as a request.
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:"
    r"automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"out of (?:the )?office(?: reply| autoreply| auto-reply)?|ooo|autosvar|"
    r"abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|risposta automatica|automatisch antwoord"
    r")\s*:",
    re.I,
)
BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliverable|undelivered mail|undeliverable mail|delivery status notification|"
    r"mail delivery (?:failed|failure|subsystem)|delivery failure|returned mail|failure notice|"
    r"non[- ]?delivery|message not delivered|delivery has failed|mail system error)",
    re.I,
)
BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
# Microsoft's markers on automatic replies and rule-generated mail.
MS_AUTO_HEADERS = ("x-ms-exchange-inbox-rules-loop", "x-ms-exchange-generated-message-source")


class Knowledge(Protocol):
    """What the database knows that classification needs; DatabaseKnowledge reads it."""

    def earlier_copy(self, message_id: str | None, facts: Facts) -> int | None: ...

    def case_by_ref(self, ref: str) -> int | None: ...

    def case_for_message_ids(self, message_ids: list[str]) -> int | None: ...

    def case_for_token(self, token: str) -> int | None: ...


@dataclass(frozen=True)
class Facts:
    """The ledger row's own facts: its id (what "earlier" means), its bytes' digest, and
    its body's (a copy by Message-ID must have the same body)."""

    inbound_id: int
    sha256: str
    body_sha256: str | None = None

    @classmethod
    def of(cls, row: InboundMessage) -> Facts:
        return cls(row.id, row.sha256, row.body_sha256)


def classify(
    mail: ParsedMail, facts: Facts, known: Knowledge, our_addresses: frozenset[str] | set[str]
) -> Classification:
    # A From that does not read as one clean mailbox still goes on: the workflow sends an
    # unverified sender to a person. Mail with no From at all has nobody to answer.
    if not mail.headers.get("from"):
        return Classification(MessageKind.UNRELATED, "The message has no From header.")
    if any(is_own_address(address, our_addresses) for _, address in mail.from_addresses):
        return Classification(MessageKind.UNRELATED, "The message is from our own address.")
    earlier = known.earlier_copy(mail.message_id, facts)
    if earlier is not None:
        return Classification(
            MessageKind.DUPLICATE,
            f"Already received as inbound message {earlier}.",
            details={"original_inbound_id": str(earlier)},
        )
    bounce = bounce_reason(mail)
    if bounce:
        case_id = known.case_for_message_ids(mail.enclosed_message_ids)
        return Classification(MessageKind.BOUNCE, bounce, case_id=case_id)
    automatic = automatic_reason(mail)
    if automatic:
        return Classification(MessageKind.AUTOMATIC, automatic, case_id=_case_hint(mail, known))
    token = find_token(mail)
    if token:
        return Classification(
            MessageKind.APPROVAL_ANSWER,
            "The message carries an approval token.",
            case_id=known.case_for_token(token),
            token=token,
        )
    return _case_or_new(mail, known)


def _case_or_new(mail: ParsedMail, known: Knowledge) -> Classification:
    refs = [m.upper() for m in CASE_REF.findall(mail.subject)]
    for ref in refs:
        case_id = known.case_by_ref(ref)
        if case_id is not None:
            return Classification(
                MessageKind.CASE_REPLY,
                f"The subject names case {ref}.",
                case_id=case_id,
                details={"ref": ref},
            )
    threading = [m for m in [mail.in_reply_to, *mail.references] if m]
    case_id = known.case_for_message_ids(threading)
    if case_id is not None:
        return Classification(
            MessageKind.CASE_REPLY,
            "The message replies to one we sent or received on a case.",
            case_id=case_id,
        )
    if refs:
        return Classification(
            MessageKind.NEW_REQUEST,
            f"The subject names {refs[0]}, which is not a known case.",
            details={"unknown_ref": refs[0]},
        )
    return Classification(MessageKind.NEW_REQUEST, "A new message, not a reply on a case.")


def _case_hint(mail: ParsedMail, known: Knowledge) -> int | None:
    """The case an automatic reply answers, if its subject or threading headers tell."""
    for ref in CASE_REF.findall(mail.subject):
        case_id = known.case_by_ref(ref.upper())
        if case_id is not None:
            return case_id
    return known.case_for_message_ids([m for m in [mail.in_reply_to, *mail.references] if m])


def find_token(mail: ParsedMail) -> str | None:
    """The approval token, from the subject or the text: never from To or Cc, which a
    signature need not cover (anyone may add a Cc of ours carrying a code to a signed
    email that says "Approved" about something else)."""
    places = [mail.subject, mail.text]
    for place in places:
        match = TOKEN.search(place or "")
        if match:
            return match.group(1).lower()
    return None


def _return_path_null(mail: ParsedMail) -> bool:
    return any(v.strip() in ("<>", "") for v in mail.headers.get("return-path", []))


def bounce_reason(mail: ParsedMail) -> str | None:
    if mail.report_type == "delivery-status" or mail.delivery_status:
        return "A delivery status report (the message could not be delivered)."
    if mail.header("x-failed-recipients"):
        return "A delivery failure (X-Failed-Recipients)."
    if mail.header("x-ms-exchange-message-is-ndr") is not None:
        return "An Exchange non-delivery report."
    local = (mail.sender or "").split("@")[0]
    from_daemon = local in BOUNCE_SENDERS
    if BOUNCE_SUBJECT.match(mail.subject) and (from_daemon or _return_path_null(mail)):
        return "A delivery failure notice."
    return None


def automatic_reason(mail: ParsedMail) -> str | None:
    auto_submitted = mail.header("auto-submitted")
    # RFC 3834: any value but "no" ("auto-replied", "notification", "no-thanks") is automatic;
    # an empty one (nothing, or only a comment) says nothing and is read as no header.
    if auto_submitted is not None and _first_token(auto_submitted) not in ("no", ""):
        return f"Auto-Submitted: {_shown(auto_submitted)} (RFC 3834)."
    if mail.report_type:
        return f"An automatic report ({mail.report_type})."
    precedence = _first_token(mail.header("precedence") or "")
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}."
    if mail.header("x-loop") is not None:
        return "X-Loop: mail that a list or an automatic responder sent on."
    if mail.header("list-id") or mail.header("list-unsubscribe"):
        return "Mail from a mailing list."
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated", "x-auto-reply"):
        if mail.header(name) is not None:
            return f"An automatic reply ({name})."
    for name in MS_AUTO_HEADERS:
        if mail.header(name) is not None:
            return "A Microsoft automatic reply or mailbox rule."
    if _return_path_null(mail):
        return "Sent with an empty return path (automatic mail)."
    local = (mail.sender or "").split("@")[0]
    if local in BOUNCE_SENDERS:
        return "From a mail system's daemon address."
    if AUTO_REPLY_SUBJECT.match(mail.subject):
        return "The subject says it is an automatic reply."
    return None


_COMMENT = re.compile(r"\([^()]*+\)")
# Far more than a keyword and its comments take; a hostile header is read no further.
MAX_KEYWORD_HEADER = 1000


def _first_token(value: str) -> str:
    """A structured header's value as a keyword: comments left out, up to the first ";" or
    space, in lower case ("Bulk (list)" and "auto-replied; owner=x" are "bulk" and
    "auto-replied")."""
    words = _COMMENT.sub(" ", value[:MAX_KEYWORD_HEADER]).replace(";", " ").split()
    return words[0].lower() if words else ""


def _shown(value: str) -> str:
    return " ".join(value[:MAX_KEYWORD_HEADER].split()).lower()[:40]


# --------------------------------------------------------------------------- the database


def bracket_variants(message_ids: list[str]) -> list[str]:
    """Message-IDs with and without angle brackets (stored forms vary)."""
    found: list[str] = []
    for value in message_ids:
        bare = value.strip().strip("<>")
        if bare:
            found.extend((f"<{bare}>", bare))
    return found


_T = InboundMessage.__table__
# Built once; these run for every message.
# A copy is the same bytes, or the same Message-ID with the same body: one that came by
# another route, its trace headers its own. A Message-ID alone is not enough, nor with the
# From and Subject a copier writes on everything it sends: whoever learns or guesses one
# ("<0000123@scanner>") could send it first, and a later message carrying it would be
# dropped unread. The body of a message not yet written cannot be guessed.
_EARLIER = pending_may_wait(
    select(func.min(_T.c.id)).where(
        _T.c.id < bindparam("before"),
        or_(
            _T.c.sha256 == bindparam("sha"),
            and_(_T.c.message_id == bindparam("mid"), _T.c.body_sha256 == bindparam("body")),
        ),
    )
)


_FIRST_COPIES = pending_may_wait(
    union_all(
        select(literal("sha"), _T.c.sha256, literal(""), func.min(_T.c.id))
        .where(_T.c.sha256.in_(bindparam("shas", expanding=True)))
        .group_by(_T.c.sha256),
        select(literal("mid"), _T.c.message_id, _T.c.body_sha256, func.min(_T.c.id))
        .where(
            _T.c.message_id.in_(bindparam("mids", expanding=True)),
            _T.c.body_sha256.is_not(None),
        )
        .group_by(_T.c.message_id, _T.c.body_sha256),
    )
)
# session.info: {(Message-ID, the row's Facts): the earlier copy's id or None}
EARLIER_COPIES = "intake.classify.earlier_copies"


def telling_id(message_id: str | None) -> str | None:
    """The Message-ID when it can tell a message apart, else None. "<>", "<scan>" and the
    like, which broken mailers and copiers write on every message they send, would make
    every message after the first a copy of it, linked to another's case unread."""
    local, at, domain = (message_id or "")[1:-1].rpartition("@")
    return message_id if at and local and domain else None


def find_earlier_copies(session: Session, rows: list[InboundMessage]) -> None:
    """Answer earlier_copy for a batch of ledger rows with one query, kept in the session.

    The first copy of each content and of each Message-ID is the smallest id holding it;
    an earlier copy of a row exists when one of those is below the row's own id (rows
    stored later have larger ids, so what is found now stays true for the batch)."""
    shas = sorted({row.sha256 for row in rows})
    telling = {row.id: telling_id(row.message_id) for row in rows}
    mids = sorted({mid for mid in telling.values() if mid})
    first: dict[tuple[str, str, str], int] = {
        (side, value, body): first_id
        for side, value, body, first_id in session.connection().execute(
            # No Message-ID in the batch: "" matches none (stored ones are None or <…>).
            _FIRST_COPIES,
            {"shas": shas, "mids": mids or [""]},
        )
    }
    found = session.info.setdefault(EARLIER_COPIES, {})
    for row in rows:
        mid = telling[row.id]
        facts = Facts.of(row)
        below = [
            first_id
            for first_id in (
                first.get(("sha", row.sha256, "")),
                first.get(("mid", mid, row.body_sha256)) if mid and row.body_sha256 else None,
            )
            if first_id is not None and first_id < row.id
        ]
        found[(row.message_id, facts)] = min(below, default=None)


class LedgerKnowledge:
    """What the ledger alone knows: earlier copies, and the cases of earlier inbound
    messages. The cases, the outbox and approval tokens are known above intake
    (workflow.intake_link.DatabaseKnowledge extends this)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def earlier_copy(self, message_id: str | None, facts: Facts) -> int | None:
        found = self.session.info.get(EARLIER_COPIES, {})
        key = (message_id, facts)
        if key in found:  # the batch's rows were looked up together
            return found[key]
        # One statement; SQLite and PostgreSQL both answer the OR from the two indexes.
        return (
            self.session.connection()
            .execute(
                _EARLIER,
                {
                    "before": facts.inbound_id,
                    "sha": facts.sha256,
                    "mid": telling_id(message_id),
                    "body": facts.body_sha256,
                },
            )
            .scalar()
        )

    def case_by_ref(self, ref: str) -> int | None:
        return None

    def case_for_message_ids(self, message_ids: list[str]) -> int | None:
        variants = bracket_variants(message_ids)
        if not variants:
            return None
        return self.inbound_case(variants)

    def inbound_case(self, variants: list[str]) -> int | None:
        return self.session.scalar(
            select(InboundMessage.case_id)
            .where(InboundMessage.message_id.in_(variants), InboundMessage.case_id.is_not(None))
            .order_by(InboundMessage.id.desc())
            .limit(1)
        )

    def case_for_token(self, token: str) -> int | None:
        return None
