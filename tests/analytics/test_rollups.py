"""Weekly rollups and sketches: any window fast, and the same numbers as computed directly."""

import random
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from analytics import metrics, rollups, tally
from analytics.models import WeeklyRollup
from analytics.sketch import EXACT_UP_TO, Sketch, percentile_cont
from analytics.tally import Tally
from escalations import actions
from escalations.models import Handoff, HandoffState
from flowpilot.models import Session

pytestmark = pytest.mark.django_db

FRACTIONS = (0.0, 0.1, 0.5, 0.75, 0.9, 0.95, 1.0)


def sketch_of(values) -> Sketch:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    return sketch


def within_bound(estimate: float, exact: float) -> bool:
    """The documented bound: under 1 % of the value, plus 0.01 s."""
    return abs(estimate - exact) <= 0.01 * exact + 0.01 + 1e-9


# -- the sketch ----------------------------------------------------------------------------


def test_a_small_sketch_is_exact_like_percentile_cont():
    rng = random.Random(1)
    values = [rng.expovariate(1 / 300) for _ in range(EXACT_UP_TO)]
    sketch = sketch_of(values)
    assert sketch.is_exact
    expected = [percentile_cont(sorted(values), f) for f in FRACTIONS]
    assert sketch.percentiles(FRACTIONS) == expected


@pytest.mark.parametrize("seed", range(5))
def test_a_large_sketch_is_within_one_percent_of_the_exact_percentile(seed):
    rng = random.Random(seed)
    values = [rng.expovariate(1 / rng.choice([5, 300, 4000])) for _ in range(5000)]
    values += [0.0, 0.004, 86400 * 3]  # nothing, under the first bin, three days
    sketch = sketch_of(values)
    assert not sketch.is_exact
    ordered = sorted(values)
    for fraction, estimate in zip(FRACTIONS, sketch.percentiles(FRACTIONS), strict=True):
        assert within_bound(estimate, percentile_cont(ordered, fraction)), fraction


def test_merging_parts_equals_sketching_the_whole():
    rng = random.Random(7)
    parts = [[rng.uniform(0, 900) for _ in range(size)] for size in (3, 40, 61, 500, 0, 9)]
    merged = Sketch()
    for part in parts:
        merged.merge(sketch_of(part))
    whole = sketch_of([value for part in parts for value in part])
    assert merged.n == whole.n
    assert merged.percentiles(FRACTIONS) == whole.percentiles(FRACTIONS)


def test_small_parts_merge_exactly_and_the_json_round_trip_loses_nothing():
    a, b = sketch_of([1.5, 90.25]), sketch_of([0.1, 3600.0])
    merged = Sketch.from_json(a.as_json()).merge(Sketch.from_json(b.as_json()))
    assert merged.is_exact and merged.values == [0.1, 1.5, 90.25, 3600.0]
    big = sketch_of(range(1000))
    assert Sketch.from_json(big.as_json()).percentiles(FRACTIONS) == big.percentiles(FRACTIONS)


# -- rollups against the direct computation ------------------------------------------------


def direct(account_id: int, window: metrics.Window) -> dict:
    """The figures computed the plain way: every row read, sorted, interpolated."""
    rows = list(
        metrics.handoffs_in(account_id, window)
        .annotate(
            claim=metrics.time_to_claim_expression(),
            first=metrics.time_to_first_action_expression(),
        )
        .values_list("claim", "first", "takeover_mode", "released_at", "resolved_at")
    )
    claims = sorted(r[0] for r in rows if r[0] is not None)
    firsts = sorted(r[1] for r in rows if r[1] is not None)
    by_mode = {
        mode: sorted(r[1] for r in rows if r[1] is not None and r[2] == mode)
        for mode in ("self", "analysis")
    }
    return {
        "counts": metrics.Counts(
            escalated=len(rows),
            claimed=len(claims),
            first_action=len(firsts),
            released=sum(r[3] is not None for r in rows),
            resolved=sum(r[4] is not None for r in rows),
        ),
        "claim": claims,
        "first": firsts,
        "by_mode": by_mode,
    }


def assert_distribution_matches(distribution: metrics.Distribution, values: list[float]):
    assert distribution.n == len(values)
    for fraction, got in zip(
        (0.5, 0.75, 0.9), (distribution.median, distribution.p75, distribution.p90), strict=True
    ):
        exact = percentile_cont(values, fraction)
        # Rounded to 0.1 s for display: the bound plus half a tenth.
        assert abs(got - exact) <= 0.01 * exact + 0.01 + 0.05, (fraction, got, exact)


@pytest.mark.parametrize("days", [30, 45, 71])
def test_rollups_give_the_same_numbers_as_computing_live_and_match_the_direct_one(generated, days):
    now, account = generated["now"], generated["account"]
    window = metrics.Window.last_days(days, today=timezone.localdate(now))
    live = metrics.escalation_summary(account, window, now=now)
    assert not WeeklyRollup.objects.exists()

    written = rollups.refresh_account(account, now=now, build_limit=None)
    assert written >= 9  # ten weeks back, the current one never
    assert not WeeklyRollup.objects.filter(week=rollups.current_monday(now)).exists()
    rolled = metrics.escalation_summary(account, window, now=now)

    # Same code, same merge order: the rollups change nothing, to the last digit.
    assert rolled.as_dict() == live.as_dict()
    expected = direct(account, window)
    assert rolled.counts == expected["counts"]
    assert_distribution_matches(rolled.time_to_claim, expected["claim"])
    assert_distribution_matches(rolled.time_to_first_action, expected["first"])
    for row in rolled.breakdown.by_mode:
        assert_distribution_matches(row.time_to_first_action, expected["by_mode"][row.key])
    assert sum(point.escalated for point in rolled.weekly) == expected["counts"].escalated


def test_a_window_answers_from_rollups_in_a_fixed_number_of_queries(
    generated, django_assert_num_queries
):
    now, account = generated["now"], generated["account"]
    rollups.refresh_account(account, now=now, build_limit=None)
    window = metrics.Window.last_days(80, today=timezone.localdate(now))
    # The rollup rows (their versions), the first escalation (the window starts weeks
    # before it: those weeks need no rollup), the rollups' data, the window's first (cut)
    # week and the current week live.
    with django_assert_num_queries(5):
        cold = metrics.window_tallies(account, window, now=now)
    # Again: the closed weeks come merged from the cache; the rows' versions and the
    # current week are read.
    with django_assert_num_queries(2):
        warm = metrics.window_tallies(account, window, now=now)
    assert warm[0].as_json() == cold[0].as_json() and warm[1] == cold[1]


def test_a_change_to_a_past_weeks_handoff_marks_it_stale_until_rebuilt(generated, personas):
    now, account = generated["now"], generated["account"]
    rollups.refresh_account(account, now=now, build_limit=None)
    old = next(
        h
        for h in generated["handoffs"]
        if h.claimed_at is None
        and rollups.monday_of(h.created_at.date()) < rollups.current_monday(now) - timedelta(days=7)
    )
    week = rollups.monday_of(timezone.localdate(old.created_at))
    window = metrics.Window(start=week, end=week + timedelta(days=6))
    before = metrics.escalation_summary(account, window, now=now).counts.claimed

    actions.claim_handoff(handoff_id=old.pk, user=personas["sam"])  # sends handoff_changed

    rollup = WeeklyRollup.objects.get(account_id=account, week=week)
    assert rollup.stale and rollup.version == 1
    # A stale week is computed live: the claim already counts.
    assert metrics.escalation_summary(account, window, now=now).counts.claimed == before + 1
    assert rollups.refresh_account(account, now=now) >= 1
    rollup.refresh_from_db()
    assert not rollup.stale
    assert Tally.from_json(rollup.data).claimed == before + 1


def test_a_rebuild_that_raced_a_change_stays_stale(generated, monkeypatch):
    now, account = generated["now"], generated["account"]
    week = rollups.current_monday(now) - timedelta(days=14)
    rollups.rebuild_week(account, week, now=now)
    WeeklyRollup.objects.filter(account_id=account, week=week).update(stale=True, version=1)
    real = rollups.weekly_tallies

    def change_meanwhile(*args, **kwargs):
        result = real(*args, **kwargs)
        WeeklyRollup.objects.filter(week=week).update(version=2)  # a change lands
        return result

    monkeypatch.setattr(rollups, "weekly_tallies", change_meanwhile)
    assert rollups.rebuild_week(account, week, now=now) is False
    assert WeeklyRollup.objects.get(account_id=account, week=week).stale


def test_the_outbox_drain_builds_every_accounts_weeks(generated):
    from resolutionflow.tasks import drain_outbox

    drain_outbox()
    accounts = set(WeeklyRollup.objects.values_list("account_id", flat=True))
    assert generated["account"] in accounts and len(accounts) == 2
    assert not WeeklyRollup.objects.filter(stale=True).exists()


@pytest.mark.parametrize("size", [0, 1, EXACT_UP_TO, EXACT_UP_TO + 1, 3000])
def test_a_sketch_made_at_once_equals_one_made_value_by_value(size):
    rng = random.Random(size)
    values = [rng.expovariate(1 / 200) for _ in range(size)]
    at_once, one_by_one = Sketch.of(values), sketch_of(values)
    assert at_once.as_json() == one_by_one.as_json()
    assert at_once.percentiles(FRACTIONS) == one_by_one.percentiles(FRACTIONS)


def test_merging_many_at_once_equals_merging_one_by_one():
    rng = random.Random(3)
    parts = [
        sketch_of([rng.expovariate(1 / 90) for _ in range(size)])
        for size in (0, 5, 64, 65, 300, 2, 1000, 30)
    ]
    one_by_one = Sketch()
    for part in parts:
        one_by_one.merge(Sketch.from_json(part.as_json()))
    assert Sketch.merged(parts).as_json() == one_by_one.as_json()
    assert (
        Sketch.merged(parts[:3]).as_json()
        == Sketch.merged([]).merge(parts[1]).merge(parts[2]).as_json()
    )


# -- the dashboard's figures: rollups and cache against live, and against the direct ------


def dashboard_figures(client, window: metrics.Window) -> dict:
    """What the dashboard shows of a window: the summary, the charts' SVG and the card."""
    response = client.get(
        reverse("analytics:dashboard"),
        {"from": window.start.isoformat(), "to": window.end.isoformat()},
    )
    assert response.status_code == 200
    context = response.context
    return {
        "summary": context["summary"].as_dict(),
        "charts": {name: str(svg) for name, svg in context["charts"].items()},
        "card": context["card"],
        "first_actions": context["summary"].first_actions,
    }


def test_the_dashboard_shows_from_rollups_and_cache_what_it_computes_live_and_the_direct(
    generated, client_for, ada
):
    now, account = generated["now"], generated["account"]
    today = timezone.localdate(now)
    window = metrics.Window.last_days(45, today=today)  # cuts its first week
    client = client_for(ada)
    live = dashboard_figures(client, window)
    rollups.refresh_account(account, now=now, build_limit=None)
    cache.clear()
    cold = dashboard_figures(client, window)  # rollups, nothing cached
    warm = dashboard_figures(client, window)  # closed weeks from the cache
    for shown in (cold, warm):
        assert shown["summary"] == live["summary"]
        assert shown["charts"] == live["charts"]
        assert shown["card"] == live["card"]

    # Against the plain computation: each week's medians, the card's two weeks, the histogram.
    rows = list(
        metrics.handoffs_in(account, window)
        .annotate(
            claim=metrics.time_to_claim_expression(),
            first=metrics.time_to_first_action_expression(),
        )
        .values_list("created_at", "claim", "first")
    )
    weeks: dict = {}
    for created_at, claim, first in rows:
        week = weeks.setdefault(rollups.monday_of(timezone.localdate(created_at)), ([], []))
        if claim is not None:
            week[0].append(claim)
        if first is not None:
            week[1].append(first)
    points = {point["week"]: point for point in live["summary"]["weekly"]}
    assert len(points) == len(weeks) >= 7
    for monday, (claims, firsts) in weeks.items():
        point = points[monday.isoformat()]
        assert (point["claimed"], point["first_action"]) == (len(claims), len(firsts))
        for got, values in (
            (point["median_time_to_claim"], claims),
            (point["median_time_to_first_action"], firsts),
        ):
            exact = percentile_cont(sorted(values), 0.5)
            assert abs(got - exact) <= 0.01 * exact + 0.01 + 0.05
    card = live["card"]
    for distribution, monday in (
        (card.this_week_first_action, card.this_week.start),
        (card.last_week_first_action, card.last_week.start),
    ):
        assert_distribution_matches(distribution, sorted(weeks[monday][1]))

    firsts = sorted(first for _, _, first in rows if first is not None)
    bin_seconds, bins = metrics.histogram_layout(live["summary"]["time_to_first_action"]["p90"])
    shown = metrics.histogram_of(live["first_actions"], bin_seconds=bin_seconds, bins=bins)
    assert sum(bin_.count for bin_ in shown) == len(firsts)
    for bin_ in shown:
        inside = [v for v in firsts if bin_.lower <= v and (bin_.upper is None or v < bin_.upper)]
        # A value within its 1 % bin of an edge may be drawn on the other side of it.
        near_an_edge = [
            v
            for v in firsts
            for edge in (bin_.lower, bin_.upper)
            if edge and abs(v - edge) <= 0.01 * v + 0.01
        ]
        assert abs(bin_.count - len(inside)) <= len(near_an_edge), bin_


def test_a_histogram_spreads_a_bin_over_two_buckets_as_its_values_would_be():
    rng = random.Random(11)
    values = [rng.expovariate(1 / 200) for _ in range(20000)]
    sketch = Sketch.of(values)
    shown = metrics.histogram_of(sketch, bin_seconds=15, bins=12)
    expected = [0] * 12
    for lower, upper, count in sketch.spread():  # one by one, as documented
        for index in range(count):
            position = lower + (upper - lower) * (index + 0.5) / count
            expected[min(max(int(position // 15), 0), 11)] += 1
    assert [bin_.count for bin_ in shown] == expected


def test_a_cached_window_sees_a_change_to_one_of_its_past_weeks(
    generated, personas, django_assert_num_queries
):
    now, account = generated["now"], generated["account"]
    rollups.refresh_account(account, now=now, build_limit=None)
    window = metrics.Window.last_days(60, today=timezone.localdate(now))
    before = metrics.escalation_summary(account, window, now=now)
    again = metrics.escalation_summary(account, window, now=now)  # from the cache
    assert again.as_dict() == before.as_dict()
    old = next(
        h
        for h in generated["handoffs"]
        if h.claimed_at is None
        and window.start_at + timedelta(days=7) < h.created_at
        and rollups.monday_of(timezone.localdate(h.created_at)) < rollups.current_monday(now)
    )
    actions.claim_handoff(handoff_id=old.pk, user=personas["sam"])
    # Only what the change touches is read again: the rollup rows, the other weeks' rollups
    # (their merge was cached with the changed week in it), the changed week live (stale
    # until rebuilt) and the current week. The cut first week stays cached.
    with django_assert_num_queries(4):
        metrics.window_tallies(account, window, now=now)
    after = metrics.escalation_summary(account, window, now=now)
    assert after.counts.claimed == before.counts.claimed + 1


# -- a cut week: its rollup minus the days outside the window ------------------------------


def synthetic_rows(rng: random.Random, count: int) -> list[tuple]:
    """Handoff rows as ``tally.handoff_rows`` gives them (the week column unused here)."""
    rows = []
    for _ in range(count):
        claimed = rng.random() < 0.9
        acted = claimed and rng.random() < 0.85
        rows.append(
            (
                None,
                rng.choice([7, 8, 9]) if claimed else None,
                rng.choice(["self", "analysis"]) if claimed else None,
                rng.expovariate(1 / 240) if claimed else None,
                rng.expovariate(1 / 300) if acted else None,
                int(rng.random() < 0.05),
                int(rng.random() < 0.7),
            )
        )
    return rows


def test_a_tally_minus_some_of_its_handoffs_is_the_tally_of_the_rest():
    rng = random.Random(5)
    outside, inside = synthetic_rows(rng, 900), synthetic_rows(rng, 2500)
    whole = tally._tally_of(outside + inside)
    rest = whole.minus(tally._tally_of(outside))
    assert rest is not None
    assert rest.as_json() == tally._tally_of(inside).as_json()
    assert whole.minus(tally._tally_of(outside + inside)).as_json() == Tally().as_json()


def test_a_tally_minus_is_refused_when_the_rest_must_be_exact_or_is_not_a_part():
    rng = random.Random(6)
    outside, inside = synthetic_rows(rng, 900), synthetic_rows(rng, 150)
    whole = tally._tally_of(outside + inside)
    # 150 left: some of its groups hold 64 values or fewer, which bins cannot give back.
    assert whole.minus(tally._tally_of(outside)) is None
    stranger = tally._tally_of(synthetic_rows(random.Random(7), 900))
    assert tally._tally_of(synthetic_rows(rng, 3000)).minus(stranger) is None


def test_a_busy_cut_week_from_its_rollup_minus_the_days_outside_equals_live(personas, monkeypatch):
    now = timezone.now()
    monday = rollups.current_monday(now) - timedelta(days=14)
    start = rollups.start_of(monday)
    rng = random.Random(9)
    tess, seniors = personas["tess"], [personas["sam"], personas["sky"]]
    sessions = Session.objects.bulk_create(
        Session(account_id=tess.account_id, owner=tess, problem=f"Busy week {n}")
        for n in range(700)
    )
    handoffs = []
    for session in sessions:
        created = start + timedelta(seconds=rng.uniform(0, 7 * 86400 - 1))
        claimed = created + timedelta(seconds=rng.expovariate(1 / 240))
        acted = rng.random() < 0.9
        handoffs.append(
            Handoff(
                account_id=tess.account_id,
                session=session,
                escalated_by=tess,
                reason="Busy",
                created_at=created,
                claimed_by=rng.choice(seniors),
                claimed_at=claimed,
                first_action_at=claimed + timedelta(seconds=rng.expovariate(1 / 300))
                if acted
                else None,
                first_action_kind="message" if acted else "",
                takeover_mode=rng.choice(["self", "analysis"]),
                state=HandoffState.CLAIMED,
            )
        )
    Handoff.objects.bulk_create(handoffs)
    account = tess.account_id
    # From Wednesday: two days of the week outside the window, five inside: the rollup minus
    # the two. From Friday: four outside, three inside: the three are read live.
    windows = [
        metrics.Window(start=monday + timedelta(days=days), end=timezone.localdate(now))
        for days in (2, 4)
    ]
    live = [metrics.escalation_summary(account, window, now=now).as_dict() for window in windows]
    rollups.refresh_account(account, now=now, build_limit=None)
    cache.clear()
    subtracted = []
    real_minus = Tally.minus

    def spy(self, part):
        rest = real_minus(self, part)
        subtracted.append(rest is not None)
        return rest

    monkeypatch.setattr(Tally, "minus", spy)
    rolled = [metrics.escalation_summary(account, window, now=now).as_dict() for window in windows]
    assert subtracted == [True]  # once: Wednesday's window
    assert rolled == live
    assert live[0]["counts"]["escalated"] > 400
