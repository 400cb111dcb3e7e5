"""GET /analytics/card: the metric card the queue page loads with htmx."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from analytics.metrics import Window

URL = reverse("analytics:card")


def this_week_start():
    return Window.week_of(timezone.localdate()).start_at


def test_card_is_a_fragment_with_this_week_against_last_week(client_for, sam, make_handoff):
    monday = this_week_start()
    make_handoff(monday + timedelta(seconds=1), claim=10, first_action=120)
    make_handoff(monday + timedelta(seconds=2), claim=10, first_action=240)
    make_handoff(monday - timedelta(days=3), claim=10, first_action=600)
    response = client_for(sam).get(URL, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<body" not in html
    assert "data-metric-card" in html
    assert 'data-metric="this-week-median">3 min<' in html  # median of 2 min and 4 min
    assert 'data-metric="this-week-n">2<' in html
    assert "last week 10 min · n = 1" in html
    # 2 handoffs against 1: no "faster" or "slower" from that.
    assert "faster" not in html and "slower" not in html
    assert "too few handoffs to compare weeks yet (needs 5 in each)" in html

    for second in range(3, 6):
        make_handoff(monday + timedelta(seconds=second), claim=10, first_action=180)
    for day in range(4):
        make_handoff(monday - timedelta(days=2 + day / 10), claim=10, first_action=600)
    html = client_for(sam).get(URL, headers={"HX-Request": "true"}).content.decode()
    assert "last week 10 min · n = 5" in html
    assert "70% faster" in html  # 3 min against 10, five handoffs each
    assert "too few" not in html


def test_minutes_recovered_only_with_five_timings(client_for, ada, make_handoff, record_timings):
    make_handoff(this_week_start() + timedelta(seconds=1), claim=10, first_action=120)
    record_timings(ada, ["10", "12", "15", "20"])
    client = client_for(ada)
    html = client.get(URL).content.decode()
    assert "recovered per escalation" not in html
    assert "record 1 more timing" in html
    assert reverse("analytics:baseline") in html  # admins get the way to fix it

    record_timings(ada, ["30"])
    html = client.get(URL).content.decode()
    # 15 min baseline median − 2 min = 13 min.
    assert "13 min</span>" in html
    assert "recovered per escalation" in html


def test_engineers_get_no_link_to_the_admin_form(client_for, sam, record_timings):
    record_timings(sam, ["10"])
    html = client_for(sam).get(URL).content.decode()
    assert reverse("analytics:baseline") not in html


def test_another_accounts_card_counts_only_its_own(client_for, gwen, make_handoff):
    make_handoff(this_week_start() + timedelta(seconds=1), claim=10, first_action=120)
    html = client_for(gwen).get(URL).content.decode()
    assert 'data-metric="this-week-n">0<' in html
    assert 'data-metric="this-week-median">—<' in html


def test_technician_is_refused(client_for, tess):
    assert client_for(tess).get(URL).status_code == 403


def test_post_is_405(client_for, sam):
    assert client_for(sam).post(URL).status_code == 405
