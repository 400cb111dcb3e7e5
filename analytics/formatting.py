"""Durations and numbers as people read them, shared by the templates and the charts."""

import math


def duration_text(seconds: float | None) -> str:
    """42 s, 4 min 12 s, 1 h 05 min: precise enough to compare, short enough to scan."""
    if seconds is None:
        return "—"
    total = round(seconds)
    sign = "−" if total < 0 else ""
    total = abs(total)
    if total < 60:
        return f"{sign}{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs:02d} s" if secs else f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours} h {minutes:02d} min"


def duration_short(seconds: float | None) -> str:
    """Axis labels: 30s, 4m, 1.5m, 2h."""
    if seconds is None:
        return ""
    if abs(seconds) < 60:
        return f"{number(seconds)}s"
    if abs(seconds) < 3600:
        return f"{number(seconds / 60)}m"
    return f"{number(seconds / 3600)}h"


def number(value: float | None, digits: int = 1) -> str:
    """12, 12.5, −3.2: no trailing .0, a real minus sign."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    rounded = round(value, digits)
    text = f"{rounded:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{rounded:.0f}"
    if text in ("-0", ""):
        text = "0"
    return text.replace("-", "−")
