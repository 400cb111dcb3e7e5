"""Safe Markdown for assistant replies: markdown-it-py renders, nh3 sanitizes.

Assistant text is untrusted (Claude can be steered by what customers paste), so it goes
through two independent layers: markdown-it never emits raw HTML (``html`` is off, so
``<script>`` stays text), and nh3 then keeps only an allow-list of tags and attributes,
only http(s)/mailto links, and gives every link ``rel="noopener noreferrer"`` and a new tab.
"""

import html as htmlmod
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "a",
        "blockquote",
        "br",
        "code",
        "del",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
# No class or style anywhere: a reply must not be able to borrow the app's own CSS classes.
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # commonmark + tables and strikethrough; raw HTML off, so tags in the text stay text.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> SafeString:
    """Markdown → sanitized HTML, safe to put in a page as is."""
    html = _parser().render(text or "")
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return mark_safe(cleaned)  # noqa: S308 - sanitized by nh3 just above


def markdown_to_text(text: str) -> str:
    """Markdown → one line of plain text (for previews): no markup, no tags, spaces folded."""
    html = _parser().render(text or "")
    plain = htmlmod.unescape(nh3.clean(html, tags=set()))
    return " ".join(plain.split())
