"""The numbers, against hand-computed data: they must come out the same on SQLite and
PostgreSQL (run the suite with DATABASE_URL=postgres://... for the second)."""

from datetime import date

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analytics import metrics
from analytics.metrics import Window
from tests.analytics.conftest import at

MARCH = Window(start=date(2026, 3, 2), end=date(2026, 3, 15))  # Monday 2 to Sunday 15
AFTER_MARCH = at("2026-04-01 00:00")


@pytest.fixture
def march(make_handoff, gil):
    """Acme's handoffs around two March weeks, and one of Globex's in the middle.

    In the window, time to first action: 60 120 180 300 600 900 (six handoffs);
    time to claim: 30 45 60 90 120 240 300 (seven claimed of eight escalated).
    """
    return {
        # Week of Monday 2 March.
        "h1": make_handoff(at("2026-03-02 00:00:00"), claim=60, first_action=60, resolved=600),
        "h2": make_handoff(at("2026-03-03 10:00"), claim=120, first_action=120),
        "h3": make_handoff(at("2026-03-04 11:00"), claim=300, first_action=180),
        "h4": make_handoff(at("2026-03-05 12:00"), claim=30),
        "h5": make_handoff(at("2026-03-06 13:00")),
        # Week of Monday 9 March.
        "h6": make_handoff(at("2026-03-09 00:00"), claim=90, first_action=300, released=60),
        "h7": make_handoff(at("2026-03-12 08:00"), claim=45, first_action=600, resolved=900),
        "h8": make_handoff(at("2026-03-15 23:59:59"), claim=240, first_action=900),
        # Just outside the window, on either side.
        "before": make_handoff(at("2026-03-01 23:59:59"), claim=10, first_action=10),
        "after": make_handoff(at("2026-03-16 00:00"), claim=10, first_action=10),
        # Another account, inside the window: never counted for Acme.
        "globex": make_handoff(
            at("2026-03-04 09:00"), claim=5, first_action=5, technician=gil, resolved=5
        ),
    }


class TestPercentileCont:
    def test_interpolates_between_neighbours_like_postgres(self):
        values = [1.0, 2.0, 3.0, 4.0]
        assert metrics.percentile_cont(values, 0.5) == 2.5
        assert metrics.percentile_cont(values, 0.75) == 3.25
        assert metrics.percentile_cont(values, 0.9) == pytest.approx(3.7)
        assert metrics.percentile_cont(values, 0.0) == 1.0
        assert metrics.percentile_cont(values, 1.0) == 4.0

    def test_one_value_is_every_percentile_and_none_is_none(self):
        assert metrics.percentile_cont([42.0], 0.9) == 42.0
        assert metrics.percentile_cont([], 0.5) is None

    @pytest.mark.postgres
    @hypothesis_settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        values=st.lists(
            st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=40
        ),
        fraction=st.sampled_from([0.0, 0.1, 0.5, 0.75, 0.9, 0.95, 1.0]),
    )
    def test_the_sqlite_fallback_equals_postgres_bit_for_bit(
        self, postgres_only, db, values, fraction
    ):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY v) FROM unnest(%s::float8[]) v",
                [fraction, values],
            )
            expected = cursor.fetchone()[0]
        assert metrics.percentile_cont(sorted(values), fraction) == expected


class TestHandoffStats:
    def test_counts_of_the_window(self, march, ada):
        stats = metrics.handoff_stats(ada.account_id, MARCH)
        assert stats.counts == metrics.Counts(
            escalated=8, claimed=7, first_action=6, released=1, resolved=2
        )

    def test_time_to_first_action_percentiles_exact(self, march, ada):
        # Sorted: 60 120 180 300 600 900 (n=6).
        # median: position 2.5 → 180 + (300 − 180) × 0.5 = 240
        # p75: position 3.75 → 300 + (600 − 300) × 0.75 = 525
        # p90: position 4.5 → 600 + (900 − 600) × 0.5 = 750
        stats = metrics.handoff_stats(ada.account_id, MARCH)
        assert stats.time_to_first_action == metrics.Distribution(
            n=6, median=240.0, p75=525.0, p90=750.0
        )

    def test_time_to_claim_percentiles_exact(self, march, ada):
        # Sorted: 30 45 60 90 120 240 300 (n=7).
        # median: position 3 → 90; p75: position 4.5 → 120 + 120 × 0.5 = 180
        # p90: position 5.4 → 240 + 60 × 0.4 = 264
        stats = metrics.handoff_stats(ada.account_id, MARCH)
        assert stats.time_to_claim == metrics.Distribution(n=7, median=90.0, p75=180.0, p90=264.0)

    def test_time_to_first_action_alone_matches(self, march, ada):
        assert metrics.time_to_first_action(ada.account_id, MARCH) == metrics.Distribution(
            n=6, median=240.0, p75=525.0, p90=750.0
        )

    def test_another_accounts_handoffs_are_never_counted(self, march, gwen):
        stats = metrics.handoff_stats(gwen.account_id, MARCH)
        assert stats.counts == metrics.Counts(
            escalated=1, claimed=1, first_action=1, released=0, resolved=1
        )
        assert stats.time_to_first_action == metrics.Distribution(n=1, median=5.0, p75=5.0, p90=5.0)

    def test_empty_window_has_no_percentiles(self, march, ada):
        empty = Window(start=date(2025, 1, 1), end=date(2025, 1, 31))
        stats = metrics.handoff_stats(ada.account_id, empty)
        assert stats.counts == metrics.Counts()
        assert stats.time_to_first_action == metrics.Distribution(0, None, None, None)
        assert stats.time_to_claim == metrics.Distribution(0, None, None, None)

    def test_fractional_seconds_are_kept(self, make_handoff, ada):
        make_handoff(at("2026-03-03 10:00"), claim=1, first_action=0.25)
        make_handoff(at("2026-03-03 11:00"), claim=1, first_action=0.5)
        stats = metrics.handoff_stats(ada.account_id, MARCH)
        assert stats.time_to_first_action.median == 0.4  # 0.375 rounded to 0.1 s


class TestBaseline:
    def test_median_of_the_accounts_timings_only(self, ada, gwen, record_timings):
        record_timings(ada, ["10", "12.5", "15", "20", "30", "45"])
        record_timings(gwen, ["1", "1", "1"])
        assert metrics.baseline(ada.account_id) == metrics.Baseline(n=6, median_minutes=17.5)
        assert metrics.baseline(gwen.account_id) == metrics.Baseline(n=3, median_minutes=1.0)

    def test_no_timings(self, ada):
        assert metrics.baseline(ada.account_id) == metrics.Baseline(n=0, median_minutes=None)


class TestMinutesRecovered:
    def test_fewer_than_five_timings_give_null_with_the_reason(self, march, ada, record_timings):
        record_timings(ada, ["10", "12", "15", "20"])
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        assert summary.recovered.minutes_per_escalation is None
        assert summary.recovered.hours_saved_per_week is None
        assert summary.recovered.reason_code == "baseline_too_small"
        assert "4 of the 5" in summary.recovered.reason
        assert "record 1 more timing" in summary.recovered.reason
        # The in-product number is still there, under its own name.
        assert summary.time_to_first_action.median == 240.0
        assert summary.pilot.passed is None

    def test_five_timings_give_the_difference_of_medians(self, march, ada, record_timings):
        record_timings(ada, ["30", "10", "15", "20", "12"])  # median 15 min
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        # 15 min − 240 s = 11 min per escalation; 6 acted on over exactly 2 weeks = 3 a week;
        # 11 × 3 ÷ 60 = 0.55 hours a week.
        assert summary.recovered == metrics.Recovered(
            minutes_per_escalation=11.0, hours_saved_per_week=0.55, escalations_per_week=3.0
        )
        assert summary.pilot.passed is False
        assert summary.pilot.hours_saved_per_week == 0.55
        # 30 days and 1 second since 1 March 23:59:59.
        assert summary.pilot.weeks_since_first_escalation == 4.3

    def test_no_first_action_gives_null_with_its_reason(self, ada, record_timings, make_handoff):
        record_timings(ada, ["10", "12", "15", "20", "30"])
        make_handoff(at("2026-03-03 10:00"), claim=60)
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        assert summary.recovered.minutes_per_escalation is None
        assert summary.recovered.reason_code == "no_first_actions"

    def test_slower_than_the_baseline_is_reported_negative(self, ada, record_timings, make_handoff):
        record_timings(ada, ["1", "1", "1", "1", "1"])
        make_handoff(at("2026-03-03 10:00"), claim=60, first_action=600)
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        assert summary.recovered.minutes_per_escalation == -9.0

    def test_pilot_passes_above_one_hour_a_week(self, ada, record_timings, make_handoff):
        record_timings(ada, ["60", "60", "60", "60", "60"])
        for day in range(2, 9):  # one a day for the first week, 60 s to first action
            make_handoff(at(f"2026-03-{day:02d} 00:00"), claim=60, first_action=60)
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        # 59 min × 7 acted on ÷ 2 weeks ÷ 60 = 3.44 hours a week.
        assert summary.recovered.hours_saved_per_week == 3.44
        assert summary.pilot.passed is True

    def test_a_young_pilot_is_not_diluted_by_the_weeks_before_it(
        self, ada, record_timings, make_handoff
    ):
        record_timings(ada, ["10", "10", "10", "10", "10"])
        # First escalation ever on Monday 9 March; the window starts a week earlier.
        for day in (9, 10):
            make_handoff(at(f"2026-03-{day:02d} 00:00"), claim=60, first_action=0)
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=AFTER_MARCH)
        # One week covered (9–15 March), not two: 2 a week, 10 × 2 ÷ 60 = 0.33.
        assert summary.recovered.escalations_per_week == 2.0
        assert summary.recovered.hours_saved_per_week == 0.33

    def test_two_busy_days_are_not_extrapolated_to_a_week(self, ada, record_timings, make_handoff):
        record_timings(ada, ["10", "10", "10", "10", "10"])
        for hour in range(6):
            make_handoff(at(f"2026-03-14 {hour:02d}:00"), claim=60, first_action=0)
        summary = metrics.escalation_summary(ada.account_id, MARCH, now=at("2026-03-15 12:00"))
        assert summary.recovered.escalations_per_week == 6.0  # the floor of one week


class TestWeeklySeries:
    def test_medians_and_counts_per_week(self, march, ada):
        weekly = metrics.weekly_series(ada.account_id, MARCH)
        assert weekly == [
            metrics.WeekPoint(
                week=date(2026, 3, 2),
                escalated=5,
                claimed=4,
                first_action=3,
                median_time_to_claim=90.0,  # 30 60 120 300
                median_time_to_first_action=120.0,  # 60 120 180
            ),
            metrics.WeekPoint(
                week=date(2026, 3, 9),
                escalated=3,
                claimed=3,
                first_action=3,
                median_time_to_claim=90.0,  # 45 90 240
                median_time_to_first_action=600.0,  # 300 600 900
            ),
        ]

    def test_empty_and_partial_weeks_are_listed(self, march, ada):
        window = Window(start=date(2026, 2, 18), end=date(2026, 3, 4))  # Wed to Wed
        weekly = metrics.weekly_series(ada.account_id, window)
        assert [point.week for point in weekly] == [
            date(2026, 2, 16),
            date(2026, 2, 23),
            date(2026, 3, 2),
        ]
        assert weekly[0] == metrics.WeekPoint(week=date(2026, 2, 16))
        # 23 Feb week holds "before" (1 March 23:59:59, a Sunday).
        assert weekly[1].escalated == 1
        assert weekly[1].median_time_to_first_action == 10.0
        # Only 2–4 March of the third week: h1, h2, h3.
        assert weekly[2].escalated == 3
        assert weekly[2].median_time_to_first_action == 120.0


def test_window_report_agrees_with_the_separate_computations(march, ada):
    """On PostgreSQL one GROUPING SETS query; it must say what the two simpler ones say."""
    for window in (MARCH, Window(date(2026, 2, 18), date(2026, 3, 4))):
        stats, weekly = metrics.window_report(ada.account_id, window)
        assert stats == metrics.handoff_stats(ada.account_id, window)
        assert weekly == metrics.weekly_series(ada.account_id, window)
    empty = Window(date(2025, 1, 1), date(2025, 1, 14))
    stats, weekly = metrics.window_report(ada.account_id, empty)
    assert stats == metrics.handoff_stats(ada.account_id, empty)
    assert weekly == [
        metrics.WeekPoint(week=date(2024, 12, 30)),
        metrics.WeekPoint(week=date(2025, 1, 6)),
        metrics.WeekPoint(week=date(2025, 1, 13)),
    ]


class TestHistogram:
    def test_layout_uses_round_bins_past_the_90th_percentile(self):
        assert metrics.histogram_layout(750.0) == (120, 9)
        assert metrics.histogram_layout(None) == (15, 5)
        assert metrics.histogram_layout(30.0) == (15, 5)

    def test_bins_count_each_handoff_once_the_last_bin_open(self, march, ada):
        bins = metrics.first_action_histogram(ada.account_id, MARCH, bin_seconds=120, bins=5)
        # 60 → [0, 2m); 120, 180 → [2m, 4m); 300 → [4m, 6m); 600, 900 → ≥ 8m.
        assert [(b.lower, b.upper, b.count) for b in bins] == [
            (0.0, 120.0, 1),
            (120.0, 240.0, 2),
            (240.0, 360.0, 1),
            (360.0, 480.0, 0),
            (480.0, None, 2),
        ]


class TestMetricCard:
    def test_this_week_against_last_week(self, march, ada, record_timings):
        record_timings(ada, ["10", "12", "15", "20", "30"])
        card = metrics.metric_card(ada.account_id, now=at("2026-03-12 12:00"))
        assert card.this_week == Window(date(2026, 3, 9), date(2026, 3, 15))
        # This week so far (to Thursday 12th): 300 600, h8 of Sunday 15th is still to come.
        assert card.this_week_first_action.median == 450.0
        assert card.this_week_first_action.n == 2
        assert card.last_week_first_action.median == 120.0
        # Two handoffs this week: too few for "275% slower" to mean anything.
        assert card.change_percent is None and card.too_few_to_compare
        # Last 30 days to 12 March: 10 60 120 180 300 600 → median 150 s; 15 − 2.5 = 12.5.
        assert card.recovered.minutes_per_escalation == 12.5

    def test_without_enough_baseline_the_card_says_why(self, march, ada, record_timings):
        record_timings(ada, ["10", "12"])
        card = metrics.metric_card(ada.account_id, now=at("2026-03-12 12:00"))
        assert card.recovered.minutes_per_escalation is None
        assert card.recovered.reason_code == "baseline_too_small"


class TestWindow:
    def test_last_days_includes_today(self):
        window = Window.last_days(30, today=date(2026, 3, 31))
        assert (window.start, window.end, window.days) == (date(2026, 3, 2), date(2026, 3, 31), 30)

    def test_bounds_are_whole_days(self):
        window = Window(date(2026, 3, 2), date(2026, 3, 15))
        assert window.start_at == at("2026-03-02 00:00")
        assert window.end_at == at("2026-03-16 00:00")
