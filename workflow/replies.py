"""Read an approver's answer from the reply's own text, above the quoted original.

The quoted original is cut off where forms.mailtext.quote_start finds it, the one finder of
quoted mail that the request readers use too (it knows the "On … wrote:", Outlook
"From:/Sent:" and "-----Original Message-----" headers), then any line quoted with ">"
ends the own text. HTML bodies are converted to text with their quoted parts
(<blockquote>, Gmail's gmail_quote, Outlook's divRplyFwdMsg) left out.

The grammar fails closed. A reply approves only when its first non-empty line is an
approval standing alone ("APPROVE", "Approved - thanks", "Yes, I approve") and nothing in
its own text (a recognised disclaimer aside) negates, conditions or questions it. It
rejects only when the first line opens with a refusal ("REJECT", "Rejected", "No,",
"Declined", "I reject", "I do not approve") and no word of approval follows; the reason is
what the approver wrote after the verdict, without sign-off, signature or disclaimer, the
approver's recorded name and address, and with contact details replaced where they stand
(workflow.reason_redaction): it is sent to the requester.
Everything else is unclear, which sends the case to a person.

One-click answers come from the mailto links of an approval request: their subject is
"APPROVE|REJECT [PCSE-…] APV-…" and nothing else, and their body must not contradict it.

Every pattern here, and in forms.mailtext, is linear on hostile input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from core.htmltext import DROP, html_to_text
from core.latin import latin_folded
from forms.mailtext import quote_start, split_message
from workflow.answer_closing import CASED_WORD as _CASED_WORD
from workflow.answer_closing import COURTESIES as _COURTESIES
from workflow.answer_closing import POSTCODE as _POSTCODE
from workflow.answer_closing import RULE as _RULE
from workflow.answer_closing import WORD as _WORD
from workflow.answer_closing import is_own_name, more_than_a_sign_off
from workflow.reason_redaction import Signer, has_contact, names_signer, only_placeholders, redact

# Enough of a reason for a caseworker and the requester; the rest stays in the raw message.
MAX_REASON = 1000
# Only the opening of a reply carries the verdict; an own text longer than this is unclear.
MAX_OWN_TEXT = 4000
# The most of a body read at all (the answer is at the top).
MAX_INPUT = 200_000
# Own text with no quote after it is read whole only up to this length.
_PARSER_INPUT = 2 * MAX_OWN_TEXT


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
        return {
            "verdict": str(self.verdict),
            "reason": self.reason,
            "own_text": self.own_text[:MAX_REASON],
            "explanation": self.explanation,
        }


# --------------------------------------------------------------------------- vocabulary

# What a verdict line may hold besides words: punctuation, never a "?" or a symbol.
_STANDALONE_LINE = re.compile(r"[\w\s.,!:;'\"()*\-–—]*")

_APPROVE_VERBS = frozenset({"approve", "approved"})
_OBJECTS = (
    ("this", "request"),
    ("the", "request"),
    ("this", "application"),
    ("this", "one"),
    ("this",),
    ("it",),
)
_REJECT_OPENINGS = (
    ("i", "do", "not", "approve"),
    ("i", "don't", "approve"),
    ("i", "dont", "approve"),
    ("i", "reject"),
    ("i", "decline"),
    ("rejected",),
    ("reject",),
    ("declined",),
    ("decline",),
    ("no",),
)
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof"})
_NAME_WORDS = 4

# Any of these in an approval's own text makes it unclear: a negation, a condition, a wait,
# a refusal, a doubt, or the news that the nominee has gone.
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "nope",
        "nah",
        "never",
        "nor",
        "neither",
        "none",
        "nothing",
        "cannot",
        "unable",
        "dont",
        "cant",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "didnt",
        "doesnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "hasnt",
        "havent",
        "hadnt",
        "mustnt",
        "neednt",
        "aint",
        "shant",
    }
)
_CONDITIONS = frozenset(
    {
        "but",
        "however",
        "although",
        "though",
        "unless",
        "until",
        "till",
        "til",
        "once",
        "if",
        "provided",
        "providing",
        "subject",
        "pending",
        "except",
        "excluding",
        "without",
        "assuming",
        "conditional",
        "conditionally",
        "condition",
        "conditions",
        "provisional",
        "provisionally",
        "temporary",
        "temporarily",
        "only",
        "after",
        "when",
        "whenever",
        "before",
        "instead",
        "otherwise",
    }
)
_WAITS = frozenset(
    {
        "wait",
        "waiting",
        "hold",
        "yet",
        "later",
        "postpone",
        "postponed",
        "defer",
        "deferred",
        "delay",
        "pause",
        "paused",
        "stop",
        "cancel",
        "cancelled",
        "canceled",
        "withdraw",
        "withdrawn",
        "ignore",
        "disregard",
        "rather",
        "actually",
        "kidding",
        "joking",
        "jk",
        "mistake",
        "mistaken",
        "wrong",
        "error",
        "oops",
    }
)
_REFUSALS = frozenset(
    {
        "reject",
        "rejected",
        "rejecting",
        "rejection",
        "decline",
        "declined",
        "declining",
        "refuse",
        "refused",
        "deny",
        "denied",
        "object",
        "objection",
        "objections",
    }
)
_DOUBTS = frozenset(
    {
        "unsure",
        "doubt",
        "doubts",
        "query",
        "queries",
        "concern",
        "concerns",
        "concerned",
        "clarify",
        "clarification",
        "check",
        "checking",
        "who",
        "why",
        "whether",
        "maybe",
        "perhaps",
        "possibly",
        "probably",
        "might",
        "hmm",
        "erm",
        "um",
        "unclear",
        "confused",
    }
)
_GONE = frozenset(
    {
        "left",
        "leaving",
        "leaver",
        "resigned",
        "resigning",
        "retired",
        "retiring",
        "suspended",
        "dismissed",
    }
)
_HESITATIONS = _NEGATIONS | _CONDITIONS | _WAITS | _REFUSALS | _DOUBTS | _GONE
_HESITANT_PAIRS = frozenset({("as", "long"), ("so", "long"), ("in", "principle")})

# Words of approval: after a refusal they make the answer unclear unless negated.
_APPROVAL_WORDS = frozenset(
    {
        "approve",
        "approved",
        "approves",
        "approving",
        "approval",
        "yes",
        "yeah",
        "yep",
        "yup",
        "ok",
        "okay",
        "fine",
        "happy",
        "agree",
        "agreed",
        "proceed",
        "authorise",
        "authorised",
        "authorize",
        "authorized",
        "accept",
        "accepted",
        "grant",
        "granted",
        "support",
        "supported",
    }
)
_NO_IDIOMS = frozenset(
    {
        "objection",
        "objections",
        "problem",
        "problems",
        "probs",
        "issue",
        "issues",
        "worries",
        "concern",
        "concerns",
    }
)
_NEGATION_REACH = 3  # words before an approval word that can negate it

# Disclaimers open with one of these and, on the same line, say what they are.
_DISCLAIMER_OPENERS = (
    "this message",
    "this e-mail",
    "this email",
    "this communication",
    "the information",
    "the contents of this",
    "confidential",
    "disclaimer",
    "important notice",
    "privileged",
    "nhsmail is",
    "caution: this",
    "warning: this",
    "please consider the environment",
)
# Words an approver's own sentence can hold too ("confidential: do not set her up") are not
# enough: a disclaimer must say one of these, which only boilerplate says.
_DISCLAIMER_WORDS = (
    "intended recipient",
    "addressee",
    "virus",
    "nhsmail is",
    "received this in error",
    "received this email in error",
    "please consider the environment",
    "disclaimer",
)
_DEVICE_LINES = (
    "sent from my",
    "sent from outlook",
    "sent from mail",
    "sent from yahoo",
    "sent from samsung",
    "sent via",
    "get outlook for",
)
_CONTACT_OPENERS = (
    "tel",
    "t:",
    "t.",
    "m:",
    "m.",
    "mob",
    "phone",
    "direct",
    "fax",
    "email:",
    "e-mail",
    "e:",
    "web:",
    "www.",
    "http",
    "ext",
)
_CONTACT_WORDS = 4  # words beside a telephone number on a line of contact details
_SIGNATURE_WORDS = 6  # the most words of a name, job title or organisation line
# Words a sentence has and a name, job title or organisation does not.
_SENTENCE_WORDS = frozenset(
    {
        "not",
        "no",
        "never",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "will",
        "would",
        "should",
        "must",
        "can",
        "could",
        "may",
        "i",
        "me",
        "my",
        "we",
        "us",
        "our",
        "you",
        "your",
        "she",
        "he",
        "her",
        "him",
        "his",
        "they",
        "them",
        "their",
        "it",
        "this",
        "that",
        "here",
        "there",
        "left",
        "please",
        "if",
        "but",
        "because",
        "to",
    }
)
_EMAIL_ONLY = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_OUTLOOK_RULE = re.compile(r"_{20,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LEAD_PUNCTUATION = " \t.,:;!-–—"
_TRAIL_PUNCTUATION = " \t,:;-–—"
# Words that only introduce the reason ("because she left"); "as" and "since" are not
# among them ("as far as I know", "since March").
_CONNECTIVES = (
    ("the", "reason", "is"),
    ("reason", "being"),
    ("reason", "for", "rejecting"),
    ("reason", "for", "rejection"),
    ("reason",),
    ("because",),
    ("due", "to"),
)

# Lines our mailto links pre-fill in the body; they are not the approver's words.
ONE_CLICK_PROMPTS = ("reason for rejecting",)
_ONE_CLICK_SUBJECT = re.compile(
    r"\s*(approve|reject)\s+\[PCSE-\d{4}-\d{6}\]\s+APV-[0-9a-f]{20}\s*", re.IGNORECASE
)

# Everything people (and their keyboards' autocorrect) type for an apostrophe reads as one,
# so that "don´t" stays one word: split, its "don" and "t" would hide a negation.
_APOSTROPHES = (
    "\u2019\u2018\u201b\u02bc\u02b9\u02bb\u02bd\u00b4\u0060\u2032\u2035\uff07\ua78c\u055a"
)
_TRANSLATE = str.maketrans(
    {
        **dict.fromkeys(_APOSTROPHES, "'"),
        "\u00a0": " ",
        # Format characters draw nothing, and inside a word would split it ("don\u00adt"):
        # soft hyphen, zero-width and joining marks, direction marks and embeddings.
        **dict.fromkeys(
            [
                "\u00ad",
                "\u061c",
                "\u180e",
                *map(chr, range(0x200B, 0x2010)),
                *map(chr, range(0x202A, 0x202F)),
                *map(chr, range(0x2060, 0x2065)),
                *map(chr, range(0x2066, 0x2070)),
                "\ufeff",
                *map(chr, range(0xFFF9, 0xFFFC)),
            ],
            "",
        ),
        "\uff1f": "?",
        "\u201c": '"',
        "\u201d": '"',
        "\t": " ",
    }
)


@dataclass(frozen=True)
class _Token:
    word: str  # lower-cased
    cased: str
    start: int
    end: int


def _normalise(text: str) -> str:
    # Compatibility folding first: "ＮＯＴ" (fullwidth) is "NOT" to whoever reads it.
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)


# A run of letters, in any script.
_LETTERS = re.compile(r"[^\W\d_]+")


# Letters with full stops between them, read as one word: "P.S." is "PS", "N.B." is "NB".
_DOTTED = re.compile(r"\b(?:[A-Za-z]\.){1,3}[A-Za-z]\b\.?")


def _as_read(text: str) -> str:
    """`text` as an approval is read: Latin letters without their accents (core.latin),
    and dotted abbreviations as one word (a "P.S." is a postscript, "ps")."""
    return _DOTTED.sub(lambda m: m.group().replace(".", ""), latin_folded(text))


def _letters_not_read(text: str, signer: Signer | None) -> str | None:
    """The first word of `text` (its Latin letters folded, core.latin) in letters this
    reading does not read, or None: "ненадо" (don't) would pass unread beside an APPROVE.
    A word of the approver's own name, as the approval request knows it, is theirs."""
    name = signer.name if signer is not None else ""
    name = latin_folded(unicodedata.normalize("NFKC", name)).casefold()
    own = set(_LETTERS.findall(name))
    for word in _LETTERS.findall(text):
        if not word.isascii() and word.casefold() not in own:
            return word
    return None


def _tokens(text: str) -> list[_Token]:
    return [
        _Token(m.group().lower(), m.group(), m.start(), m.end()) for m in _CASED_WORD.finditer(text)
    ]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _starts_with(words: list[str], phrase: tuple[str, ...], at: int = 0) -> bool:
    return tuple(words[at : at + len(phrase)]) == phrase


# --------------------------------------------------------------------------- own text


def _split_own(text: str, *, with_signature: bool) -> tuple[str, bool]:
    """The sender's own text above the quoted original (forms.mailtext finds where the quote
    begins, as it does for a request), and whether it was read whole (it was not when no
    quote was found and it runs on past what is read)."""
    bounded = _normalise(text[:MAX_INPUT])
    start = quote_start(bounded)
    above = bounded if start is None else bounded[:start]
    if not with_signature:
        above = split_message(above).own
    own, quote_found = _until_quote(above)
    return own, start is not None or quote_found or len(bounded) <= _PARSER_INPUT


def _until_quote(body: str) -> tuple[str, bool]:
    lines: list[str] = []
    for line in body.splitlines():
        if line.lstrip().startswith(">") or _OUTLOOK_RULE.fullmatch(line.strip()):
            return "\n".join(lines).strip(), True
        lines.append(line.rstrip())
    return "\n".join(lines).strip(), False


def own_text(text: str) -> str:
    """What the sender wrote above the quoted original, without signature or disclaimer."""
    return _split_own(text, with_signature=False)[0][:MAX_OWN_TEXT]


def _above_quote(text: str) -> str | None:
    """Everything the sender wrote above the quoted original, signature and disclaimer
    included (the verdict is read from this, so nothing a sign-off hides is missed); None
    when it is too long to have been read whole."""
    own, whole = _split_own(text, with_signature=True)
    return own if whole else None


# --------------------------------------------------------------------------- reading


def read_answer(
    text: str,
    html: str | None = None,
    *,
    text_from_html: bool = False,
    signer: Signer | None = None,
) -> Answer:
    """The approver's verdict, read from the plain text and (when present) the HTML body.

    With `text_from_html` the plain text was made from the HTML body, quote and all, so only
    the HTML is read (its quoted parts are known by their markup). When a real plain-text
    part and an HTML part both hold text of their own, they must agree: two different
    verdicts, one of them unclear included, are unclear. `signer`, the approver asked, is
    kept out of a rejection's reason.
    """
    if text_from_html:
        if not html:
            return Answer(
                Verdict.UNCLEAR,
                None,
                "",
                "The reply's text was made from an HTML part that is missing.",
            )
        return _answer_from_text(_html_text(html), signer)
    from_text = _answer_from_text(text or "", signer)
    if not html:
        return from_text
    return _reconcile(from_text, _answer_from_text(_html_text(html), signer))


def _reconcile(from_text: Answer, from_html: Answer) -> Answer:
    if not from_text.own_text:
        return from_html
    if not from_html.own_text or from_html.verdict is from_text.verdict:
        return from_text
    if from_text.verdict is Verdict.UNCLEAR:
        return from_text
    if from_html.verdict is Verdict.UNCLEAR:
        # What the approver's reader showed them says more, or other, than the plain text
        # beside it: a person reads both.
        return Answer(Verdict.UNCLEAR, None, from_text.own_text, from_html.explanation)
    return Answer(
        Verdict.UNCLEAR,
        None,
        from_text.own_text,
        "The plain-text and HTML parts of the reply say different things.",
    )


def _answer_from_text(text: str, signer: Signer | None = None) -> Answer:
    own = _above_quote(text)
    if own is None:
        return Answer(
            Verdict.UNCLEAR,
            None,
            "",
            "The reply's own text is too long to be read as a one-word answer.",
        )
    if not own:
        return Answer(
            Verdict.UNCLEAR, None, "", "The reply has no text of its own above the quoted message."
        )
    return classify(own, signer)


def classify(own: str, signer: Signer | None = None) -> Answer:
    """Read the verdict from the reply's own text (everything above the quote); `signer`,
    the approver asked, is kept out of a rejection's reason."""
    own = _normalise(own).strip()
    if not own:
        return Answer(Verdict.UNCLEAR, None, "", "The reply has no text of its own.")
    if len(own) > MAX_OWN_TEXT:
        return Answer(
            Verdict.UNCLEAR,
            None,
            own[:MAX_OWN_TEXT],
            "The reply's own text is too long to be read as a one-word answer.",
        )
    lines = _without_disclaimer(own.split("\n"))
    first, later = lines[0].strip(), lines[1:]
    tokens = _tokens(first)
    approved = _approval_opening([t.word for t in tokens])
    if approved is not None:
        return _read_approval(own, first, tokens, approved, later, signer)
    lead = _rejection_opening(first, tokens)
    if lead is not None:
        return _read_rejection(own, first[lead:], later, signer)
    return Answer(Verdict.UNCLEAR, None, own, _why_no_opening(tokens))


# Where a signature's picture stood, in the plain text Outlook writes beside the HTML:
# "[cid:image001.png@01D9…]", or the picture's description, "[Riverside Surgery logo]".
_PICTURE = re.compile(
    r"\[(?:cid:[^\]]*|[^\[\]]{0,80}\b(?:logo|image|icon|banner|picture|photo)\b[^\[\]]{0,40}"
    r"|[^\[\]]{1,80}\.(?:png|jpe?g|gif|bmp))\]",
    re.IGNORECASE,
)


def _without_disclaimer(lines: list[str]) -> list[str]:
    """The own text from its first non-empty line, up to a disclaimer (which runs to the
    end: mail systems append them), without the places of a signature's pictures."""
    lines = [line for line in lines if not _PICTURE.fullmatch(line.strip())]
    while lines and not lines[0].strip():
        lines = lines[1:]
    for index, line in enumerate(lines[1:], start=1):
        # Mail systems append a disclaimer as a paragraph of its own.
        if not lines[index - 1].strip() and is_disclaimer_opening(line):
            return lines[:index]
    return lines


def is_disclaimer_opening(line: str) -> bool:
    low = line.strip(" *").lower()
    return low.startswith(_DISCLAIMER_OPENERS) and any(w in low for w in _DISCLAIMER_WORDS)


# --------------------------------------------------------------------------- approval


def _approval_opening(words: list[str]) -> int | None:
    """How many words the approval phrase opening the line takes, or None."""
    at = 1 if _starts_with(words, ("yes",)) else 0
    if _starts_with(words, ("i",), at):
        at += 2 if _starts_with(words, ("hereby",), at + 1) else 1
    if at >= len(words) or words[at] not in _APPROVE_VERBS:
        return None
    at += 1
    for phrase in _OBJECTS:
        if _starts_with(words, phrase, at):
            return at + len(phrase)
    return at


def _courtesy_only(tokens: list[_Token]) -> bool:
    """Nothing, or a courtesy ("thanks", "many thanks") and perhaps a name after it."""
    if not tokens:
        return True
    rest = _after_courtesy(tokens)
    return rest is not None and _is_name(rest)


def _courtesy_and_own_name(tokens: list[_Token], signer: Signer | None) -> bool:
    """Nothing, or a courtesy and perhaps the approver's own name or those thanked after it
    ("Approved, thanks Anil", "Approved, thanks all"). Any other words after a courtesy
    would be read by nobody: "Approved, thanks Jane Smith Excluded"."""
    if not tokens:
        return True
    rest = _after_courtesy(tokens)
    if rest is None:
        return False
    named = " ".join(t.cased for t in rest)
    return not rest or tuple(t.word for t in rest) in _THANKED or is_own_name(named, signer)


def _after_courtesy(tokens: list[_Token]) -> list[_Token] | None:
    """The words after the courtesy the tokens open with, or None when they open with none."""
    words = [t.word for t in tokens]
    for phrase in _COURTESIES:
        if _starts_with(words, phrase):
            return tokens[len(phrase) :]
    return None


# Those an approver thanks on the line that approves, besides themselves by name.
_THANKED = frozenset({("all",), ("everyone",), ("team",), ("pcse",), ("pcse", "team")})


def _is_name(tokens: list[_Token]) -> bool:
    return len(tokens) <= _NAME_WORDS and all(
        t.word in _TITLES or t.cased[0].isupper() for t in tokens
    )


def _read_approval(
    own: str,
    first: str,
    tokens: list[_Token],
    taken: int,
    later: list[str],
    signer: Signer | None,
) -> Answer:
    # Read with Latin letters' accents taken off ("NÓT" is "NOT"; core.latin); `own` is
    # kept as written, for the answer shown and for the quoted words' check.
    first = _as_read(first)
    later = [_as_read(line) for line in later]
    tokens = _tokens(first)
    if not _only_approves(first, tokens, taken, signer):
        return Answer(
            Verdict.UNCLEAR,
            None,
            own,
            "The first line says more than an approval, so it may be conditional, "
            "negated or a question.",
        )
    found = _besides_approving("\n".join([first, *later]), later, signer)
    if found is not None:
        return Answer(Verdict.UNCLEAR, None, own, _said_besides(_REPLY_SAYS, *found))
    return Answer(Verdict.APPROVE, None, own, "The reply approves the request.")


def _only_approves(first: str, tokens: list[_Token], taken: int, signer: Signer | None) -> bool:
    """Whether a line whose approval phrase takes `taken` words says nothing else but a
    courtesy ("Approved, thanks", "Approved, thanks Anil"): no question, no symbol,
    nothing after."""
    return bool(_STANDALONE_LINE.fullmatch(first)) and _courtesy_and_own_name(
        tokens[taken:], signer
    )


def _besides_approving(
    text: str, closing: list[str], signer: Signer | None
) -> tuple[str, str] | None:
    """What an approver's text (read as `_as_read` makes it) says besides approving, the
    same for a reply and a one-click answer's body: a word of doubt ("doubt"), a line of
    `closing` that is no closing ("more", answer_closing), or a word in letters not read
    ("letters"); None when it says nothing more."""
    doubt = hesitation(text)
    if doubt is not None:
        return "doubt", doubt
    more = more_than_a_sign_off(closing, signer)
    if more is not None:
        return "more", _shown(more)
    unread = _letters_not_read(text, signer)
    if unread is not None:
        return "letters", _shown(unread, 40)
    return None


def _said_besides(sentences: dict[str, str], kind: str, said: str) -> str:
    return sentences[kind].format(said=said)


# What a reply, and a one-click answer, says besides approving (_besides_approving).
_REPLY_SAYS = {
    "doubt": 'The reply approves but also says "{said}", so the approval may be negated, '
    "conditional or a question.",
    "more": 'The reply approves, then says "{said}": a correction, a condition or a comment '
    "may change what was approved, so a person reads it.",
    "letters": 'The reply approves, but also writes "{said}" in letters not read here, which '
    "may change what was approved, so a person reads it.",
}
_ONE_CLICK_SAYS = {
    "doubt": 'The subject approves but the text says "{said}", so the approval may be '
    "negated, conditional or a question.",
    "more": 'The subject approves, but the text says "{said}": a correction, a condition or '
    "a comment may change what was approved, so a person reads it.",
    "letters": 'The subject approves, but the text also writes "{said}" in letters not read '
    "here, which may change what was approved, so a person reads it.",
}


def _shown(line: str, most: int = 80) -> str:
    return line if len(line) <= most else line[: most - 1] + "\u2026"


# What, in a covering note, questions the form it comes with. A covering note says more
# than an answer does ("…which has no PCN admin at present"), so only words of refusal,
# delay or doubt, conditions, and a negation just before a word of approving or acting
# count, not every word that would make an answer unclear.
_NOTE_DOUBTS = (
    _REFUSALS
    | (_WAITS - {"actually", "later", "rather", "yet", "error", "jk", "joking", "kidding"})
    | (_DOUBTS - {"erm", "hmm", "um", "who", "why", "whether", "might", "probably"})
    | {"suspicious", "genuine", "fraud", "fraudulent", "unknown", "unverified"}
    | {"unless", "until", "till", "til", "once", "provided", "providing", "pending"}
    | {"provisional", "provisionally", "conditional", "conditionally", "assuming", "except"}
    | {"draft", "error", "mistake", "ignore", "disregard"}
)
_NOTE_ACTS = _APPROVAL_WORDS | {"set", "setup", "add", "process", "action", "submit", "create"}


def doubt_in_own_words(text: str) -> str | None:
    """The first word (or "?") in what the sender wrote above any quoted or forwarded
    original that questions what they send (_NOTE_DOUBTS, or a negation up to three words
    before approving or acting); None for a plain covering note. A form whose sending is
    its approval counts only when the words sent with it raise no doubt ("I do not approve
    this: is it genuine?")."""
    own = own_text(_normalise((text or "")[:MAX_INPUT]))
    if "?" in own:
        return "?"
    words = _words(own)
    for index, word in enumerate(words):
        if word in _NOTE_DOUBTS:
            return word
        if word in _NOTE_ACTS:
            before = words[max(0, index - _NEGATION_REACH) : index]
            negation = next((w for w in before if w in _NEGATIONS or w.endswith("n't")), None)
            if negation is not None:
                return f"{negation} … {word}"
    return None


# A covering note's greeting ("Hi", "Dear PCSE team,") and its one plain line about what is
# attached ("Please find attached the PCN form."), each from a fixed shape: anything else it
# says is read by a person, or answered with a code (workflow.decisions).
_GREETING = re.compile(
    r"(?i)(?:hi|hello|dear|good (?:morning|afternoon))"
    r"(?: (?:all|team|there|colleagues|pcse|pcse team|sir/madam|sir or madam))?[,!.]?"
)
_COVERING = re.compile(
    r"(?i)(?:please (?:find|see) (?:the )?attached|attached (?:is|please find)|i (?:have )?attached"
    r"|i attach|see attached|attached)"
    r"(?: (?:the|our|a|my))?(?: (?:completed|signed|approved))?(?: (?:pcn|icb))?"
    r"(?: (?:user (?:admin(?:istrator)?|management)))?(?: (?:request|application))?"
    r"(?: (?:form|pdf))?(?: for (?:processing|your action))?[.!]?"
)


def note_says_more(text: str, signer: Signer | None = None) -> str | None:
    """The first thing the sender wrote with a form, above any forwarded original, that is
    not a greeting, one plain line about what is attached, a courtesy, a sign-off, or their
    name and signature (workflow.answer_closing); None for a plain covering note. A form
    whose sending is its approval is applied at once only with a plain note: nobody else
    reads the case, so a note saying more ("Sent in error", "Please set up Jane only after
    she starts", a PS below the signature) may change what was meant."""
    own, whole = _split_own(_normalise((text or "")[:MAX_INPUT]), with_signature=True)
    if not whole:
        return "(a note too long to read)"
    rest: list[str] = []
    for line in _without_disclaimer(own[:MAX_OWN_TEXT].split("\n")):
        stripped = " ".join(line.split())
        if not rest and _GREETING.fullmatch(stripped):
            continue
        if _COVERING.fullmatch(stripped):
            continue
        rest.append(line)
    return more_than_a_sign_off(rest, signer)


# A team's name with a word of doubt in it, as a signature writes it: the whole line, the
# team and a post ("Long Term Conditions Lead", "Clinical Lead for Long Term Conditions").
# Whether the line is a signature's is for answer_closing to say.
_TEAM_NAMES = re.compile(
    r"(?m)^[ \t]*(?:Long[- ]Term Conditions (?:Lead|Nurse|Nurses|Team|Service|Clinic"
    r"|Specialist|Practitioner|Pharmacist|Manager|Coordinator|Clinician|Hub|Matron)"
    r"(?: (?:Nurse|Specialist|Practitioner|Lead|Manager))?"
    r"|(?:Clinical )?Lead (?:Nurse )?for Long[- ]Term Conditions)[ \t]*$"
)


def hesitation(text: str) -> str | None:
    """The first word (or "?") in `text` that negates, conditions or questions an approval."""
    if "?" in text:
        return "?"
    words = _words(_TEAM_NAMES.sub("Team", text))
    for index, word in enumerate(words):
        if word in _HESITATIONS or word.endswith("n't"):
            return word
        if index and (words[index - 1], word) in _HESITANT_PAIRS:
            return f"{words[index - 1]} {word}"
    return None


# --------------------------------------------------------------------------- rejection


def _rejection_opening(first: str, tokens: list[_Token]) -> int | None:
    """Where the reason starts on the first line when it opens with a refusal, or None.

    A bare "No" counts only when punctuation or the end of the line follows it, so that
    "No problem", "No objection" and "No one told me" are not refusals."""
    words = [t.word for t in tokens]
    for phrase in _REJECT_OPENINGS:
        if not _starts_with(words, phrase):
            continue
        taken = len(phrase)
        if phrase == ("no",):
            after = first[tokens[0].end :].lstrip()
            if after and after[0] not in ".,!:;-–—":
                return None
        elif taken < len(tokens) and not first[tokens[taken - 1].end : tokens[taken].start].strip():
            # "I reject this request - …", but not "I do not approve - this person is …"
            taken += next((len(p) for p in _OBJECTS if _starts_with(words, p, taken)), 0)
        return tokens[taken - 1].end
    return None


def _read_rejection(own: str, rest: str, later: list[str], signer: Signer | None) -> Answer:
    approval = _unnegated_approval(_words("\n".join([rest, *later])))
    if approval is not None:
        return Answer(
            Verdict.UNCLEAR,
            None,
            own,
            f'The reply opens with a refusal but also says "{approval}".',
        )
    reason = _reason([rest, *later], keep_first=True, signer=signer)
    return Answer(
        Verdict.REJECT,
        reason,
        own,
        "The reply rejects the request."
        if reason
        else "The reply rejects the request without a reason.",
    )


def _unnegated_approval(words: list[str]) -> str | None:
    """A word of approval not negated by one of the few words before it."""
    for index, word in enumerate(words):
        nxt = words[index + 1] if index + 1 < len(words) else ""
        if word == "no" and nxt in _NO_IDIOMS:
            return f"no {nxt}"
        if (word == "go" and nxt == "ahead") or word in _APPROVAL_WORDS:
            before = words[max(0, index - _NEGATION_REACH) : index]
            if not any(w in _NEGATIONS or w.endswith("n't") for w in before):
                return "go ahead" if word == "go" else word
    return None


def _why_no_opening(tokens: list[_Token]) -> str:
    words = [t.word for t in tokens]
    if words and words[0] in ("yes", "yeah", "yep", "ok", "okay", "fine", "sure"):
        return f'"{tokens[0].cased}" is not read as an approval: the answer must say APPROVE.'
    if any(w in _APPROVE_VERBS for w in words):
        return (
            "The reply mentions approval but does not open with APPROVE standing alone, "
            "so it may be negated, conditional or a question."
        )
    return "The reply does not open with APPROVE or REJECT on its first line."


# --------------------------------------------------------------------------- the reason


def _reason(lines: list[str], *, keep_first: bool, signer: Signer | None = None) -> str | None:
    """The approver's own sentences, to be sent to the requester: sign-off, signature,
    name lines, the approver's recorded name and address, and courtesies left out, and
    each email address, web address or long number replaced where it stands."""
    lines = _without_signer(lines, signer)
    if keep_first and lines and _is_name_block(lines[0].strip(_LEAD_PUNCTUATION)):
        lines = ["", *lines[1:]]  # "Rejected - Jo Bloggs, Practice Manager, Riverside Surgery"
    kept = _before_signature(lines, keep_first=keep_first)
    joined = " ".join(" ".join(kept).split())
    text = joined.lstrip(_LEAD_PUNCTUATION)
    if not any(mark in joined[: len(joined) - len(text)] for mark in ".!"):
        text = _without_connective(text)
    text = _without_trailing_courtesy(redact(text)).strip(_TRAIL_PUNCTUATION)
    if only_placeholders(text):
        return None
    return text[:MAX_REASON]


def _without_signer(lines: list[str], signer: Signer | None) -> list[str]:
    """The lines without the approver's recorded name or address: a short line naming
    them starts their signature (it and all after it go); in a longer line, or the
    verdict's own line, only the sentences naming them go."""
    if signer is None:
        return lines
    kept: list[str] = []
    for index, line in enumerate(lines):
        if not names_signer(line, signer):
            kept.append(line)
            continue
        if index and len(_tokens(line)) <= _SIGNATURE_WORDS:
            break
        sentences = _SENTENCE_END.split(line)
        kept.append(" ".join(x for x in sentences if not names_signer(x, signer)))
    return kept


def _before_signature(lines: list[str], *, keep_first: bool) -> list[str]:
    kept: list[str] = []
    for index, line in enumerate(lines):
        if index == 0 and keep_first:
            kept.append(line)
            continue
        stripped, following = line.strip(), lines[index + 1 :]
        if _is_sign_off(stripped) and _sentence_follows(following):
            continue  # "Thank you Dr Patel" before the reason, not a sign-off after it
        after_blank = index > 0 and not lines[index - 1].strip()
        if _starts_signature(line, after_blank, following):
            break
        kept.append(line)
    return kept


def _sentence_follows(following: list[str]) -> bool:
    """Whether the next non-empty line is a sentence, not a name or signature line."""
    line = next((x.strip() for x in following if x.strip()), "")
    return bool(line) and not (
        _is_sign_off(line) or _is_signature_line(line) or _is_name_block(line)
    )


def _starts_signature(line: str, after_blank: bool, following: list[str]) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _is_sign_off(stripped) or _is_signature_line(stripped):
        return True
    return _is_name_block(stripped) and (
        after_blank
        or all(
            _is_signature_line(x.strip()) or _is_name_block(x.strip()) or not x.strip()
            for x in following
        )
    )


def _is_sign_off(line: str) -> bool:
    return (
        bool(_STANDALONE_LINE.fullmatch(line))
        and bool(_tokens(line))
        and _courtesy_only(_tokens(line))
    )


def _is_signature_line(line: str) -> bool:
    """A device line, a rule, contact details, a line of a postal address, a line of
    contact details with words but no sentence ("Switchboard 01632 960123"), or parts of
    a signature set apart by "|"."""
    low = line.lower()
    return (
        low.startswith(_DEVICE_LINES)
        or low.startswith(_CONTACT_OPENERS)
        or bool(_RULE.fullmatch(line))
        or bool(_EMAIL_ONLY.fullmatch(line))
        or _is_contact_line(line)
        or _is_address_line(line)
        or ("|" in line and all(_is_signature_part(p.strip()) for p in line.split("|")))
    )


def _is_contact_line(line: str) -> bool:
    """Contact details and words around them, but nothing a sentence says."""
    if not has_contact(line):
        return False
    words = _words(redact(line))
    return len(words) <= _CONTACT_WORDS or not any(w in _SENTENCE_WORDS for w in words)


def _is_address_line(line: str) -> bool:
    tokens = _tokens(line)
    return (
        bool(_POSTCODE.search(line))
        and len(tokens) <= _SIGNATURE_WORDS + 2
        and not any(t.word in _SENTENCE_WORDS for t in tokens)
    )


def _is_signature_part(part: str) -> bool:
    return not part or _looks_like_name(part) or has_contact(part) or _is_address_line(part)


def _is_name_block(line: str) -> bool:
    """A name, job title or organisation, or several set apart by commas ("Jo Bloggs,
    Practice Manager, Riverside Surgery")."""
    parts = [p.strip() for p in re.split(r"[,|]", line)]
    return all(p and _looks_like_name(p) for p in parts)


def _looks_like_name(line: str) -> bool:
    """A name or job title line: a few capitalised words, none that a sentence needs
    ("Not A Partner Here", "Jo Has Left"), and nothing that ends a sentence. A line all in
    capitals ("DO NOT ADD HER", "WRONG PRACTICE") is a name only after a title ("DR T
    BAKER")."""
    tokens = _tokens(line)
    if not tokens or len(tokens) > _SIGNATURE_WORDS or line.endswith(("!", ":", ";", "?")):
        return False
    if line.endswith(".") and len(tokens[-1].cased) > 1:
        return False
    if any(t.word in _SENTENCE_WORDS for t in tokens):
        return False
    if not any(c.islower() for c in line) and tokens[0].word not in _TITLES:
        return False
    return all(t.word in _TITLES or t.cased[0].isupper() for t in tokens)


def _without_connective(text: str) -> str:
    """ "because she left" -> "she left" (called only straight after the verdict)."""
    tokens = _tokens(text[:40])
    words = [t.word for t in tokens]
    for phrase in _CONNECTIVES:
        if _starts_with(words, phrase) and len(tokens) > len(phrase):
            return text[tokens[len(phrase) - 1].end :].lstrip(_LEAD_PUNCTUATION)
    return text


def _without_trailing_courtesy(text: str) -> str:
    """ "She has left. Thanks, Anil" -> "She has left." """
    tokens = _tokens(text)
    longest = max(len(phrase) for phrase in _COURTESIES) + _NAME_WORDS
    for start in range(max(1, len(tokens) - longest), len(tokens)):
        if not _courtesy_only(tokens[start:]):
            continue
        gap = text[tokens[start - 1].end : tokens[start].start]
        if any(mark in gap for mark in ".,;!-–—"):
            return text[: tokens[start].start].rstrip(" ,;-–—")
    return text


# --------------------------------------------------------------------------- one click


def subject_verdict(subject: str) -> Verdict | None:
    """The verdict of a subject pre-filled by a mailto link, "APPROVE [PCSE-…] APV-…" or
    "REJECT [PCSE-…] APV-…", with nothing else; None for anything else, a reply's "RE:"
    included (that is a reply to our email, read by `read_answer`)."""
    match = _ONE_CLICK_SUBJECT.fullmatch(subject or "")
    if match is None:
        return None
    return Verdict.APPROVE if match.group(1).lower() == "approve" else Verdict.REJECT


def read_one_click(
    subject: str,
    text: str | None,
    html: str | None,
    text_from_html: bool = False,
    signer: Signer | None = None,
) -> Answer | None:
    """A one-click answer: the subject's verdict, unless the body contradicts it. None when
    the subject is not a one-click verdict (then the caller reads the reply instead)."""
    verdict = subject_verdict(subject)
    if verdict is None:
        return None
    bodies = _one_click_bodies(text, html, text_from_html)
    own = bodies[0] if bodies and bodies[0] is not _TOO_LONG else ""
    for body in bodies:
        contradiction = _one_click_contradiction(verdict, body, signer)
        if contradiction is not None:
            return Answer(Verdict.UNCLEAR, None, own, contradiction)
    if verdict is Verdict.APPROVE:
        return Answer(Verdict.APPROVE, None, own, "The one-click answer approves the request.")
    reason = _one_click_reason(own, signer)
    return Answer(
        Verdict.REJECT,
        reason,
        own,
        "The one-click answer rejects the request."
        if reason
        else "The one-click answer rejects the request without a reason.",
    )


# Stands for a body too long to have been read whole.
_TOO_LONG = "\u2026" * (MAX_OWN_TEXT + 1)


def _one_click_bodies(text: str | None, html: str | None, text_from_html: bool) -> list[str]:
    """The own text of each real body part, the pre-filled prompt lines removed."""
    sources: list[str] = []
    if text and not text_from_html:
        sources.append(text)
    if html:
        sources.append(_html_text(html))
    bodies = [_above_quote(source) for source in sources]
    return [_TOO_LONG if body is None else _without_prompts(body) for body in bodies if body != ""]


def _without_prompts(own: str) -> str:
    lines = []
    for line in _normalise(own).split("\n"):
        if line.strip().lower().startswith(ONE_CLICK_PROMPTS):
            line = line.split(":", 1)[1] if ":" in line else ""
        lines.append(line)
    return "\n".join(lines).strip()


def _one_click_contradiction(verdict: Verdict, body: str, signer: Signer | None) -> str | None:
    if body is _TOO_LONG or len(body) > MAX_OWN_TEXT:
        return "The one-click answer's text is too long to check."
    readable = "\n".join(_without_disclaimer(body.split("\n")))
    if verdict is Verdict.APPROVE:
        readable = _as_read(readable)
        found = _besides_approving(readable, _after_approval_line(readable, signer), signer)
        return _said_besides(_ONE_CLICK_SAYS, *found) if found is not None else None
    if classify(body).verdict is Verdict.APPROVE:
        return "The subject rejects but the text approves."
    approval = _unnegated_approval(_words(_after_rejection_word(readable)))
    if approval is not None:
        return f'The subject rejects but the text says "{approval}".'
    return None


def _after_approval_line(body: str, signer: Signer | None) -> list[str]:
    """The body's lines after its first, when that only approves ("APPROVE", "Approved,
    thanks"), else all of them."""
    lines = _without_disclaimer(body.split("\n"))
    if not lines:
        return []
    first = lines[0].strip()
    tokens = _tokens(first)
    taken = _approval_opening([t.word for t in tokens])
    only = taken is not None and _only_approves(first, tokens, taken, signer)
    return lines[1:] if only else lines


def _after_rejection_word(body: str) -> str:
    lines = body.split("\n")
    first = lines[0].strip()
    lead = _rejection_opening(first, _tokens(first))
    return body if lead is None else "\n".join([first[lead:], *lines[1:]])


def _one_click_reason(own: str, signer: Signer | None) -> str | None:
    lines = _without_disclaimer(own.split("\n")) if own else []
    if not lines:
        return None
    first = lines[0].strip()
    lead = _rejection_opening(first, _tokens(first))
    if lead is not None:
        return _reason([first[lead:], *lines[1:]], keep_first=True, signer=signer)
    return _reason(lines, keep_first=False, signer=signer)


# --------------------------------------------------------------------------- HTML


def _html_text(html: str) -> str:
    """The visible text of an HTML body, its quoted original left out by its markup."""
    return html_to_text(html[: MAX_INPUT * 5], quotes=DROP)
