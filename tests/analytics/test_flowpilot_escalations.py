"""GET /analytics/flowpilot/escalations: the JSON the wedge is proved with."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.analytics.factories import at

URL = reverse("analytics:flowpilot_escalations")
MARCH = {"from": "2026-03-02", "to": "2026-03-15"}


@pytest.fixture
def march(make_handoff, gil):
    """Time to first action 60 120 180 300 (median 150 s); Globex's 5 s never counted."""
    make_handoff(at("2026-03-02 09:00"), claim=60, first_action=60, resolved=600)
    make_handoff(at("2026-03-03 09:00"), claim=120, first_action=120)
    make_handoff(at("2026-03-10 09:00"), claim=30, first_action=180, released=60)
    make_handoff(at("2026-03-11 09:00"), claim=90, first_action=300)
    make_handoff(at("2026-03-12 09:00"))
    make_handoff(at("2026-03-04 09:00"), claim=5, first_action=5, technician=gil)


def test_engineer_gets_the_numbers_of_the_window(client_for, sam, march, record_timings):
    record_timings(sam, ["10", "12", "15", "20", "30"])
    response = client_for(sam).get(URL, MARCH)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["window"] == {
        "from": "2026-03-02",
        "to": "2026-03-15",
        "days": 14,
        "timezone": "UTC",
    }
    assert body["counts"] == {
        "escalated": 5,
        "claimed": 4,
        "first_action": 4,
        "released": 1,
        "resolved": 1,
    }
    # 60 120 180 300: median 150, p75 180 + 120 × 0.25 = 210, p90 180 + 120 × 0.7 = 264.
    assert body["time_to_first_action"] == {
        "n": 4,
        "median": 150.0,
        "p75": 210.0,
        "p90": 264.0,
        "unit": "seconds",
    }
    # 30 60 90 120: median 75, p75 90 + 30 × 0.25 = 97.5, p90 90 + 30 × 0.7 = 111.
    assert body["time_to_claim"] == {
        "n": 4,
        "median": 75.0,
        "p75": 97.5,
        "p90": 111.0,
        "unit": "seconds",
    }
    assert body["baseline"] == {"n": 5, "median_minutes": 15.0, "required": 5}
    # 15 − 2.5 = 12.5 min; 4 acted on since 2 March 09:00 (13 days 15 h = 1.946 weeks):
    # 2.06 a week × 12.5 ÷ 60 = 0.43 h.
    assert body["minutes_recovered_per_escalation"] == 12.5
    assert body["escalations_per_week"] == 2.06
    assert body["hours_saved_per_week"] == 0.43
    assert body["reason"] is None
    assert body["pilot_check"]["passed"] is False
    assert [week["week"] for week in body["weekly"]] == ["2026-03-02", "2026-03-09"]
    assert body["weekly"][0]["median_time_to_first_action"] == 90.0
    assert body["weekly"][1]["median_time_to_first_action"] == 240.0
    assert body["weekly"][1]["escalated"] == 3


def test_fewer_than_five_timings_give_null_and_the_reason(client_for, ada, march, record_timings):
    record_timings(ada, ["10", "12", "15", "20"])
    body = client_for(ada).get(URL, MARCH).json()
    assert body["minutes_recovered_per_escalation"] is None
    assert body["hours_saved_per_week"] is None
    assert body["reason_code"] == "baseline_too_small"
    assert "4 of the 5" in body["reason"]
    assert body["time_to_first_action"]["median"] == 150.0


def test_foreign_account_data_is_never_visible(client_for, gwen, march, record_timings, ada):
    record_timings(ada, ["10", "12", "15", "20", "30"])
    body = client_for(gwen).get(URL, MARCH).json()
    assert body["counts"]["escalated"] == 1
    assert body["time_to_first_action"]["median"] == 5.0
    assert body["baseline"]["n"] == 0
    # No parameter names an account: there is nothing to ask for another one with.
    body = client_for(gwen).get(URL, {**MARCH, "account": ada.account_id}).json()
    assert body["counts"]["escalated"] == 1


def test_technician_gets_a_json_403(client_for, tess):
    response = client_for(tess).get(URL)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_post_is_405(client_for, sam):
    assert client_for(sam).post(URL).status_code == 405


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_default_window_is_the_last_30_days(client_for, sam):
    body = client_for(sam).get(URL).json()
    today = timezone.localdate()
    assert body["window"]["to"] == today.isoformat()
    assert body["window"]["from"] == (today - timedelta(days=29)).isoformat()
    assert body["window"]["days"] == 30


def test_only_to_gives_the_30_days_ending_there(client_for, sam):
    body = client_for(sam).get(URL, {"to": "2026-03-31"}).json()
    assert body["window"]["from"] == "2026-03-02"


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"from": "2026-03-15", "to": "2026-03-02"}, "from", "after"),
        ({"from": "yesterday"}, "from", "YYYY-MM-DD"),
        ({"from": "2026-03-01", "to": "2026-02-30"}, "to", "not a date"),
        ({"from": "2024-03-01", "to": "2026-03-02"}, "window", "two years"),
    ],
)
def test_bad_windows_are_400_with_a_reason(client_for, sam, params, field, text):
    response = client_for(sam).get(URL, params)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert text in errors[field][0]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "9999-12-31"}, "from"), ({"to": "0001-01-05"}, "to"), ({"to": "9999-12-31"}, "to")],
)
def test_extreme_days_are_400_with_a_reason_not_a_500(client_for, sam, params, field):
    response = client_for(sam).get(URL, params)
    assert response.status_code == 400
    assert "must be between 2000-01-01 and" in response.json()["errors"][field][0]


def test_a_two_year_window_is_allowed(client_for, sam):
    response = client_for(sam).get(URL, {"from": "2024-03-01", "to": "2026-02-28"})
    assert response.status_code == 200
    assert response.json()["window"]["days"] == 730


def test_query_count_does_not_grow_with_the_data(
    client_for, sam, march, make_handoff, django_assert_num_queries
):
    from django.core.cache import cache

    client = client_for(sam)
    # Session and user, then the same on every database: the rollup rows of the window's
    # weeks (none built here), the first escalation (to know which weeks need none), one
    # query for the run of weeks computed live, the baseline and the seniors' names. The
    # first escalation is cached: the second request of a process skips it.
    expected = 7
    cache.clear()
    with django_assert_num_queries(expected):
        client.get(URL, MARCH)
    with django_assert_num_queries(expected - 1):
        client.get(URL, MARCH)
    for day in range(2, 15):
        make_handoff(at(f"2026-03-{day:02d} 10:00"), claim=10, first_action=10)
    cache.clear()
    with django_assert_num_queries(expected):
        client.get(URL, MARCH)
