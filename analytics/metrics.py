"""The numbers behind the wedge: time to claim, time to first action, the manual baseline,
minutes recovered and hours saved.

Two metrics, measured differently, compared only when both exist:

- time to first action is measured by ResolutionFlow: from a senior's claim of a handoff to
  their own first action on the problem (``FIRST_ACTION_DEFINITION``;
  ``Handoff.first_action_at - Handoff.claimed_at``);
- the manual baseline is timed by an admin with a stopwatch: how long a senior spent on a
  manual "tell me what you tried" handoff before they could act (``BaselineMeasurement``).

Minutes recovered per escalation is the baseline median minus the in-product median, given
only when the baseline has at least ``BASELINE_MIN_MEASUREMENTS`` timings. The in-product
number alone is never called minutes recovered. Queue wait (time to claim) counts from the
first escalation: a handoff re-queued by a release keeps it.

Every figure has one implementation, whatever the database: the window's tally (counts and
duration sketches, ``analytics.tally``) is merged from weekly rollups and the weeks computed
live (``analytics.rollups``); percentiles are ``percentile_cont``'s, exact up to 64 values
and within 1 % beyond (``analytics.sketch``). A handoff belongs to the window its
``created_at`` (the first escalation) falls in.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from analytics import rollups, sketch, tally
from analytics.models import BaselineMeasurement
from analytics.sketch import Sketch
from analytics.tally import Group, Tally, WeekFigures
from escalations.models import TakeoverMode
from resolutionflow.models import User

BASELINE_MIN_MEASUREMENTS = 5
# The card compares this week's median with last week's only when each week has this many
# handoffs with a first action: "50% faster" from 4 against 7 is noise, not a trend.
WEEK_COMPARE_MIN = 5
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 731  # two years, a leap day included
PILOT_TARGET_HOURS_PER_WEEK = 1.0
PERCENTILES = tally.PERCENTILES
SECONDS_PER_WEEK = 7 * 24 * 3600

# Shown wherever the number is: the queue's card, the dashboard, the CSV and the JSON.
FIRST_ACTION_DEFINITION = (
    "Time to first action runs from a senior's claim to their own first action on the "
    "problem: the first message they write in the chat, the first step whose status or "
    'outcome they record, or a step they add by hand. Opening the handoff, "Get AI '
    'analysis", "Open in Tasks panel", copying a command and anything FlowPilot does '
    "do not count, nor does anyone else's activity."
)


# --- Windows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Whole days, both ends included, in the current time zone."""

    start: date
    end: date

    @classmethod
    def last_days(cls, days: int, *, today: date) -> Window:
        return cls(start=today - timedelta(days=days - 1), end=today)

    @classmethod
    def week_of(cls, day: date) -> Window:
        """The Monday-to-Sunday week that contains ``day``."""
        monday = day - timedelta(days=day.weekday())
        return cls(start=monday, end=monday + timedelta(days=6))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_at(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def end_at(self) -> datetime:
        """The first instant after the window (exclusive)."""
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    def as_dict(self) -> dict:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "days": self.days,
            "timezone": timezone.get_current_timezone_name(),
        }


# --- Where the numbers come from ----------------------------------------------------------

# One implementation: the SQL (handoff rows, time zone weeks, durations) is in
# analytics.tally, the sums and percentiles in analytics.sketch, the weekly rollups that
# make long windows fast in analytics.rollups. Re-exported here for the views and tests.
time_to_claim_expression = tally.time_to_claim_expression
time_to_first_action_expression = tally.time_to_first_action_expression
percentile_cont = sketch.percentile_cont
first_escalation_at = tally.first_escalation_at


def handoffs_in(account_id: int, window: Window) -> QuerySet:
    """The account's handoffs escalated within the window (index: account, created_at)."""
    return tally.handoffs_between(account_id, window.start_at, window.end_at)


def window_tallies(
    account_id: int, window: Window, *, now: datetime | None = None, memo: dict | None = None
) -> tuple[Tally, dict[date, WeekFigures]]:
    """The window's tally and its weeks' figures (closed weeks from the rollups and the
    cache, the current week live)."""
    now = now or timezone.now()
    return rollups.window_tallies(account_id, window.start, window.end, now=now, memo=memo)


# --- Results -------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class Distribution:
    """Percentiles of a duration in seconds; None when nothing was measured."""

    n: int
    median: float | None
    p75: float | None
    p90: float | None

    @classmethod
    def from_values(cls, n: int, values: Sequence[float | None] | None) -> Distribution:
        median, p75, p90 = values if values and n else (None, None, None)
        return cls(n=n, median=_round(median), p75=_round(p75), p90=_round(p90))

    @classmethod
    def from_sorted(cls, sorted_values: Sequence[float]) -> Distribution:
        return cls.from_values(
            len(sorted_values), [percentile_cont(sorted_values, f) for f in PERCENTILES]
        )

    @classmethod
    def from_sketch(cls, durations: Sketch) -> Distribution:
        return cls.from_values(durations.n, durations.percentiles(PERCENTILES))

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "median": self.median,
            "p75": self.p75,
            "p90": self.p90,
            "unit": "seconds",
        }


@dataclass(frozen=True)
class Counts:
    escalated: int = 0
    claimed: int = 0
    first_action: int = 0
    released: int = 0
    resolved: int = 0

    def as_dict(self) -> dict:
        return {
            "escalated": self.escalated,
            "claimed": self.claimed,
            "first_action": self.first_action,
            "released": self.released,
            "resolved": self.resolved,
        }


@dataclass(frozen=True)
class HandoffStats:
    counts: Counts
    time_to_claim: Distribution
    time_to_first_action: Distribution


@dataclass(frozen=True)
class Baseline:
    """The account's manual stopwatch timings: how many, and their median in minutes."""

    n: int
    median_minutes: float | None

    @property
    def is_enough(self) -> bool:
        return self.n >= BASELINE_MIN_MEASUREMENTS

    @property
    def missing(self) -> int:
        return max(0, BASELINE_MIN_MEASUREMENTS - self.n)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "median_minutes": _round(self.median_minutes, 2),
            "required": BASELINE_MIN_MEASUREMENTS,
        }


@dataclass(frozen=True)
class Recovered:
    """Minutes recovered per escalation and hours saved per week, or why not."""

    minutes_per_escalation: float | None
    hours_saved_per_week: float | None
    escalations_per_week: float | None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class WeekPoint:
    week: date  # the Monday
    escalated: int = 0
    claimed: int = 0
    first_action: int = 0
    median_time_to_claim: float | None = None
    median_time_to_first_action: float | None = None

    def as_dict(self) -> dict:
        return {
            "week": self.week.isoformat(),
            "escalated": self.escalated,
            "claimed": self.claimed,
            "first_action": self.first_action,
            "median_time_to_claim": self.median_time_to_claim,
            "median_time_to_first_action": self.median_time_to_first_action,
        }


@dataclass(frozen=True)
class HistogramBin:
    lower: float  # seconds, included
    upper: float | None  # seconds, excluded; None for the last, open-ended bin
    count: int


@dataclass(frozen=True)
class PilotCheck:
    """Does the account save more than an hour a week, and for how long has it been on?"""

    hours_saved_per_week: float | None
    passed: bool | None
    first_escalation_at: datetime | None
    weeks_since_first_escalation: float | None
    target: float = PILOT_TARGET_HOURS_PER_WEEK

    def as_dict(self) -> dict:
        return {
            "target_hours_saved_per_week": self.target,
            "hours_saved_per_week": self.hours_saved_per_week,
            "passed": self.passed,
            "first_escalation_at": self.first_escalation_at.isoformat()
            if self.first_escalation_at
            else None,
            "weeks_since_first_escalation": self.weeks_since_first_escalation,
        }


@dataclass(frozen=True)
class BreakdownRow:
    """Claimed handoffs of one take-over mode or one senior, and their time to first action."""

    key: str
    label: str
    claimed: int
    time_to_first_action: Distribution

    @property
    def no_action_yet(self) -> int:
        return self.claimed - self.time_to_first_action.n

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "claimed": self.claimed,
            "no_action_yet": self.no_action_yet,
            "time_to_first_action": self.time_to_first_action.as_dict(),
        }


@dataclass(frozen=True)
class Breakdown:
    by_mode: list[BreakdownRow]
    by_senior: list[BreakdownRow]

    def as_dict(self) -> dict:
        return {
            "by_takeover_mode": [row.as_dict() | {"mode": row.key} for row in self.by_mode],
            "by_senior": [row.as_dict() | {"senior": int(row.key)} for row in self.by_senior],
        }


@dataclass(frozen=True)
class Summary:
    """Everything GET /analytics/flowpilot/escalations answers."""

    window: Window
    counts: Counts
    time_to_claim: Distribution
    time_to_first_action: Distribution
    baseline: Baseline
    recovered: Recovered
    weekly: list[WeekPoint]
    pilot: PilotCheck
    breakdown: Breakdown
    first_actions: Sketch  # for the dashboard's distribution chart

    def as_dict(self) -> dict:
        return {
            "window": self.window.as_dict(),
            "definition": FIRST_ACTION_DEFINITION,
            "counts": self.counts.as_dict(),
            "time_to_claim": self.time_to_claim.as_dict(),
            "time_to_first_action": self.time_to_first_action.as_dict(),
            "baseline": self.baseline.as_dict(),
            "escalations_per_week": self.recovered.escalations_per_week,
            "minutes_recovered_per_escalation": self.recovered.minutes_per_escalation,
            "hours_saved_per_week": self.recovered.hours_saved_per_week,
            "reason_code": self.recovered.reason_code,
            "reason": self.recovered.reason,
            "pilot_check": self.pilot.as_dict(),
            "weekly": [point.as_dict() for point in self.weekly],
            "breakdown": self.breakdown.as_dict(),
        }


@dataclass(frozen=True)
class MetricCard:
    """The queue page's card: this week's median time to first action against last week's."""

    this_week: Window
    last_week: Window
    this_week_first_action: Distribution
    last_week_first_action: Distribution
    baseline: Baseline
    recovered: Recovered
    recovered_window: Window
    change_percent: float | None = None

    @property
    def compare_min(self) -> int:
        return WEEK_COMPARE_MIN

    @property
    def too_few_to_compare(self) -> bool:
        """Both weeks have medians, but one has too few handoffs for a change to mean much."""
        this, last = self.this_week_first_action, self.last_week_first_action
        return (
            this.median is not None
            and last.median is not None
            and min(this.n, last.n) < WEEK_COMPARE_MIN
        )


# --- Computations --------------------------------------------------------------------------


def _counts(total: Tally) -> Counts:
    return Counts(
        escalated=total.escalated,
        claimed=total.claimed,
        first_action=total.first_action.n,
        released=total.released,
        resolved=total.resolved,
    )


def _stats(total: Tally) -> HandoffStats:
    return HandoffStats(
        _counts(total),
        Distribution.from_sketch(total.claim),
        Distribution.from_sketch(total.first_action),
    )


def handoff_stats(account_id: int, window: Window, *, now: datetime | None = None) -> HandoffStats:
    """Counts, time to claim and post-claim time to first action of the window's handoffs."""
    total, _ = window_tallies(account_id, window, now=now)
    return _stats(total)


def time_to_first_action(
    account_id: int, window: Window, *, now: datetime | None = None
) -> Distribution:
    """Post-claim time to first action (seconds) of the handoffs escalated in the window."""
    total, _ = window_tallies(account_id, window, now=now)
    return Distribution.from_sketch(total.first_action)


def baseline(account_id: int) -> Baseline:
    """All of the account's manual timings: the old process does not move with the window."""
    minutes = sorted(
        float(value)
        for value in BaselineMeasurement.objects.filter(account_id=account_id)
        .order_by()
        .values_list("minutes", flat=True)
    )
    return Baseline(n=len(minutes), median_minutes=percentile_cont(minutes, 0.5))


def covered_weeks(window: Window, *, first_escalation: datetime | None, now: datetime) -> float:
    """Weeks of the window the account actually lived through, never less than one.

    The window is cut to start no earlier than the first escalation and to end no later than
    now, so a 30-day window over a 10-day-old pilot does not dilute its weekly rate; the floor
    of one week keeps two busy days from being extrapolated into a week.
    """
    start = window.start_at if first_escalation is None else max(window.start_at, first_escalation)
    end = min(window.end_at, now)
    return max(1.0, (end - start).total_seconds() / SECONDS_PER_WEEK)


def minutes_recovered(
    *,
    baseline: Baseline,
    time_to_first_action: Distribution,
    weeks: float,
) -> Recovered:
    """Baseline median − in-product median, and what it adds up to per week.

    Escalations per week counts the handoffs with a first action (the ones the in-product
    median describes), over the weeks the window covers.
    """
    per_week = round(time_to_first_action.n / weeks, 2) if weeks > 0 else None
    if not baseline.is_enough:
        noun = "timing" if baseline.missing == 1 else "timings"
        return Recovered(
            None,
            None,
            per_week,
            reason_code="baseline_too_small",
            reason=(
                f"The manual baseline has {baseline.n} of the {BASELINE_MIN_MEASUREMENTS} "
                f"stopwatch timings needed: record {baseline.missing} more {noun} to compare."
            ),
        )
    if time_to_first_action.median is None:
        return Recovered(
            None,
            None,
            per_week,
            reason_code="no_first_actions",
            reason="No handoff escalated in this window has a first action yet.",
        )
    minutes = baseline.median_minutes - time_to_first_action.median / 60
    hours = minutes * time_to_first_action.n / weeks / 60
    return Recovered(round(minutes, 1), round(hours, 2), per_week)


def _weeks_of(window: Window) -> list[date]:
    monday = window.start - timedelta(days=window.start.weekday())
    weeks = []
    while monday <= window.end:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def _week_point(week: date, figures: WeekFigures | None) -> WeekPoint:
    if figures is None:
        return WeekPoint(week=week)
    return WeekPoint(
        week=week,
        escalated=figures.escalated,
        claimed=figures.claimed,
        first_action=figures.first_action,
        median_time_to_claim=_round(figures.claim_percentiles[0]),
        median_time_to_first_action=_round(figures.first_action_percentiles[0]),
    )


def _series(window: Window, weeks: dict[date, WeekFigures]) -> list[WeekPoint]:
    return [_week_point(week, weeks.get(week)) for week in _weeks_of(window)]


def weekly_series(account_id: int, window: Window, *, now: datetime | None = None):
    """One point per Monday-to-Sunday week touching the window (first and last may be
    partial), empty weeks included: counts and median durations in seconds."""
    _, weeks = window_tallies(account_id, window, now=now)
    return _series(window, weeks)


def window_report(
    account_id: int, window: Window, *, now: datetime | None = None
) -> tuple[HandoffStats, list[WeekPoint]]:
    """The window's stats and its weekly series, from one set of tallies."""
    total, weeks = window_tallies(account_id, window, now=now)
    return _stats(total), _series(window, weeks)


HISTOGRAM_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
HISTOGRAM_MAX_BINS = 12


def histogram_layout(p90_seconds: float | None) -> tuple[int, int]:
    """(bin width in seconds, number of bins): about a dozen round bins up to a little past
    the 90th percentile, the last one open-ended for the long tail."""
    upper = max((p90_seconds or 0) * 1.25, 60)
    for step in HISTOGRAM_STEPS:
        if math.ceil(upper / step) <= HISTOGRAM_MAX_BINS - 1:
            return step, math.ceil(upper / step) + 1
    step = HISTOGRAM_STEPS[-1]
    return step, HISTOGRAM_MAX_BINS


def histogram_of(first_actions: Sketch, *, bin_seconds: int, bins: int) -> list[HistogramBin]:
    """How many handoffs got their first action within each bin of time after the claim;
    the last bin takes everything longer. From the sketch: exact while it holds every value,
    else each 1 % bin's handoffs are spread evenly over it (as its percentiles are)."""
    counts = [0] * bins

    def bucket(seconds: float) -> int:
        return min(max(int(seconds // bin_seconds), 0), bins - 1)

    for lower, upper, count in first_actions.spread():
        if count == 1 or bucket(lower) == bucket(upper):
            counts[bucket(lower)] += count
            continue

        # The bin's handoffs, spread evenly, cross a bucket edge: count each bucket's share
        # by bisecting the (increasing) buckets of the spread positions, not one by one.
        def bucket_at(index: int, lower=lower, upper=upper, count=count) -> int:
            return bucket(lower + (upper - lower) * (index + 0.5) / count)

        index = 0
        while index < count:
            here = bucket_at(index)
            after = bisect_right(range(count), here, lo=index, key=bucket_at)
            counts[here] += after - index
            index = after
    return [
        HistogramBin(
            lower=float(index * bin_seconds),
            upper=None if index == bins - 1 else float((index + 1) * bin_seconds),
            count=counts[index],
        )
        for index in range(bins)
    ]


def first_action_histogram(
    account_id: int, window: Window, *, bin_seconds: int, bins: int, now: datetime | None = None
) -> list[HistogramBin]:
    total, _ = window_tallies(account_id, window, now=now)
    return histogram_of(total.first_action, bin_seconds=bin_seconds, bins=bins)


def pilot_check(
    recovered: Recovered, *, first_escalation: datetime | None, now: datetime
) -> PilotCheck:
    weeks = (
        None
        if first_escalation is None
        else round(max(0.0, (now - first_escalation).total_seconds()) / SECONDS_PER_WEEK, 1)
    )
    hours = recovered.hours_saved_per_week
    return PilotCheck(
        hours_saved_per_week=hours,
        passed=None if hours is None else hours > PILOT_TARGET_HOURS_PER_WEEK,
        first_escalation_at=first_escalation,
        weeks_since_first_escalation=weeks,
    )


def _breakdown_row(key: str, label: str, group: Group) -> BreakdownRow:
    return BreakdownRow(
        key=key,
        label=label,
        claimed=group.claimed,
        time_to_first_action=Distribution.from_sketch(group.first_action),
    )


def breakdown(total: Tally) -> Breakdown:
    """Time to first action by how the senior took over, and by senior."""
    by_mode = [
        _breakdown_row(mode.value, mode.label, total.by_mode.get(mode.value, Group()))
        for mode in TakeoverMode
    ]
    claimers = [pk for pk in total.by_claimer if pk is not None]
    names = {user.pk: user.name for user in User.objects.filter(pk__in=claimers)}
    by_senior = sorted(
        (
            _breakdown_row(str(pk), names.get(pk, "Someone"), total.by_claimer[pk])
            for pk in claimers
        ),
        key=lambda row: (-row.claimed, row.label),
    )
    return Breakdown(by_mode=by_mode, by_senior=by_senior)


def escalation_summary(
    account_id: int,
    window: Window,
    *,
    now: datetime,
    tallies: tuple[Tally, dict[date, WeekFigures]] | None = None,
) -> Summary:
    """The JSON endpoint's and the dashboard's answer: a fixed handful of queries whatever
    the window holds (rollups, the live weeks, the baseline, the first escalation, names).
    ``tallies``: the window's, when the caller has them already."""
    total, weeks = tallies or window_tallies(account_id, window, now=now)
    stats = _stats(total)
    timings = baseline(account_id)
    first = first_escalation_at(account_id)
    recovered = minutes_recovered(
        baseline=timings,
        time_to_first_action=stats.time_to_first_action,
        weeks=covered_weeks(window, first_escalation=first, now=now),
    )
    return Summary(
        window=window,
        counts=stats.counts,
        time_to_claim=stats.time_to_claim,
        time_to_first_action=stats.time_to_first_action,
        baseline=timings,
        recovered=recovered,
        weekly=_series(window, weeks),
        pilot=pilot_check(recovered, first_escalation=first, now=now),
        breakdown=breakdown(total),
        first_actions=total.first_action,
    )


def default_window(now: datetime) -> Window:
    return Window.last_days(DEFAULT_WINDOW_DAYS, today=timezone.localdate(now))


def metric_card(
    account_id: int,
    *,
    now: datetime,
    tallies: tuple[Tally, dict[date, WeekFigures]] | None = None,
) -> MetricCard:
    """This week's median time to first action against last week's, and minutes recovered
    over the default window (the number the dashboard opens with).

    All three come from the default window's tallies (``tallies``, when the caller has
    them): its weeks hold this week so far and the whole of last week.
    """
    today = timezone.localdate(now)
    this_week = Window.week_of(today)
    last_week = Window.week_of(today - timedelta(days=7))
    recovered_window = default_window(now)
    total, weeks = tallies or window_tallies(account_id, recovered_window, now=now)
    nothing = WeekFigures()
    this, last = (
        Distribution.from_values(figures.first_action, figures.first_action_percentiles)
        for figures in (weeks.get(this_week.start, nothing), weeks.get(last_week.start, nothing))
    )
    timings = baseline(account_id)
    if timings.is_enough:
        recent = Distribution.from_sketch(total.first_action)
        weeks_covered = covered_weeks(
            recovered_window, first_escalation=first_escalation_at(account_id), now=now
        )
    else:
        # Not enough baseline: nothing to compare, so no query for it either.
        recent, weeks_covered = Distribution(0, None, None, None), 1.0
    change = None
    if this.median is not None and last.median and min(this.n, last.n) >= WEEK_COMPARE_MIN:
        change = round((this.median - last.median) / last.median * 100)
    return MetricCard(
        this_week=this_week,
        last_week=last_week,
        this_week_first_action=this,
        last_week_first_action=last,
        baseline=timings,
        recovered=minutes_recovered(
            baseline=timings, time_to_first_action=recent, weeks=weeks_covered
        ),
        recovered_window=recovered_window,
        change_percent=change,
    )
