"""The numbers behind the wedge: time to claim, time to first action, the manual baseline,
minutes recovered and hours saved.

Two metrics, measured differently, compared only when both exist:

- time to first action is measured by ResolutionFlow: from a senior's claim of a handoff to
  their first action in the session (``Handoff.first_action_at - Handoff.claimed_at``);
- the manual baseline is timed by an admin with a stopwatch: how long a senior spent on a
  manual "tell me what you tried" handoff before they could act (``BaselineMeasurement``).

Minutes recovered per escalation is the baseline median minus the in-product median, given
only when the baseline has at least ``BASELINE_MIN_MEASUREMENTS`` timings. The in-product
number alone is never called minutes recovered.

Every function is pure: an account id and a window in, numbers out. The work happens in the
database: on PostgreSQL percentiles are ``percentile_cont(...) WITHIN GROUP (ORDER BY ...)``;
on SQLite the SQL returns the window's values sorted and ``percentile_cont`` below
interpolates them exactly as PostgreSQL does. A handoff belongs to the window its
``created_at`` (the escalation) falls in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.postgres.fields import ArrayField
from django.db import NotSupportedError, connections
from django.db.models import (
    Aggregate,
    Count,
    DateField,
    Expression,
    FloatField,
    Func,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Cast, Floor, Greatest, Least, TruncWeek
from django.utils import timezone

from analytics.models import BaselineMeasurement
from escalations.models import Handoff

BASELINE_MIN_MEASUREMENTS = 5
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 731  # two years, a leap day included
PILOT_TARGET_HOURS_PER_WEEK = 1.0
PERCENTILES = (0.5, 0.75, 0.9)
SECONDS_PER_WEEK = 7 * 24 * 3600


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


# --- SQL building blocks -------------------------------------------------------------------


class SecondsBetween(Func):
    """Seconds from ``start`` to ``end`` as a float; NULL when either is NULL."""

    output_field = FloatField()
    arity = 2

    def __init__(self, end: str | Expression, start: str | Expression) -> None:
        super().__init__(end, start)

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"SecondsBetween is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra_context):
        # date_part gives float8; EXTRACT gives numeric since PostgreSQL 14, and the window's
        # percentiles ran a third faster on float8 (measured with bench/analytics.py's data).
        return super().as_sql(
            compiler,
            connection,
            template="date_part('epoch', %(expressions)s)",
            arg_joiner=" - ",
            **extra_context,
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django's own SQLite function: the exact difference in microseconds.
        return super().as_sql(
            compiler,
            connection,
            template="(django_timestamp_diff(%(expressions)s) / 1000000.0)",
            arg_joiner=", ",
            **extra_context,
        )


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate, several fractions in one sort:
    ``percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY expression)`` → a list.
    """

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    arity = 1
    template = "%(function)s(%(fractions)s) WITHIN GROUP (ORDER BY %(expressions)s)%(filter)s"

    def __init__(self, expression, fractions: Sequence[float], **extra) -> None:
        fractions = tuple(float(fraction) for fraction in fractions)
        if not fractions or any(not 0.0 <= fraction <= 1.0 for fraction in fractions):
            raise ValueError("percentile fractions must lie between 0 and 1")
        self.fractions = fractions
        super().__init__(expression, output_field=ArrayField(FloatField()), **extra)

    def as_sql(self, compiler, connection, **extra_context):
        if connection.vendor != "postgresql":
            raise NotSupportedError("percentile_cont needs PostgreSQL; see percentile_cont().")
        # The fractions are floats checked above, never user input: safe to inline.
        listed = ", ".join(repr(fraction) for fraction in self.fractions)
        extra_context["fractions"] = f"ARRAY[{listed}]::double precision[]"
        return super().as_sql(compiler, connection, **extra_context)


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Interpolate like PostgreSQL's percentile_cont over values sorted ascending."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    low = float(sorted_values[lower])
    if upper == lower:
        return low
    high = float(sorted_values[upper])
    return low + (high - low) * (position - lower)


def _is_postgres(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def time_to_claim_expression() -> SecondsBetween:
    return SecondsBetween("claimed_at", "created_at")


def time_to_first_action_expression() -> SecondsBetween:
    return SecondsBetween("first_action_at", "claimed_at")


def handoffs_in(account_id: int, window: Window) -> QuerySet:
    """The account's handoffs escalated within the window (index: account, created_at)."""
    return Handoff.objects.filter(
        account_id=account_id, created_at__gte=window.start_at, created_at__lt=window.end_at
    ).order_by()


def _sorted_values(queryset: QuerySet, expression: Expression) -> list[float]:
    return list(
        queryset.annotate(value=expression)
        .filter(value__isnull=False)
        .order_by("value")
        .values_list("value", flat=True)
    )


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

    def as_dict(self) -> dict:
        return {
            "window": self.window.as_dict(),
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


# --- Computations --------------------------------------------------------------------------


def handoff_stats(account_id: int, window: Window) -> HandoffStats:
    """Counts, time to claim and post-claim time to first action of the window's handoffs.

    One query on PostgreSQL; on SQLite one for the counts and one per sorted duration.
    """
    handoffs = handoffs_in(account_id, window)
    claim = time_to_claim_expression()
    first_action = time_to_first_action_expression()
    count_aggregates = {
        "escalated": Count("pk"),
        "claimed": Count("pk", filter=Q(claimed_at__isnull=False)),
        "first_action": Count("pk", filter=Q(first_action_at__isnull=False)),
        "released": Count("pk", filter=Q(released_at__isnull=False)),
        "resolved": Count("pk", filter=Q(resolved_at__isnull=False)),
    }
    if _is_postgres(handoffs):
        row = handoffs.aggregate(
            **count_aggregates,
            claim_n=Count(claim),
            claim_p=PercentileCont(claim, PERCENTILES),
            first_action_n=Count(first_action),
            first_action_p=PercentileCont(first_action, PERCENTILES),
        )
        time_to_claim = Distribution.from_values(row["claim_n"], row["claim_p"])
        time_to_first_action = Distribution.from_values(
            row["first_action_n"], row["first_action_p"]
        )
    else:
        row = handoffs.aggregate(**count_aggregates)
        time_to_claim = Distribution.from_sorted(_sorted_values(handoffs, claim))
        time_to_first_action = Distribution.from_sorted(_sorted_values(handoffs, first_action))
    counts = Counts(**{name: row[name] or 0 for name in count_aggregates})
    return HandoffStats(counts, time_to_claim, time_to_first_action)


def time_to_first_action(account_id: int, window: Window) -> Distribution:
    """Post-claim time to first action (seconds) of the handoffs escalated in the window."""
    handoffs = handoffs_in(account_id, window)
    expression = time_to_first_action_expression()
    if _is_postgres(handoffs):
        row = handoffs.aggregate(n=Count(expression), p=PercentileCont(expression, PERCENTILES))
        return Distribution.from_values(row["n"], row["p"])
    return Distribution.from_sorted(_sorted_values(handoffs, expression))


def baseline(account_id: int) -> Baseline:
    """All of the account's manual timings: the old process does not move with the window."""
    timings = BaselineMeasurement.objects.filter(account_id=account_id).order_by()
    minutes = Cast("minutes", FloatField())
    if _is_postgres(timings):
        row = timings.aggregate(n=Count("pk"), p=PercentileCont(minutes, [0.5]))
        return Baseline(n=row["n"], median_minutes=row["p"][0] if row["p"] else None)
    values = _sorted_values(timings, minutes)
    return Baseline(n=len(values), median_minutes=percentile_cont(values, 0.5))


def first_escalation_at(account_id: int) -> datetime | None:
    """When the account's first handoff was escalated (index: account, created_at)."""
    return (
        Handoff.objects.filter(account_id=account_id)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )


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


def weekly_series(account_id: int, window: Window) -> list[WeekPoint]:
    """One point per Monday-to-Sunday week touching the window (first and last may be
    partial), empty weeks included: counts and median durations in seconds."""
    handoffs = handoffs_in(account_id, window).annotate(
        week=TruncWeek("created_at", output_field=DateField())
    )
    claim = time_to_claim_expression()
    first_action = time_to_first_action_expression()
    points: dict[date, WeekPoint] = {}
    if _is_postgres(handoffs):
        rows = (
            handoffs.values("week")
            .annotate(
                escalated=Count("pk"),
                claimed=Count(claim),
                first_action=Count(first_action),
                claim_p=PercentileCont(claim, [0.5]),
                first_action_p=PercentileCont(first_action, [0.5]),
            )
            .order_by("week")
        )
        for row in rows:
            points[row["week"]] = WeekPoint(
                week=row["week"],
                escalated=row["escalated"],
                claimed=row["claimed"],
                first_action=row["first_action"],
                median_time_to_claim=_round(row["claim_p"][0] if row["claim_p"] else None),
                median_time_to_first_action=_round(
                    row["first_action_p"][0] if row["first_action_p"] else None
                ),
            )
    else:
        grouped: dict[date, tuple[list[float], list[float], list[int]]] = {}
        rows = handoffs.annotate(claim=claim, first=first_action).values_list(
            "week", "claim", "first"
        )
        for week, claim_seconds, first_seconds in rows:
            claims, firsts, total = grouped.setdefault(week, ([], [], [0]))
            total[0] += 1
            if claim_seconds is not None:
                claims.append(claim_seconds)
            if first_seconds is not None:
                firsts.append(first_seconds)
        for week, (claims, firsts, total) in grouped.items():
            claims.sort()
            firsts.sort()
            points[week] = WeekPoint(
                week=week,
                escalated=total[0],
                claimed=len(claims),
                first_action=len(firsts),
                median_time_to_claim=_round(percentile_cont(claims, 0.5)),
                median_time_to_first_action=_round(percentile_cont(firsts, 0.5)),
            )
    return [points.get(week, WeekPoint(week=week)) for week in _weeks_of(window)]


def _postgres_window_report(
    account_id: int, window: Window
) -> tuple[HandoffStats, list[WeekPoint]]:
    """handoff_stats and weekly_series in one scan: GROUP BY GROUPING SETS ((week), ()).

    The ORM builds the rows (filter, week, durations); the grouping sets, which the ORM
    cannot express, wrap them. A fifth less work than the two queries (bench/analytics.py).
    """
    rows = (
        handoffs_in(account_id, window)
        .annotate(
            week=TruncWeek("created_at", output_field=DateField()),
            claim_seconds=time_to_claim_expression(),
            first_action_seconds=time_to_first_action_expression(),
        )
        .values(
            "week",
            "claim_seconds",
            "first_action_seconds",
            "claimed_at",
            "first_action_at",
            "released_at",
            "resolved_at",
        )
    )
    inner_sql, params = rows.query.sql_with_params()
    fractions = ", ".join(repr(fraction) for fraction in PERCENTILES)
    sql = f"""
        SELECT GROUPING(week) = 1, week, COUNT(*), COUNT(claimed_at), COUNT(first_action_at),
               COUNT(released_at), COUNT(resolved_at), COUNT(claim_seconds),
               COUNT(first_action_seconds),
               PERCENTILE_CONT(ARRAY[{fractions}]::double precision[])
                   WITHIN GROUP (ORDER BY claim_seconds),
               PERCENTILE_CONT(ARRAY[{fractions}]::double precision[])
                   WITHIN GROUP (ORDER BY first_action_seconds)
        FROM ({inner_sql}) AS handoff
        GROUP BY GROUPING SETS ((week), ())
    """  # noqa: S608 - the inner query is the ORM's, the fractions are constants
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        results = cursor.fetchall()
    stats = HandoffStats(
        Counts(), Distribution(0, None, None, None), Distribution(0, None, None, None)
    )
    points: dict[date, WeekPoint] = {}
    for (
        is_total,
        week,
        escalated,
        claimed,
        first_action,
        released,
        resolved,
        claim_n,
        first_action_n,
        claim_p,
        first_action_p,
    ) in results:
        if is_total:
            stats = HandoffStats(
                Counts(escalated, claimed, first_action, released, resolved),
                Distribution.from_values(claim_n, claim_p),
                Distribution.from_values(first_action_n, first_action_p),
            )
        else:
            # The raw cursor skips the ORM's conversion: date_trunc gives a timestamp.
            week = week.date() if isinstance(week, datetime) else week
            points[week] = WeekPoint(
                week=week,
                escalated=escalated,
                claimed=claim_n,
                first_action=first_action_n,
                median_time_to_claim=_round(claim_p[0]) if claim_n else None,
                median_time_to_first_action=_round(first_action_p[0]) if first_action_n else None,
            )
    return stats, [points.get(week, WeekPoint(week=week)) for week in _weeks_of(window)]


def window_report(account_id: int, window: Window) -> tuple[HandoffStats, list[WeekPoint]]:
    """The window's stats and its weekly series: one query on PostgreSQL."""
    if connections[Handoff.objects.db].vendor == "postgresql":
        return _postgres_window_report(account_id, window)
    return handoff_stats(account_id, window), weekly_series(account_id, window)


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


def first_action_histogram(
    account_id: int, window: Window, *, bin_seconds: int, bins: int
) -> list[HistogramBin]:
    """How many handoffs got their first action within each bin of time after the claim,
    grouped in SQL; the last bin takes everything longer."""
    bucket = Least(
        Greatest(Floor(time_to_first_action_expression() / Value(float(bin_seconds))), Value(0.0)),
        Value(float(bins - 1)),
    )
    rows = (
        handoffs_in(account_id, window)
        .filter(first_action_at__isnull=False, claimed_at__isnull=False)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {int(row["bucket"]): row["n"] for row in rows}
    return [
        HistogramBin(
            lower=float(index * bin_seconds),
            upper=None if index == bins - 1 else float((index + 1) * bin_seconds),
            count=counts.get(index, 0),
        )
        for index in range(bins)
    ]


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


def escalation_summary(account_id: int, window: Window, *, now: datetime) -> Summary:
    """The JSON endpoint's answer: three queries on PostgreSQL, whatever the window holds."""
    stats, weekly = window_report(account_id, window)
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
        weekly=weekly,
        pilot=pilot_check(recovered, first_escalation=first, now=now),
    )


def metric_card(account_id: int, *, now: datetime) -> MetricCard:
    """This week's median time to first action against last week's, and minutes recovered
    over the default window (the number the dashboard opens with)."""
    today = timezone.localdate(now)
    this_week = Window.week_of(today)
    last_week = Window.week_of(today - timedelta(days=7))
    this = time_to_first_action(account_id, this_week)
    last = time_to_first_action(account_id, last_week)
    timings = baseline(account_id)
    recovered_window = Window.last_days(DEFAULT_WINDOW_DAYS, today=today)
    if timings.is_enough:
        recent = time_to_first_action(account_id, recovered_window)
        weeks = covered_weeks(
            recovered_window, first_escalation=first_escalation_at(account_id), now=now
        )
    else:
        # Not enough baseline: nothing to compare, so no query for it either.
        recent, weeks = Distribution(0, None, None, None), 1.0
    change = None
    if this.median is not None and last.median:
        change = round((this.median - last.median) / last.median * 100)
    return MetricCard(
        this_week=this_week,
        last_week=last_week,
        this_week_first_action=this,
        last_week_first_action=last,
        baseline=timings,
        recovered=minutes_recovered(baseline=timings, time_to_first_action=recent, weeks=weeks),
        recovered_window=recovered_window,
        change_percent=change,
    )
