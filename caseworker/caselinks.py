"""Every case reference shown on a page is a link to its case: the `case_links` filter."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# A bare reference, as the directory's reasons and the history write it.
BARE_REF = re.compile(r"\bPCSE-\d{4}-\d{6}\b")


def case_links(text: object) -> Markup:
    """The text, escaped, with each case reference made a link to the case page."""
    escaped = str(escape("" if text is None else text))
    return Markup(
        BARE_REF.sub(lambda m: f'<a href="/cases/{m.group(0)}">{m.group(0)}</a>', escaped)
    )
