"""Read an approver's answer from the reply's own text, above the quoted original.

The quoted original is cut off with mail-parser-reply (which knows the "On … wrote:",
Outlook "From:/Sent:" and "-----Original Message-----" headers and the usual signatures),
then any line quoted with ">" ends the own text. HTML bodies are converted to text with
their quoted parts (<blockquote>, Gmail's gmail_quote, Outlook's divRplyFwdMsg) left out.
A few keyword rules then read the verdict; anything that is not plainly one answer is
"unclear", which sends the case to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

# Enough of a reason for a caseworker and the requester; the rest stays in the raw message.
MAX_REASON = 1000
# Only the opening of a reply carries the verdict; signatures and disclaimers follow.
MAX_OWN_TEXT = 4000
# The reply parser reads no further than this into a body (the answer is at the top).
MAX_INPUT = 200_000


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    reason: str | None  # the reason given with a rejection
    own_text: str  # what the approver wrote above the quoted original
    explanation: str  # one sentence for the history: why this verdict

    def as_dict(self) -> dict[str, str | None]:
        return {"verdict": str(self.verdict), "reason": self.reason,
                "own_text": self.own_text[:MAX_REASON], "explanation": self.explanation}


# "not approved", "I do not approve", "can't approve": a refusal, never an approval.
_NEGATED_APPROVAL = re.compile(
    r"\b(?:not|never|don'?t|do\s+not|doesn'?t|does\s+not|cannot|can'?t|can\s+not|won'?t|"
    r"will\s+not|unable\s+to|refuse\s+to|decline\s+to)\s+(?:be\s+|been\s+)?approv\w*",
    re.IGNORECASE,
)
_APPROVE = re.compile(r"\b(?:approve|approved|approving)\b", re.IGNORECASE)
_REJECT = re.compile(
    r"\b(?:reject|rejected|rejecting|decline|declined|refuse|refused|deny|denied)\b",
    re.IGNORECASE,
)
# A bare "Yes" or "No" opening the reply.
_YES_OPENING = re.compile(r"^\s*yes\b", re.IGNORECASE)
_NO_OPENING = re.compile(r"^\s*no\b(?!\s+(?:problem|worries|objection))", re.IGNORECASE)
# The verdict word (and punctuation) opening a rejection, stripped to leave the reason.
_REJECT_LEAD = re.compile(
    r"^\s*(?:i\s+)?(?:no|reject(?:ed)?|declined?|refused?|denied|deny)\b[\s.,:;!\-–—]*"
    r"(?:(?:because|as|since|reason)\b[\s:,\-–—]*)?",
    re.IGNORECASE,
)


def read_answer(text: str, html: str | None = None) -> Answer:
    """The approver's verdict, read from the plain text and (when present) the HTML body.

    When both bodies are given and each gives a clear but different verdict, the answer
    is unclear: the two parts of one message must not disagree.
    """
    from_text = _answer_from_text(text or "")
    if not html:
        return from_text
    from_html = _answer_from_text(html_to_text(html))
    if from_text.verdict is Verdict.UNCLEAR:
        return from_html if from_html.verdict is not Verdict.UNCLEAR or not text else from_text
    if from_html.verdict not in (Verdict.UNCLEAR, from_text.verdict):
        return Answer(Verdict.UNCLEAR, None, from_text.own_text,
                      "The plain-text and HTML parts of the reply say different things.")
    return from_text


def own_text(text: str) -> str:
    """What the sender wrote above the quoted original, without signature or disclaimer."""
    message = EmailReplyParser(languages=["en"]).read(text[:MAX_INPUT].replace("\r\n", "\n"))
    if not message.replies:
        return ""
    first = message.replies[0]
    if first.headers:
        # The message opens with a quoted header: nothing of the sender's own precedes it.
        return ""
    lines: list[str] = []
    for line in first.body.splitlines():
        if line.lstrip().startswith(">"):
            break
        lines.append(line.rstrip())
    return "\n".join(lines).strip()[:MAX_OWN_TEXT]


def _answer_from_text(text: str) -> Answer:
    own = own_text(text)
    if not own:
        return Answer(Verdict.UNCLEAR, None, "",
                      "The reply has no text of its own above the quoted message.")
    return classify(own)


def classify(own: str) -> Answer:
    """Apply the keyword rules to the reply's own text."""
    without_negations = _NEGATED_APPROVAL.sub(" ", own)
    rejects = bool(_NEGATED_APPROVAL.search(own) or _REJECT.search(own)
                   or _NO_OPENING.match(own))
    approves = bool(_APPROVE.search(without_negations) or _YES_OPENING.match(own))
    if approves and rejects:
        return Answer(Verdict.UNCLEAR, None, own,
                      "The reply contains words of both approval and refusal.")
    if approves:
        return Answer(Verdict.APPROVE, None, own, "The reply approves the request.")
    if rejects:
        reason = _rejection_reason(own)
        return Answer(Verdict.REJECT, reason, own,
                      "The reply rejects the request." if reason
                      else "The reply rejects the request without a reason.")
    return Answer(Verdict.UNCLEAR, None, own,
                  "The reply neither approves nor rejects in words the system can read.")


def _rejection_reason(own: str) -> str | None:
    reason = _REJECT_LEAD.sub("", own, count=1).strip()
    reason = " ".join(reason.split())
    return reason[:MAX_REASON] or None


# --------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "pre",
})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})
# Containers of the quoted original in the clients people use.
_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted", "moz-cite-prefix", "gmail_attr"})
# Outlook puts the original after one of these; everything from there on is quoted.
_QUOTE_START_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"}
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0  # >0 inside a quoted element, <style> or <script>
        self._stack: list[tuple[str, bool]] = []  # open elements: (tag, starts a skip?)
        self.stopped = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        attributes = {k.lower(): (v or "") for k, v in attrs}
        classes = set(attributes.get("class", "").lower().split())
        if attributes.get("id", "").lower() in _QUOTE_START_IDS:
            self.stopped = True
            return
        quoted = (tag in ("blockquote", "style", "script", "head", "title")
                  or bool(classes & _QUOTE_CLASSES))
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in _VOID_TAGS:
            return
        self._stack.append((tag, quoted))
        if quoted:
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.stopped or tag in _VOID_TAGS:
            return
        if any(open_tag == tag for open_tag, _ in self._stack):
            # Close the element and any left unclosed inside it (HTML mail is rarely tidy).
            while self._stack:
                open_tag, quoted = self._stack.pop()
                if quoted:
                    self._skip_depth -= 1
                if open_tag == tag:
                    break
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.stopped and self._skip_depth == 0:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML body, without its quoted original."""
    parser = _TextExtractor()
    parser.feed(html[:MAX_INPUT * 5])
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    compact: list[str] = []
    for line in lines:
        if line or (compact and compact[-1]):
            compact.append(line)
    return "\n".join(compact).strip()
