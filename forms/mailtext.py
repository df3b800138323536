"""Find the words a person actually wrote in an email body.

People's mail carries much besides the request: a greeting, a sign-off and signature (with
other addresses), an NHSmail disclaimer, and the earlier mail they replied to or forwarded.
`split_message` separates these so the request is read only from the writer's own text,
and the signature is kept apart (it names the sender and often the organisation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --------------------------------------------------------------------------- quoted mail

# An attribution ("On Mon, 2 Mar 2026 at 09:00, PCSE <…> wrote:"; "PCSE Enquiries wrote:").
# Found by its line ending "wrote:": one opening "On" must read as one (reads_as_attribution);
# Gmail wraps a long one over up to three lines, with no blank line between. A line the
# writer began "On" ("On hold until her DBS clears", "On Friday at 10:30 tell Bob …") above
# an attribution is theirs.
_WROTE = re.compile(r"\bwrote:[ \t]*$", re.I)
_ON = re.compile(r"^[ \t]*On\b", re.I)
_ATTRIBUTION_LINES = 3
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_BRACKETS = re.compile(r"\([^()]*\)")
_ATTRIBUTION_SHAPE = re.compile(r"on\s+(.+?)\s*wrote\s*:", re.I | re.S)
_ADDRESS = re.compile(r"<?[^\s<>@,]+@[^\s<>@,]+>?")
_ATTRIBUTION_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_DATE_WORDS = frozenset(
    re.findall(
        r"\S+",
        """
        monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur
        thurs fri sat sun january february march april may june july august september
        october november december jan feb mar apr jun jul aug sep sept oct nov dec at am pm
        utc gmt bst cet cest eet eest est edt cst cdt mst mdt pst pdt akst ist aest aedt
        acst awst nzst nzdt jst hkt sgt
        """,
    )
)
# Words of a statement, never of who wrote ("On Friday, at 10:30, tell Bob she must not").
_NOT_OF_A_WRITER = frozenset(
    re.findall(
        r"\S+",
        """
        not no don't dont never do please reject rejected approve approved tell until unless
        only except must should hold wait leave leaves left remove add instead if but when
        """,
    )
)
_WRITER_WORDS = 8

# Searched through whole bodies line by line (re.M): each starts with [ \t]* rather than
# \s*, which would run on over the following lines from every line start (quadratic in a
# run of blank lines).
_ORIGINAL = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:Original|Forwarded)[ \t]+Message[ \t]*-{2,}[ \t]*$", re.M | re.I
)
_FORWARD = re.compile(
    r"^[ \t]*(?:Begin forwarded message:|-{3,}[ \t]*Forwarded message[ \t]*-{3,})[ \t]*$",
    re.M | re.I,
)
_HEADER_LINE = re.compile(r"^\s*\*?(From|Sent|Date|To|Cc|Subject)\*?\s*:", re.I)
_OUTLOOK_RULE = re.compile(r"^\s*_{10,}\s*$")
_FROM_LINE = re.compile(r"^\s*\*?From\*?\s*:", re.I)


def _outlook_header_at(lines: list[str], index: int) -> bool:
    """A "From: … Sent: … To: … Subject:" block of a reply or forward starts at `index`: its
    lines follow one another, with no blank line, rule or second From among them, so that a
    line the writer began "From:" ("From: 1 April") above a real block is not taken for it."""
    if not _FROM_LINE.match(lines[index]):
        return False
    seen: set[str] = set()
    for line in lines[index + 1 : index + 7]:
        if not line.strip() or _OUTLOOK_RULE.match(line) or _FROM_LINE.match(line):
            break
        if m := _HEADER_LINE.match(line):
            seen.add(m.group(1).lower())
    return bool(seen & {"sent", "date"}) and bool(seen & {"to", "subject"})


def _attribution_start(lines: list[str]) -> int | None:
    """The line the quote's attribution begins on (see _WROTE), or None. Of several, the
    first that quoted lines follow: the writer may quote someone in their own words ("On
    3 March the practice manager wrote: …") above the attribution of our email."""
    found: list[tuple[int, bool]] = []
    for last, line in enumerate(lines):
        if not _WROTE.search(line):
            continue
        first = _attribution_from(lines, last)
        quoted = _quoted_after(lines, last)
        if first is None and not quoted:
            continue  # "… as Jane wrote:" in a sentence, no quote under it
        found.append((last if first is None else first, quoted))
    return next((first for first, quoted in found if quoted), found[0][0] if found else None)


def _attribution_from(lines: list[str], last: int) -> int | None:
    """Where an attribution ending on line `last` begins, when it opens with "On"."""
    for first in range(last, max(-1, last - _ATTRIBUTION_LINES), -1):
        if not lines[first].strip():
            return None
        if _ON.match(lines[first]):
            joined = " ".join(lines[first : last + 1])
            # Wrapped, an attribution keeps its time on the first line and its address
            # after: "On 1 April, Jane retires" above "PCSE wrote:" is the writer's.
            wrapped = first == last or (bool(_TIME.search(lines[first])) and "@" in joined)
            return first if wrapped and reads_as_attribution(joined) else None
    return None


def reads_as_attribution(text: str, writers: frozenset[str] | None = None) -> bool:
    """Does "On … wrote:" read as a mail client writes it: after "On", a date and time
    ("Mon, 2 Mar 2026 at 09:00", "Mon, Mar 2, 2026 at 9:00 AM", "02/03/2026 10:00 +0000"),
    then who wrote, and perhaps an address? With `writers` (the words of the sender of the
    quoted email, and their addresses, in lower case) every word of who wrote must be one
    of them; without, who wrote is a few words, none of a statement, so "On Friday at 10:30
    tell Bob …" and "On 1 April she leaves, NOT after that, as Bob wrote:" do not read so."""
    shape = _ATTRIBUTION_SHAPE.fullmatch(" ".join(text.split()))
    if shape is None:
        return False
    addresses = {a.strip("<>").lower() for a in _ADDRESS.findall(shape.group(1))}
    rest = _ADDRESS.sub(" ", shape.group(1))
    tokens = list(_ATTRIBUTION_WORD.finditer(rest))
    dated = 0
    while dated < len(tokens) and _is_a_date_word(tokens[dated].group()):
        dated += 1
    if not any(ch.isdigit() for token in tokens[:dated] for ch in token.group()):
        return False
    who = rest[tokens[dated - 1].end() :]
    writer = [w.lower() for w in _ATTRIBUTION_WORD.findall(who)]
    if not writer and not addresses:
        return False
    if writers is None:
        return len(writer) <= _WRITER_WORDS and not set(writer) & _NOT_OF_A_WRITER
    # A directory may add where the sender works: "PCSE … (NHS ENGLAND - X26)".
    named = {w.lower() for w in _ATTRIBUTION_WORD.findall(_BRACKETS.sub(" ", who))}
    return named <= writers and addresses <= writers and bool((named | addresses) & writers)


def _is_a_date_word(word: str) -> bool:
    return any(ch.isdigit() for ch in word) or word.lower() in _DATE_WORDS


def _quoted_after(lines: list[str], last: int) -> bool:
    """Is the first line with words after `last` quoted ("> …"), or is there none?"""
    return next((line.lstrip().startswith(">") for line in lines[last + 1 :] if line.strip()), True)


def quote_start(text: str) -> int | None:
    """Where the quoted earlier mail begins in `text`, or None when nothing is quoted."""
    starts = [m.start() for m in (_ORIGINAL.search(text), _FORWARD.search(text)) if m]
    lines = text.split("\n")
    if (first := _attribution_start(lines)) is not None:
        starts.append(sum(len(line) + 1 for line in lines[:first]))
    offset = 0
    for index, line in enumerate(lines):
        if _OUTLOOK_RULE.match(line) and any(
            _outlook_header_at(lines, j) for j in range(index + 1, min(index + 3, len(lines)))
        ):
            starts.append(offset)
            break
        if _outlook_header_at(lines, index):
            starts.append(offset)
            break
        offset += len(line) + 1
    return min(starts) if starts else None


def drop_header_block(text: str) -> str:
    """Forwarded mail without its From/Sent/To/Subject lines and separators."""
    kept = []
    for line in text.split("\n"):
        if (
            _HEADER_LINE.match(line)
            or _OUTLOOK_RULE.match(line)
            or _ORIGINAL.match(line)
            or _FORWARD.match(line)
        ):
            continue
        kept.append(line)
    return "\n".join(kept)


def unquote(text: str) -> str:
    """Lines quoted with ">" removed."""
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))


# --------------------------------------------------------------------------- disclaimers

_DISCLAIMER = re.compile(
    r"intended recipient|may contain confidential|privileged|this e-?mail (?:and|message)|"
    r"this message (?:and|may|is)|nhsmail|nhs\.net is|scanned for viruses|virus|"
    r"disclaimer|legally|unauthori[sz]ed use|please consider the environment|"
    r"if you have received this|do not disclose|views expressed|secure email|"
    r"caution: this email originated",
    re.I,
)
_RULE_LINE = re.compile(r"^\s*([*=~#_-])\1{4,}\s*$")


def drop_disclaimers(text: str) -> str:
    """Paragraphs that are disclaimers, and the rules of asterisks around them, removed."""
    kept = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.split("\n") if not _RULE_LINE.match(line)]
        body = " ".join(lines)
        hits = len(_DISCLAIMER.findall(body))
        if hits >= 2 or (hits == 1 and len(body) > 60 and len(body.split()) > 12):
            continue
        kept.append("\n".join(lines))
    return "\n\n".join(kept)


# --------------------------------------------------------------------------- signatures

SIGN_OFFS = (
    r"kind(?:est)? regards|best regards|warm(?:est)? regards|many regards|regards|"
    r"many thanks|thanks(?: again| very much| so much| in advance)?|thank you(?: very much|"
    r" in advance| so much)?|with thanks|best wishes|all the best|best|cheers|"
    r"yours sincerely|yours faithfully|sincerely|rgds|kr|ta|speak soon|take care"
)
# Possessive runs: with plain ones, the spaces and commas around the name could be shared
# out in ways whose number grows with the cube of their length ("Regards" and 400 spaces
# took 20 s to refuse).
_SIGN_OFF = re.compile(
    rf"^\s*+(?i:{SIGN_OFFS})[\s,.!]*+"
    r"(?P<name>[A-Z][\w'’.-]*+(?:\s++[A-Z][\w'’.-]*+){0,3})?[\s,.!]*+$"
)
_DEVICE_LINE = re.compile(r"^\s*(sent from my \w+|get outlook for \w+)", re.I)
_DASHES = re.compile(r"^\s*--\s*$")
SIGNATURE_MAX_LINES = 18


def _sign_off_line(lines: list[str]) -> int | None:
    """The line that starts the sign-off: the first sign-off line (or "--", or "Sent from
    my phone") after which only a signature-sized block follows."""
    remaining = sum(1 for line in lines if line.strip())  # non-blank lines after `index`
    for index, line in enumerate(lines):
        if line.strip():
            remaining -= 1
        if not (_DASHES.match(line) or _DEVICE_LINE.match(line) or _SIGN_OFF.match(line)):
            continue
        if remaining <= SIGNATURE_MAX_LINES:
            return index
    return None


_PHONE = re.compile(
    r"\b(?:tel|telephone|phone|mobile|mob|fax|direct\s+line)\b|"
    r"(?:\+44\s?|\b0)\d{2,4}[\s-]?\d{3}[\s-]?\d{3,4}\b",
    re.I,
)
_JOB = re.compile(
    r"\b(?:manager|administrator|partner|director|receptionist|secretary|"
    r"coordinator|co-ordinator|officer|lead|pharmacist|optometrist|"
    r"superintendent|gp|practitioner)\b",
    re.I,
)
_ADDRESS_ONLY = re.compile(r"^\s*(?:e-?mail\s*:?\s*)?[\w.+'-]+@[\w.-]+\s*$", re.I)


def _signature_block(paragraph: str) -> bool:
    """A closing paragraph of short lines with a phone number, a job title or a bare
    address: a signature written without a sign-off."""
    lines = [line for line in paragraph.split("\n") if line.strip()]
    if len(lines) < 2 or any(len(line.split()) > 8 for line in lines):
        return False
    return any(
        _PHONE.search(line) or _JOB.search(line) or _ADDRESS_ONLY.match(line) for line in lines[1:]
    )


def _own_and_signature(text: str) -> tuple[str, str, str | None]:
    """One stretch of the writer's text split into what they wrote and their signature."""
    text = drop_disclaimers(unquote(text))
    lines = text.rstrip().split("\n")
    index = _sign_off_line(lines)
    if index is not None:
        match = _SIGN_OFF.match(lines[index])
        name = match.group("name") if match else None
        return "\n".join(lines[:index]).strip(), "\n".join(lines[index:]).strip(), name
    paragraphs = re.split(r"\n\s*\n", text.strip())
    if len(paragraphs) > 1 and _signature_block(paragraphs[-1]):
        return "\n\n".join(paragraphs[:-1]).strip(), paragraphs[-1].strip(), None
    return text.strip(), "", None


@dataclass(frozen=True)
class MessageParts:
    own: str  # what the writer wrote, greeting included, sign-off and signature excluded
    signature: str  # the sign-off and everything after it
    quoted: str  # earlier mail replied to
    sign_off_name: str | None  # a name written on the sign-off line ("Thanks, Jane")


def split_message(text: str, *, forwarded: bool = False) -> MessageParts:
    """The writer's own text, their signature and the quoted earlier mail.

    With `forwarded`, the forwarded mail counts as the writer's own text (people forward a
    colleague's request with "please see below"); its header lines are dropped and its own
    sign-off and signature are set aside like the forwarder's.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    start = quote_start(text)
    own, quoted = (text, "") if start is None else (text[:start], text[start:])
    stretches = [own]
    if forwarded and quoted:
        inner = drop_header_block(quoted)
        start = quote_start(inner)
        stretches.append(inner if start is None else inner[:start])
        quoted = "" if start is None else inner[start:]
    pieces = [_own_and_signature(stretch) for stretch in stretches]
    return MessageParts(
        own="\n\n".join(p[0] for p in pieces if p[0]),
        signature="\n\n".join(p[1] for p in pieces if p[1]),
        quoted=quoted.strip(),
        sign_off_name=pieces[0][2],
    )
