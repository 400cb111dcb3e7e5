"""Safe Markdown for assistant replies: markdown-it-py renders, nh3 sanitizes.

Assistant text is untrusted (Claude can be steered by what customers paste), so it goes
through two independent layers: markdown-it never emits raw HTML (``html`` is off, so
``<script>`` stays text), and nh3 then keeps only an allow-list of tags and no attributes
that point anywhere. Links from the model are never clickable: ``[text](address)`` shows
as "text (address)", an autolink as its address, an image as its Markdown source, so a
reader always sees where a link would have gone and decides for themselves.
"""

import html as htmlmod
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
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
ALLOWED_ATTRIBUTES = {"ol": {"start"}}


def _link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    # An autolink's text is its address already; a [text](address) link shows both.
    shown = "" if token.info == "auto" else str(token.attrGet("href") or "")
    env.setdefault("link_addresses", []).append(shown)
    return ""


def _link_close(self, tokens, idx, options, env) -> str:
    address = env["link_addresses"].pop() if env.get("link_addresses") else ""
    return f" ({htmlmod.escape(address)})" if address else ""


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # commonmark + tables and strikethrough; raw HTML off, so tags in the text stay text;
    # images off, so ![x](address) stays its source text; links rendered as plain text.
    parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    parser.disable("image")
    parser.add_render_rule("link_open", _link_open)
    parser.add_render_rule("link_close", _link_close)
    return parser


# Both renderings are pure functions of the text, and the same texts are shown again and
# again: an assessment's steps on every view of its handoff and every refetch of its card,
# a chat's replies on every load. Each process keeps the latest few hundred (a reply is at
# most a few kilobytes), so a text is parsed and sanitized once, not on every view.
RENDERED_KEPT = 512


def render_markdown(text: str) -> SafeString:
    """Markdown → sanitized HTML, safe to put in a page as is."""
    return mark_safe(_sanitized_html(text or ""))  # noqa: S308 - sanitized by nh3


@lru_cache(maxsize=RENDERED_KEPT)
def _sanitized_html(text: str) -> str:
    html = _parser().render(text, {})
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        link_rel=None,
        strip_comments=True,
    )


@lru_cache(maxsize=RENDERED_KEPT)
def markdown_to_text(text: str) -> str:
    """Markdown → one line of plain text (for previews): no markup, no tags, spaces folded."""
    html = _parser().render(text or "")
    plain = htmlmod.unescape(nh3.clean(html, tags=set()))
    return " ".join(plain.split())
