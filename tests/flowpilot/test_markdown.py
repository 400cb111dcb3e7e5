"""Assistant Markdown renders to safe HTML: no raw HTML, no script links, safe link targets."""

import pytest
from django.template import Context, Template
from django.utils.safestring import SafeString

from flowpilot.markdown import render_markdown


def test_common_markdown_renders():
    html = render_markdown(
        "This looks like **DNS**, *probably*.\n\n1. Flush\n2. Retry\n\n- a\n- b\n\n"
        "Run `ipconfig /all`:\n\n```powershell\nGet-DnsClientServerAddress\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~"
    )
    assert isinstance(html, SafeString)
    assert "<strong>DNS</strong>" in html and "<em>probably</em>" in html
    assert "<ol>" in html and "<li>Flush</li>" in html and "<ul>" in html
    assert "<code>ipconfig /all</code>" in html
    assert "<pre><code>Get-DnsClientServerAddress\n</code></pre>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>old</s>" in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<iframe src='https://evil.example'></iframe>",
        '<a href="https://evil.example" onclick="steal()">x</a>',
        "<style>body{display:none}</style>",
        "<!-- comment --><b>bold</b>",
    ],
)
def test_raw_html_is_shown_as_text_never_as_markup(text):
    html = render_markdown(text)
    for tag in ("<script", "<img", "<iframe", "<a ", "<style", "<b>", "<!--"):
        assert tag not in html
    assert "&lt;" in html  # the text is still there for the reader, escaped


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        "<javascript:alert(1)>",
        "![img](javascript:alert(1))",
    ],
)
def test_dangerous_links_lose_their_target(link):
    html = render_markdown(link)
    assert 'href="javascript' not in html.lower()
    assert 'href="data:' not in html and 'href="vbscript' not in html
    assert "<img" not in html


def test_links_from_the_model_are_plain_text_with_the_address_visible():
    # Issue 11 #5: customer text can steer the model into writing links; none is
    # clickable, and the reader sees exactly where it would have gone.
    html = render_markdown(
        "See [the docs](https://learn.microsoft.com/x) and <https://example.com>.\n\n"
        "[Reset your password here](https://evil.example/login) ![x](https://evil.example/p.png)"
        "\n\n[ref][1]\n\n[1]: https://evil.example/ref"
    )
    assert "<a" not in html and "href" not in html and "<img" not in html
    assert "the docs (https://learn.microsoft.com/x)" in html
    assert "https://example.com." in html
    assert "Reset your password here (https://evil.example/login)" in html
    assert "(https://evil.example/p.png)" in html
    assert "ref (https://evil.example/ref)" in html


def test_raw_anchor_tags_never_survive_sanitising():
    from flowpilot.markdown import ALLOWED_TAGS

    assert "a" not in ALLOWED_TAGS


def test_chip_details_and_task_details_use_the_same_link_free_rendering():
    template = Template("{% load flowpilot %}{{ detail|markdown }}")
    html = template.render(Context({"detail": "Open [portal](https://evil.example/x)"}))
    assert "<a" not in html and "portal (https://evil.example/x)" in html


def test_no_classes_or_styles_reach_the_page():
    html = render_markdown('```x" onmouseover="alert(1)\ncode\n```\n\n*a*{: .toast}')
    assert "class=" not in html and "style=" not in html and "onmouseover" not in html


def test_empty_and_none_render_empty():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""


def test_the_template_filter_renders_and_marks_safe():
    template = Template("{% load flowpilot %}<div>{{ body|markdown }}</div>")
    html = template.render(Context({"body": "**hi** <script>x</script>"}))
    assert html == "<div><p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\n</div>"


def test_markdown_to_text_gives_a_readable_one_line_preview():
    from flowpilot.markdown import markdown_to_text

    text = (
        "Closest match: **VPN connection**.\n\n- Does it work on a *hotspot*?\n"
        "1. Test `Test-NetConnection` & <b>x</b>"
    )
    assert markdown_to_text(text) == (
        "Closest match: VPN connection. Does it work on a hotspot? "
        "Test Test-NetConnection & <b>x</b>"
    )


def test_a_text_shown_again_is_not_parsed_again(monkeypatch):
    """The handoff screen shows the same steps and replies on every view: rendered once."""
    from flowpilot import markdown

    parsed = []
    parser = markdown._parser()

    class CountingParser:
        def render(self, text, env=None):
            parsed.append(text)
            return parser.render(text, env)

    monkeypatch.setattr(markdown, "_parser", lambda: CountingParser())
    text = "Restart the **print spooler** (a text no other test renders)"
    first = render_markdown(text)
    again = render_markdown(text)
    assert (
        again
        == first
        == "<p>Restart the <strong>print spooler</strong> (a text no other test renders)</p>\n"
    )
    assert isinstance(again, SafeString)
    assert markdown.markdown_to_text(text) == markdown.markdown_to_text(text)
    assert parsed == [text, text]  # once as HTML, once as text
