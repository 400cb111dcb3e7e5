"""Small server-rendered SVG charts: a line chart, a histogram and a bar chart.

Charts are inline ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that say what they
show, and a ``<title>`` on every mark for a hover tooltip. The Content-Security-Policy forbids
inline styles (``style-src 'self'``), so nothing here writes a ``style`` attribute: colours
and type come from CSS classes in app.css (``.chart-*``), geometry from SVG presentation
attributes. Every text goes through ``format_html``, so labels are escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from analytics.formatting import number

MAX_X_LABELS = 10
MAX_VALUE_LABELS = 16

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Point:
    """One mark: its axis label, its value (None leaves a gap) and its tooltip."""

    label: str
    value: float | None
    tooltip: str = ""


@dataclass(frozen=True)
class Frame:
    """The drawing: a viewBox of ``width`` × ``height`` around a plot area."""

    width: int = 640
    height: int = 250
    left: int = 48
    right: int = 16
    top: int = 22
    bottom: int = 34

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def floor(self) -> float:
        return self.top + self.plot_height

    def y(self, value: float, top_value: float) -> float:
        return self.floor - (value / top_value * self.plot_height if top_value else 0)


WIDE = Frame(width=1160, height=270)


def nice_step(raw: float, *, integer: bool = False) -> float:
    """The round step at or above ``raw``: 1, 2, 2.5 or 5 × 10ⁿ (no 2.5 for counts)."""
    if raw <= 0:
        return 1.0
    if integer and raw <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    factors = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    for factor in factors:
        if raw <= factor * magnitude * (1 + 1e-9):
            return factor * magnitude
    return 10 * magnitude


def axis_ticks(maximum: float, *, count: int = 4, integer: bool = False) -> list[float]:
    """Round ticks from 0 to at least ``maximum``, about ``count`` steps."""
    step = nice_step(max(maximum, 1e-9) / count, integer=integer)
    top = step * max(1, math.ceil(maximum / step - 1e-9))
    return [step * index for index in range(round(top / step) + 1)]


def _f(value: float) -> str:
    """Coordinates with two decimals at most: exact enough, short markup."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(
    frame: Frame, chart_id: str, kind: str, title: str, description: str, body: Sequence[str]
) -> SafeString:
    head = format_html(
        '<svg class="chart chart-kind-{kind}" id="{id}" viewBox="0 0 {w} {h}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{id}-title {id}-desc">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>',
        kind=kind,
        id=chart_id,
        w=frame.width,
        h=frame.height,
        title=title,
        desc=description,
    )
    # Every part was built by format_html (escaped) or from numbers.
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308


def _empty(frame: Frame, chart_id: str, kind: str, title: str, message: str) -> SafeString:
    box = format_html(
        '<rect class="chart-empty-box" x="{x}" y="{y}" width="{w}" height="{h}" rx="8"/>'
        '<text class="chart-empty" x="{cx}" y="{cy}" text-anchor="middle">{msg}</text>',
        x=frame.left,
        y=frame.top,
        w=_f(frame.plot_width),
        h=_f(frame.plot_height),
        cx=_f(frame.left + frame.plot_width / 2),
        cy=_f(frame.top + frame.plot_height / 2 + 4),
        msg=message,
    )
    return _svg(frame, chart_id, kind, title, message, [box])


def _gridlines(frame: Frame, ticks: Sequence[float], fmt: Formatter, unit: str) -> str:
    top = ticks[-1]
    parts = ['<g class="chart-gridlines" aria-hidden="true">']
    for tick in ticks:
        y = frame.y(tick, top)
        parts.append(
            format_html(
                '<line x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>'
                '<text class="chart-tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>',
                x1=frame.left,
                x2=_f(frame.left + frame.plot_width),
                y=_f(y),
                tx=frame.left - 8,
                ty=_f(y + 4),
                label=fmt(tick),
            )
        )
    if unit:
        parts.append(
            format_html(
                '<text class="chart-unit" x="{x}" y="{y}" text-anchor="end">{unit}</text>',
                x=frame.left + 4,
                y=frame.top - 10,
                unit=unit,
            )
        )
    parts.append(
        format_html(
            '<line class="chart-axis" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>',
            x1=frame.left,
            x2=_f(frame.left + frame.plot_width),
            y=_f(frame.floor),
        )
    )
    parts.append("</g>")
    return "".join(parts)


def _x_labels(frame: Frame, labels: Sequence[tuple[float, str, str]]) -> str:
    """Labels under the plot: (x, text, anchor), every n-th when there are many."""
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    last = len(labels) - 1
    parts = ['<g class="chart-xlabels" aria-hidden="true">']
    for index, (x, label, anchor) in enumerate(labels):
        # Every n-th label, and the last one when it does not crowd the one before it.
        if index % every and not (index == last and last % every >= every / 2):
            continue
        parts.append(
            format_html(
                '<text class="chart-tick" x="{x}" y="{y}" text-anchor="{anchor}">{label}</text>',
                x=_f(x),
                y=_f(frame.floor + 18),
                anchor=anchor,
                label=label,
            )
        )
    parts.append("</g>")
    return "".join(parts)


def _value_label(x: float, y: float, text: str) -> str:
    return format_html(
        '<text class="chart-value" x="{}" y="{}" text-anchor="middle">{}</text>',
        _f(x),
        _f(y),
        text,
    )


def line_chart(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    description: str,
    unit: str = "",
    fmt: Formatter = number,
    reference: float | None = None,
    reference_label: str = "",
    empty_message: str = "No data in this window yet.",
    frame: Frame = WIDE,
) -> SafeString:
    """Values over evenly spaced categories (weeks); None leaves a gap in the line. An
    optional dashed reference line (the manual baseline) runs across the plot."""
    values = [point.value for point in points if point.value is not None]
    if not values:
        return _empty(frame, chart_id, "line", title, empty_message)
    # A little headroom, so the top point's label and the reference line clear the edge.
    ticks = axis_ticks(max([*values, reference or 0]) * 1.08)
    top = ticks[-1]
    # Points sit in the middle of equal slots, so the first and last are not on the edges.
    slot = frame.plot_width / len(points)
    xs = [frame.left + slot * (index + 0.5) for index in range(len(points))]
    body = [_gridlines(frame, ticks, fmt, unit)]

    segments: list[list[tuple[float, float]]] = [[]]
    for x, point in zip(xs, points, strict=True):
        if point.value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((x, frame.y(point.value, top)))
    for segment in filter(None, segments):
        if len(segment) < 2:
            continue
        line = " ".join(
            f"{'M' if index == 0 else 'L'}{_f(x)},{_f(y)}" for index, (x, y) in enumerate(segment)
        )
        floor = _f(frame.floor)
        area = f"{line} L{_f(segment[-1][0])},{floor} L{_f(segment[0][0])},{floor} Z"
        body.append(format_html('<path class="chart-area" d="{}"/>', area))
        body.append(format_html('<path class="chart-line" d="{}" fill="none"/>', line))

    if reference is not None:
        y = frame.y(reference, top)
        body.append(
            format_html(
                '<g class="chart-reference"><line x1="{x1}" x2="{x2}" y1="{y}" y2="{y}" '
                'stroke-dasharray="6 5"/><text x="{tx}" y="{ty}" text-anchor="end">{label}</text>'
                "<title>{label}</title></g>",
                x1=frame.left,
                x2=_f(frame.left + frame.plot_width),
                y=_f(y),
                tx=_f(frame.left + frame.plot_width - 4),
                ty=_f(y - 7),
                label=reference_label,
            )
        )

    show_values = len(points) <= MAX_VALUE_LABELS
    marks = ['<g class="chart-points">']
    for x, point in zip(xs, points, strict=True):
        if point.value is None:
            continue
        y = frame.y(point.value, top)
        marks.append(
            format_html(
                '<g class="chart-point"><circle cx="{x}" cy="{y}" r="{r}"/>{label}'
                "<title>{tip}</title></g>",
                x=_f(x),
                y=_f(y),
                r=4.5 if show_values else 3,
                label=_value_label(x, y - 11, fmt(point.value)) if show_values else "",
                tip=point.tooltip or f"{point.label}: {fmt(point.value)}",
            )
        )
    marks.append("</g>")
    body.append("".join(marks))
    body.append(_x_labels(frame, [(x, p.label, "middle") for x, p in zip(xs, points, strict=True)]))
    return _svg(frame, chart_id, "line", title, description, body)


def _bars(
    points: Sequence[Point],
    *,
    chart_id: str,
    kind: str,
    title: str,
    description: str,
    unit: str,
    fmt: Formatter,
    gap: float,
    integer: bool,
    edge_labels: bool,
    empty_message: str,
    frame: Frame,
) -> SafeString:
    values = [point.value for point in points if point.value is not None]
    if not any(values):
        return _empty(frame, chart_id, kind, title, empty_message)
    ticks = axis_ticks(max(values), integer=integer)
    top = ticks[-1]
    slot = frame.plot_width / len(points)
    bar_width = max(1.0, slot * (1 - gap))
    show_values = len(points) <= MAX_VALUE_LABELS
    marks = ['<g class="chart-bars">']
    for index, point in enumerate(points):
        if point.value is None:
            continue
        x = frame.left + index * slot + (slot - bar_width) / 2
        y = frame.y(point.value, top)
        marks.append(
            format_html(
                '<g class="chart-bar"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}"/>'
                "{value}<title>{tip}</title></g>",
                x=_f(x),
                y=_f(y),
                w=_f(bar_width),
                h=_f(frame.floor - y),
                rx=3 if bar_width > 10 else 0,
                value=_value_label(x + bar_width / 2, y - 6, fmt(point.value))
                if show_values and point.value
                else "",
                tip=point.tooltip or f"{point.label}: {fmt(point.value)}",
            )
        )
    marks.append("</g>")
    if edge_labels:
        # Histogram bins are labelled at their lower edge; the open last bin in its middle.
        labels = [
            (frame.left + index * slot, point.label, "middle")
            for index, point in enumerate(points[:-1])
        ]
        labels.append((frame.left + (len(points) - 0.5) * slot, points[-1].label, "middle"))
    else:
        labels = [
            (frame.left + (index + 0.5) * slot, point.label, "middle")
            for index, point in enumerate(points)
        ]
    body = [_gridlines(frame, ticks, fmt, unit), "".join(marks), _x_labels(frame, labels)]
    return _svg(frame, chart_id, kind, title, description, body)


def bar_chart(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    description: str,
    unit: str = "",
    fmt: Formatter = number,
    empty_message: str = "No data in this window yet.",
    frame: Frame = Frame(),  # noqa: B008 - frozen dataclass, shared safely
) -> SafeString:
    """One bar per category (a week), value labels above when there is room."""
    return _bars(
        points,
        chart_id=chart_id,
        kind="bar",
        title=title,
        description=description,
        unit=unit,
        fmt=fmt,
        gap=0.38,
        integer=False,
        edge_labels=False,
        empty_message=empty_message,
        frame=frame,
    )


def histogram(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    description: str,
    unit: str = "",
    empty_message: str = "No data in this window yet.",
    frame: Frame = Frame(),  # noqa: B008 - frozen dataclass, shared safely
) -> SafeString:
    """Counts per adjacent bin, the bars nearly touching. Each point's label names its
    lower edge (the last, open-ended bin names itself, e.g. "≥10m")."""
    return _bars(
        points,
        chart_id=chart_id,
        kind="histogram",
        title=title,
        description=description,
        unit=unit,
        fmt=lambda value: number(value, 0),
        gap=0.08,
        integer=True,
        edge_labels=True,
        empty_message=empty_message,
        frame=frame,
    )
