"""Template helpers for FlowPilot pages: ``{% load flowpilot %}``."""

from django import template
from django.utils.safestring import SafeString

from flowpilot.markdown import markdown_to_text, render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Render untrusted Markdown (assistant replies) as sanitized HTML."""
    return render_markdown(text)


@register.filter(name="markdown_text")
def markdown_text_filter(text: str) -> str:
    """Markdown as plain text, for one-line previews (escaped by the template as usual)."""
    return markdown_to_text(text)
