"""GET /analytics/: the admin dashboard, its window controls and its SVG plots."""

import re
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.analytics.factories import at

URL = reverse("analytics:dashboard")
MARCH = {"from": "2026-03-02", "to": "2026-03-15"}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def march(make_handoff, gil):
    make_handoff(at("2026-03-02 09:00"), claim=60, first_action=60, resolved=600)
    make_handoff(at("2026-03-03 09:00"), claim=120, first_action=120)
    make_handoff(at("2026-03-10 09:00"), claim=30, first_action=180)
    make_handoff(at("2026-03-11 09:00"), claim=90, first_action=300)
    make_handoff(at("2026-03-04 09:00"), claim=5, first_action=5, technician=gil)


def svgs(html: str) -> dict[str, ET.Element]:
    """Every inline chart, parsed as XML: a chart that is not well-formed fails here."""
    found = re.findall(r"<svg class=\"chart .*?</svg>", html, re.S)
    parsed = [ET.fromstring(svg) for svg in found]  # noqa: S314 - our own markup
    return {element.get("id"): element for element in parsed}


def test_admin_sees_the_window_numbers_and_three_plots(client_for, ada, march, record_timings):
    record_timings(ada, ["10", "12", "15", "20", "30"])
    response = client_for(ada).get(URL, MARCH)
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 Mar 2026 – 15 Mar 2026" in html
    assert "2 min 30 s" in html  # median time to first action of 60 120 180 300
    # The window's figure says it is the window's, beside the card's "this week".
    assert "median over these 14 days" in html
    assert "12.5 min" in html  # 15 − 2.5, minutes recovered
    charts = svgs(html)
    assert set(charts) == {"chart-trend", "chart-distribution", "chart-queue-wait"}
    for chart_id, chart in charts.items():
        assert chart.get("role") == "img"
        assert chart.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
        assert chart.find(f"{SVG}title").text
        assert chart.find(f"{SVG}desc").text
    trend = charts["chart-trend"]
    assert len(trend.findall(f".//{SVG}circle")) == 2  # two weeks with first actions
    assert "Manual baseline 15 min (n=5)" in ET.tostring(trend, encoding="unicode")
    bar_tips = [t.text for t in charts["chart-distribution"].iter(f"{SVG}title")][1:]
    assert sum(int(re.search(r": (\d+) handoff", tip).group(1)) for tip in bar_tips) == 4
    assert len(charts["chart-queue-wait"].findall(f".//{SVG}rect")) == 2


def test_no_inline_style_or_script_for_the_csp(client_for, ada, march):
    html = client_for(ada).get(URL, MARCH).content.decode()
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html
    for script in re.findall(r"<script[^>]*>", html):
        assert "src=" in script
    assert not re.search(r"\son[a-z]+\s*=", html)


def test_the_in_product_number_alone_is_never_minutes_recovered(client_for, ada, march):
    html = client_for(ada).get(URL, MARCH).content.decode()
    recovered = re.search(r'data-kpi="minutes-recovered">(.*?)</div>', html, re.S).group(1)
    assert "—" in recovered
    assert "0 of the 5" in recovered
    assert "Two metrics, compared only when both exist" in html


def test_empty_account_renders_empty_plots(client_for, ada):
    html = client_for(ada).get(URL).content.decode()
    charts = svgs(html)
    assert "No first actions in this window yet." in ET.tostring(
        charts["chart-trend"], encoding="unicode"
    )
    assert "Not measurable yet" in html


def test_foreign_account_data_is_never_visible(client_for, ada, gwen, march, record_timings):
    from resolutionflow.models import Role, User

    record_timings(ada, ["10", "12", "15", "20", "30"])
    globex_admin = User.objects.create(username="gina", account=gwen.account, role=Role.ADMIN)
    html = client_for(globex_admin).get(URL, MARCH).content.decode()
    assert "5 s" in html  # Globex's own handoff
    assert "2 min 30 s" not in html
    assert "Baseline timings (0)" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-03-15", "to": "2026-03-02"}, "is after"),
        ({"from": "not-a-date", "to": "2026-03-02"}, "is not a date"),
        ({"from": "2020-01-01", "to": "2026-03-02"}, "two years"),
    ],
)
def test_bad_window_is_400_with_the_reason_and_keeps_what_was_typed(
    client_for, ada, params, message
):
    response = client_for(ada).get(URL, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'value="{params["from"]}"' in html
    assert "Showing the last 30 days instead" in html


@pytest.mark.parametrize("params", [{"from": "9999-12-31"}, {"to": "0001-01-05"}])
def test_extreme_days_are_400_with_the_reason_not_a_500(client_for, ada, params):
    response = client_for(ada).get(URL, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert "must be between 2000-01-01 and" in html
    assert "Showing the last 30 days instead" in html


@pytest.mark.parametrize("persona", ["tess", "sam"])
def test_only_admins(client_for, personas, persona):
    assert client_for(personas[persona]).get(URL).status_code == 403


def test_post_is_405(client_for, ada):
    assert client_for(ada).post(URL).status_code == 405


def test_query_count_is_fixed(client_for, ada, march, make_handoff, record_timings):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    record_timings(ada, ["10", "12", "15", "20", "30"])
    client = client_for(ada)
    cache.clear()
    with CaptureQueriesContext(connection) as first:
        client.get(URL, MARCH)
    for day in range(2, 15):
        make_handoff(at(f"2026-03-{day:02d} 10:00"), claim=10, first_action=10)
    cache.clear()
    with CaptureQueriesContext(connection) as second:
        client.get(URL, MARCH)
    assert len(first) == len(second)
    # Session, user and account; the card's 30 days (rollup rows, the first escalation, then
    # cached; its past weeks live, none being built here; this week live); the window shown
    # (rollup rows, its weeks live), baseline, names; the card's baseline; the bell stream's
    # position. The same on every database.
    assert len(first) == 13
