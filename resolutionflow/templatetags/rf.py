"""Small formatting filters shared by every app's templates."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def waited(start: datetime | None, end: datetime | None = None) -> str:
    """How long from ``start`` to ``end`` (default now), in words; "under a minute" first."""
    if start is None:
        return ""
    end = end or timezone.now()
    if (end - start).total_seconds() < 60:
        return "under a minute"
    return timesince(start, end)


@register.filter
def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was: "just now" under a minute, else "5 minutes ago"."""
    if moment is None:
        return ""
    now = now or timezone.now()
    if (now - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, now)} ago"
