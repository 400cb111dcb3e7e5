"""The SVG helpers: well-formed, accessible, escaped, and CSP-safe (no style attribute)."""

import xml.etree.ElementTree as ET

import pytest

from analytics import charts
from analytics.charts import Point

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own markup, parsed to check it


def assert_accessible_and_csp_safe(svg: str, chart_id: str) -> ET.Element:
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    assert root.find(f"{SVG}title").get("id") == f"{chart_id}-title"
    assert root.find(f"{SVG}desc").get("id") == f"{chart_id}-desc"
    assert all("style" not in element.attrib for element in root.iter())
    assert root.find(f".//{SVG}script") is None
    return root


def test_line_chart_draws_points_a_gap_and_the_reference():
    points = [Point("2 Mar", 4.0), Point("9 Mar", None), Point("16 Mar", 3.0), Point("23", 2.0)]
    svg = charts.line_chart(
        points,
        chart_id="trend",
        title="Median",
        description="Three weeks",
        unit="minutes",
        reference=15.0,
        reference_label="Manual baseline 15 min (n=5)",
    )
    root = assert_accessible_and_csp_safe(svg, "trend")
    assert len(root.findall(f".//{SVG}circle")) == 3
    # The gap leaves the first point alone: one path of two points, one area under it.
    lines = [p for p in root.iter(f"{SVG}path") if p.get("class") == "chart-line"]
    assert len(lines) == 1 and lines[0].get("d").count("L") == 1
    reference = root.find(f".//{SVG}g[@class='chart-reference']")
    assert reference.find(f"{SVG}text").text == "Manual baseline 15 min (n=5)"
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-tick"]
    assert ticks[:5] == ["0", "5", "10", "15", "20"]  # the axis reaches past the baseline


def test_labels_and_titles_are_escaped():
    svg = charts.bar_chart(
        [Point("<b>", 1.0, tooltip='"><script>alert(1)</script>')],
        chart_id="x",
        title="A & B",
        description="<desc>",
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = assert_accessible_and_csp_safe(svg, "x")
    assert root.find(f"{SVG}title").text == "A & B"
    assert root.find(f".//{SVG}g[@class='chart-bar']/{SVG}title").text.startswith('"><script>')


def test_bar_heights_follow_the_values():
    svg = charts.bar_chart(
        [Point("a", 2.0), Point("b", 4.0), Point("c", None)],
        chart_id="b",
        title="t",
        description="d",
    )
    root = assert_accessible_and_csp_safe(svg, "b")
    rects = root.findall(f".//{SVG}g[@class='chart-bar']/{SVG}rect")
    assert len(rects) == 2
    heights = [float(rect.get("height")) for rect in rects]
    assert heights[1] == pytest.approx(heights[0] * 2)


def test_histogram_uses_whole_number_ticks_and_edge_labels():
    bins = [Point("0", 3), Point("1m", 9), Point("2m", 1), Point("≥3m", 2)]
    svg = charts.histogram(bins, chart_id="h", title="t", description="d", unit="handoffs")
    root = assert_accessible_and_csp_safe(svg, "h")
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-tick"]
    assert ticks[:4] == ["0", "5", "10", "0"]  # y ticks 0 5 10, then the first x label
    assert "≥3m" in ticks


@pytest.mark.parametrize("draw", [charts.line_chart, charts.bar_chart, charts.histogram])
def test_no_data_draws_an_empty_state_that_says_so(draw):
    svg = draw(
        [Point("a", None), Point("b", None)],
        chart_id="e",
        title="t",
        description="d",
        empty_message="No first actions in this window yet.",
    )
    root = assert_accessible_and_csp_safe(svg, "e")
    assert root.find(f"{SVG}desc").text == "No first actions in this window yet."
    assert root.find(f".//{SVG}text").text == "No first actions in this window yet."


def test_many_weeks_thin_out_the_labels():
    points = [Point(f"w{index}", float(index)) for index in range(105)]
    root = parse(charts.line_chart(points, chart_id="l", title="t", description="d"))
    xlabels = root.find(f".//{SVG}g[@class='chart-xlabels']")
    assert len(xlabels) <= charts.MAX_X_LABELS + 1
    assert not [t for t in root.iter(f"{SVG}text") if t.get("class") == "chart-value"]


@pytest.mark.parametrize(
    ("maximum", "integer", "ticks"),
    [
        (7.3, False, [0, 2, 4, 6, 8]),
        (16, False, [0, 5, 10, 15, 20]),
        (9, True, [0, 5, 10]),
        (3, True, [0, 1, 2, 3]),
        (0.4, False, [0, 0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_axis_ticks_are_round(maximum, integer, ticks):
    assert charts.axis_ticks(maximum, integer=integer) == pytest.approx(ticks)
