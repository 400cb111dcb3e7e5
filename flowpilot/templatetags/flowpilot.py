"""Template helpers for FlowPilot pages: ``{% load flowpilot %}``."""

from django import template
from django.utils.safestring import SafeString

from flowpilot.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Render untrusted Markdown (assistant replies) as sanitized HTML."""
    return render_markdown(text)


@register.filter
def get_item(mapping, key):
    """``mapping|get_item:key``: a dict lookup by a variable key ("" when absent)."""
    if not mapping:
        return ""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""
