"""Plain text from an HTML email body: the one reading of HTML mail in the service.

Block elements become line breaks, table cells tabs; styles, scripts and the head are
left out. What happens to the quoted earlier mail depends on who reads the text:

- `MARK` (intake's text of an HTML-only message, and the readers of requests): quoted
  mail stays, each line prefixed "> " so that the readers drop it by that prefix, as they
  do in plain text; a list item starts "- "; a `mailto:` link keeps its address after its
  words; a rule (`<hr>`) stays a line of underscores, as Outlook writes it above a reply.
- `DROP` (an approver's answer): quoted mail is left out by its markup (blockquote, the
  quote containers of Gmail, Yahoo and Thunderbird), and everything after Outlook's marker
  of the original message, so that no quoted word can be read as the approver's; so is
  text a style hides (`display: none`), and struck-through text is said to be so.

The markup is tamed first (core.markup), so reading is linear in its length whatever it is.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from core.markup import tame_markup

MARK = "mark"
DROP = "drop"

_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)
# <noscript> is not among them: mail clients run no scripts, so they show what it holds.
_HIDDEN_TAGS = frozenset({"script", "style", "head", "title", "template"})
_CELL_TAGS = frozenset({"td", "th"})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})
# Containers of the quoted original in the clients people use.
_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted", "moz-cite-prefix", "gmail_attr"})
# Outlook puts the original after one of these; everything from there on is quoted.
_QUOTE_START_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"}
)
_RULE = "________________________________"
# Text struck through, and text a style keeps off the screen: an approver's answer is read
# as its reader sees it.
_STRUCK_TAGS = frozenset({"del", "s", "strike"})
_NOT_SHOWN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_LINE_THROUGH = re.compile(r"text-decoration[a-z-]*\s*:[^;]*line-through", re.IGNORECASE)


def _struck(tag: str, attributes: dict[str, str]) -> bool:
    return tag in _STRUCK_TAGS or bool(_LINE_THROUGH.search(attributes.get("style", "")))


def _not_shown(attributes: dict[str, str]) -> bool:
    return "hidden" in attributes or bool(_NOT_SHOWN.search(attributes.get("style", "")))


class _TextMaker(HTMLParser):
    def __init__(self, quotes: str, struck: bool, addresses: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.drop_quotes = quotes == DROP
        self.mark_struck = struck or self.drop_quotes
        self.link_addresses = addresses and not self.drop_quotes
        self.parts: list[str] = []
        # Open elements: (tag, hides its content?, quotes it?, strikes it through?). HTML mail is
        # rarely tidy, so an end tag closes any element left open inside it.
        self.stack: list[tuple[str, bool, bool, bool]] = []
        self.hidden = 0
        self.quote_depth = 0
        self.pre = 0
        self.stopped = False
        self.link: str | None = None
        self.link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        attributes = {key.lower(): (value or "") for key, value in attrs}
        if self.drop_quotes and attributes.get("id", "").lower() in _QUOTE_START_IDS:
            self.stopped = True
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
            if tag == "hr" and not self.drop_quotes:
                self.parts.append(_RULE + "\n")
            elif tag == "li" and not self.drop_quotes:
                self.parts.append("- ")
        elif tag in _CELL_TAGS:
            self.parts.append("\t")
        if tag == "a":
            href = attributes.get("href", "")
            self.link = href[7:] if href.lower().startswith("mailto:") else None
            self.link_text = []
        if tag in _VOID_TAGS:
            return
        classes = set(attributes.get("class", "").lower().split())
        hides = tag in _HIDDEN_TAGS or (
            self.drop_quotes
            and (tag == "blockquote" or bool(classes & _QUOTE_CLASSES) or _not_shown(attributes))
        )
        strikes = self.mark_struck and not self.hidden and _struck(tag, attributes)
        if strikes:
            # "~~APPROVE~~" is no approval: the words stay, said to be struck through.
            self.parts.append(" (struck through: ")
        quotes = tag == "blockquote" and not self.drop_quotes
        self.stack.append((tag, hides, quotes, strikes))
        self.hidden += hides
        self.quote_depth += quotes
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if self.stopped or tag in _VOID_TAGS:
            return
        if any(entry[0] == tag for entry in self.stack):
            while self.stack:
                open_tag, hides, quotes, strikes = self.stack.pop()
                self.hidden -= hides
                self.quote_depth -= quotes
                self.pre -= open_tag == "pre"
                if strikes:
                    self.parts.append(") ")
                if open_tag == tag:
                    break
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "a" and self.link:
            address = self.link.split("?")[0]
            if address and address not in "".join(self.link_text) and self.link_addresses:
                self.parts.append(f" <{address}>")
            self.link = None

    def handle_data(self, data: str) -> None:
        if self.stopped or self.hidden:
            return
        text = re.sub(r"[^\S\n]+", " ", data) if self.pre else re.sub(r"\s+", " ", data)
        if self.link is not None:
            self.link_text.append(text)
        if self.quote_depth:
            text = text.replace("\n", "\n" + "> " * self.quote_depth)
            if not self.parts or self.parts[-1].endswith("\n"):
                text = "> " * self.quote_depth + text.lstrip()
        self.parts.append(text)


def html_to_text(
    markup: str, *, quotes: str = MARK, struck: bool = False, addresses: bool = True
) -> str:
    """The text of an HTML body; `quotes` says what becomes of quoted mail (MARK or DROP).
    Struck-through text is said to be so with DROP, or with `struck`; a `mailto:` link's
    address follows its words with MARK, unless not `addresses`."""
    maker = _TextMaker(quotes, struck, addresses)
    try:
        maker.feed(tame_markup(markup or ""))  # linear time, whatever the markup
        maker.close()
    except (AssertionError, ValueError):
        pass  # html.parser is lenient; what it still chokes on keeps what was read so far
    text = "".join(maker.parts).replace("\xa0", " ")
    if quotes == DROP:
        lines = [" ".join(line.split()) for line in text.split("\n")]
        compact: list[str] = []
        for line in lines:
            if line or (compact and compact[-1]):
                compact.append(line)
        return "\n".join(compact).strip()
    lines = [re.sub(r" +", " ", line).strip(" ") for line in text.split("\n")]
    # A match starts only where a run of white space does: linear in the line.
    lines = [re.sub(r"(?<!\s)\s*\t\s*", "\t", line).strip("\t") for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
