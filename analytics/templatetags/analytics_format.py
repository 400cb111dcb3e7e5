"""Template filters for durations and numbers: {% load analytics_format %}."""

from django import template

from analytics import formatting

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """{{ 252|duration }} → 4 min 12 s."""
    return formatting.duration_text(seconds)


@register.filter
def num(value: float | None, digits: int = 1) -> str:
    """{{ 12.0|num }} → 12; {{ 3.14159|num:2 }} → 3.14."""
    return formatting.number(None if value is None else float(value), int(digits))


@register.filter
def absolute(value: float | None) -> float | None:
    return None if value is None else abs(value)
