"""The one reading of HTML mail: what each reader of it needs, and that no markup breaks it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.htmltext import DROP, MARK, html_to_text
from tests.test_replies import GMAIL_HTML, OUTLOOK_HTML


def test_html_to_text_keeps_lines_cells_and_mailto_addresses() -> None:
    text = html_to_text(
        "<p>Hello&nbsp;there,</p><table><tr><td>Name</td><td>Grace Liu</td></tr></table>"
        '<div>Mail <a href="mailto:grace.liu@x.co.uk">Grace</a></div>'
        "<blockquote>earlier mail</blockquote><style>p{}</style>"
    )
    assert "Hello there," in text.split("\n")
    assert "Name\tGrace Liu" in text.split("\n")
    assert "Mail Grace <grace.liu@x.co.uk>" in text
    assert "> earlier mail" in text
    assert "p{}" not in text


def test_html_only_mail_gives_plain_text() -> None:
    text = html_to_text(
        "<html><head><title>t</title><style>x{}</style></head><body>"
        "<p>Dear&nbsp;PCSE,</p><div>line one<br>line two</div>"
        "<table><tr><td>ODS</td><td>A81001</td></tr></table>"
        "<script>evil()</script></body></html>"
    )
    assert text.splitlines() == ["Dear PCSE,", "", "line one", "line two", "", "ODS\tA81001"]


def test_html_to_text_drops_quotes_and_styles() -> None:
    text = html_to_text(GMAIL_HTML.format(answer="Yes <b>approved</b>"), quotes=DROP)
    assert text == "Yes approved"
    assert "margin" not in html_to_text(OUTLOOK_HTML.format(answer="x"), quotes=DROP)


def test_unclosed_tags_do_not_leak_quoted_text() -> None:
    html = "<p>Approved<blockquote><p>REJECT quoted</blockquote><p>Dr Patel"
    lines = html_to_text(html, quotes=DROP).split("\n")
    assert [line for line in lines if line] == ["Approved", "Dr Patel"]


def test_quoted_mail_is_marked_for_request_readers_and_dropped_for_answers() -> None:
    markup = "<p>Please add Jane</p><blockquote><p>Earlier: remove Bob</p></blockquote>"
    assert html_to_text(markup).split("\n")[-1] == "> Earlier: remove Bob"
    assert "Bob" not in html_to_text(markup, quotes=DROP)


def test_text_after_outlooks_original_marker_is_no_answer() -> None:
    markup = '<p>Approved</p><div id="divRplyFwdMsg"><p>REJECT from the request</p></div>'
    assert html_to_text(markup, quotes=DROP) == "Approved"
    assert "REJECT from the request" in html_to_text(markup)


def test_preformatted_text_keeps_its_lines() -> None:
    assert html_to_text("<pre>Name: Jane\nODS:  A81001</pre>").split("\n") == [
        "Name: Jane",
        "ODS: A81001",
    ]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/ab pdivtr=\"'&;#x\n")), max_size=300))
@pytest.mark.parametrize("quotes", [MARK, DROP])
def test_any_html_converts_without_error(quotes: str, markup: str) -> None:
    assert isinstance(html_to_text(markup, quotes=quotes), str)


@pytest.mark.parametrize(
    ("markup", "read"),
    [
        ('<div style="display:none">APPROVE</div><div>Thanks</div>', "Thanks"),
        ('<div style="visibility: hidden">APPROVE</div><p>Thanks</p>', "Thanks"),
        ("<div hidden>APPROVE</div><p>Thanks</p>", "Thanks"),
        ("<div><del>APPROVE</del></div>", "(struck through: APPROVE)"),
        ("<p><s>not</s> APPROVE</p>", "(struck through: not) APPROVE"),
        (
            '<p><span style="text-decoration: line-through">APPROVE</span></p>',
            "(struck through: APPROVE)",
        ),
    ],
)
def test_an_answer_is_read_as_its_reader_sees_it(markup: str, read: str) -> None:
    assert html_to_text(markup, quotes=DROP) == read


def test_a_request_keeps_its_struck_and_styled_text() -> None:
    markup = '<p><del>old</del> new</p><p style="display:none">kept</p>'
    assert html_to_text(markup, quotes=MARK) == "old new\n\nkept"


def test_what_noscript_holds_is_read_as_mail_clients_show_it() -> None:
    html = "<div>APPROVE</div><noscript>Do not add Jane, she has left</noscript>"
    for quotes in (MARK, DROP):
        assert "Do not add Jane" in html_to_text(html, quotes=quotes)
