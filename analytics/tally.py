"""What the metrics add up, for one week or a whole window: counts and duration sketches.

The one SQL of the analytics numbers lives here (``handoff_rows``): the handoffs escalated
in a time range, with their two durations. A week's ``Tally`` is built from those rows,
either live (the window's partial weeks) or once by the worker into ``WeeklyRollup``; a
window's tally is the merge of its weeks'. PostgreSQL and SQLite run the same code: only
the seconds-between expression differs (``SecondsBetween``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from django.core.cache import cache
from django.db import NotSupportedError, connections
from django.db.models import (
    Case,
    DateField,
    Expression,
    F,
    FloatField,
    Func,
    IntegerField,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import TruncWeek

from analytics.sketch import EXACT_UP_TO, Sketch, bins_of
from escalations.models import Handoff, TakeoverMode

# The percentiles every figure gives: median, 75th and 90th.
PERCENTILES = (0.5, 0.75, 0.9)


class SecondsBetween(Func):
    """Seconds from ``start`` to ``end`` as a float; NULL when either is NULL."""

    output_field = FloatField()
    arity = 2

    def __init__(self, end: str | Expression, start: str | Expression) -> None:
        super().__init__(end, start)

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"SecondsBetween is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra_context):
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


def time_to_claim_expression() -> SecondsBetween:
    """Queue wait: from the (first) escalation to the claim."""
    return SecondsBetween("claimed_at", "created_at")


def time_to_first_action_expression() -> SecondsBetween:
    """From the claim to the claimer's own first action."""
    return SecondsBetween("first_action_at", "claimed_at")


def handoffs_between(account_id: int, start: datetime, end: datetime) -> QuerySet:
    """The account's handoffs escalated in [start, end) (index: account, created_at)."""
    return Handoff.objects.filter(
        account_id=account_id, created_at__gte=start, created_at__lt=end
    ).order_by()


FIRST_ESCALATION_CACHE_SECONDS = 24 * 3600


def first_escalation_at(account_id: int) -> datetime | None:
    """When the account's first handoff was escalated (index: account, created_at).

    Kept in the cache once known: a new escalation is never earlier (a re-queued handoff
    keeps its first escalation time, which is later than the first).
    """
    key = f"analytics:first-escalation:{account_id}"
    first = cache.get(key)
    if first is None:
        first = (
            Handoff.objects.filter(account_id=account_id)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if first is not None:
            cache.set(key, first, FIRST_ESCALATION_CACHE_SECONDS)
    return first


ROW_FIELDS = (
    "week",
    "claimer",
    "mode",
    "claim_seconds",
    "first_action_seconds",
    "was_released",
    "was_resolved",
)


def _flag(field: str) -> Case:
    return Case(When(**{f"{field}__isnull": False}, then=1), default=0, output_field=IntegerField())


def _when_claimed(value: Expression) -> Case:
    """``value`` for a claimed handoff, NULL for one nobody claimed."""
    return Case(When(claimed_at__isnull=False, then=value), default=None)


def handoff_rows(account_id: int, start: datetime, end: datetime) -> list[tuple]:
    """The one query behind every figure: per handoff escalated in [start, end), its week
    (the Monday's midnight in the current time zone, as the database gives it: ``week_of``
    makes it a date), and, when it was claimed, its claimer and take-over mode; its two
    durations in seconds (NULL until there is one); whether it was released or resolved.

    The ORM writes the SQL; the rows are read from the cursor in one ``fetchall`` and
    skip Django's per-value converters: a busy week is thousands of rows.
    """
    rows = (
        handoffs_between(account_id, start, end)
        .annotate(
            week=TruncWeek("created_at", output_field=DateField()),
            claimer=_when_claimed(F("claimed_by_id")),
            mode=_when_claimed(
                Case(
                    When(takeover_mode="", then=Value(TakeoverMode.SELF.value)),
                    default=F("takeover_mode"),
                )
            ),
            claim_seconds=time_to_claim_expression(),
            first_action_seconds=time_to_first_action_expression(),
            was_released=_flag("released_at"),
            was_resolved=_flag("resolved_at"),
        )
        .values_list(*ROW_FIELDS)
    )
    # Compiled for the database the rows are read from (``sql_with_params`` would write the
    # default database's dialect).
    sql, params = rows.query.get_compiler(rows.db).as_sql()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()  # one call: iterating a cursor costs per row


def week_of(value: date | datetime | str) -> date:
    """The week column as a date: PostgreSQL gives a timestamp, SQLite the date's text."""
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.date()
    return value


@dataclass
class Group:
    """Claimed handoffs of one take-over mode or one senior: how many, and how fast."""

    claimed: int = 0
    first_action: Sketch = field(default_factory=Sketch)

    def as_json(self) -> dict:
        return {"claimed": self.claimed, "first_action": self.first_action.as_json()}

    @classmethod
    def from_json(cls, data: dict) -> Group:
        return cls(claimed=data["claimed"], first_action=Sketch.from_json(data["first_action"]))


@dataclass
class Tally:
    """Counts and sketches of a set of handoffs (a week, or a window)."""

    escalated: int = 0
    released: int = 0
    resolved: int = 0
    claim: Sketch = field(default_factory=Sketch)
    first_action: Sketch = field(default_factory=Sketch)
    by_mode: dict[str, Group] = field(default_factory=dict)
    by_claimer: dict[int, Group] = field(default_factory=dict)

    @property
    def claimed(self) -> int:
        return self.claim.n

    def minus(self, part: Tally) -> Tally | None:
        """This tally without ``part``'s handoffs (some days of the same week), or None when
        a sketch cannot be subtracted exactly (``Sketch.minus``): then compute it live."""

        def groups(mine: dict, theirs: dict) -> dict | None:
            result = {}
            for key, group in mine.items():
                other = theirs.get(key, Group())
                claimed = group.claimed - other.claimed
                rest = group.first_action.minus(other.first_action)
                if claimed < 0 or rest is None:
                    return None
                if claimed:
                    result[key] = Group(claimed=claimed, first_action=rest)
                elif rest.n:
                    return None
            return result if set(theirs) <= set(mine) else None

        claim = self.claim.minus(part.claim)
        first_action = self.first_action.minus(part.first_action)
        by_mode = groups(self.by_mode, part.by_mode)
        by_claimer = groups(self.by_claimer, part.by_claimer)
        if claim is None or first_action is None or by_mode is None or by_claimer is None:
            return None
        return Tally(
            escalated=self.escalated - part.escalated,
            released=self.released - part.released,
            resolved=self.resolved - part.resolved,
            claim=claim,
            first_action=first_action,
            by_mode=by_mode,
            by_claimer=by_claimer,
        )

    def figures(self) -> WeekFigures:
        """What the weekly series and the queue's card show of a week."""
        return WeekFigures(
            escalated=self.escalated,
            claimed=self.claimed,
            first_action=self.first_action.n,
            claim_percentiles=tuple(self.claim.percentiles(PERCENTILES)),
            first_action_percentiles=tuple(self.first_action.percentiles(PERCENTILES)),
        )

    @classmethod
    def merged(cls, tallies: Iterable[Tally]) -> Tally:
        """One tally of many (a window of weeks), sketch by sketch (``Sketch.merged``)."""
        tallies = list(tallies)

        def groups(attribute: str) -> dict:
            keys = {key for tally in tallies for key in getattr(tally, attribute)}
            return {
                key: Group(
                    claimed=sum(
                        getattr(t, attribute)[key].claimed
                        for t in tallies
                        if key in getattr(t, attribute)
                    ),
                    first_action=Sketch.merged(
                        getattr(t, attribute)[key].first_action
                        for t in tallies
                        if key in getattr(t, attribute)
                    ),
                )
                for key in keys
            }

        return cls(
            escalated=sum(t.escalated for t in tallies),
            released=sum(t.released for t in tallies),
            resolved=sum(t.resolved for t in tallies),
            claim=Sketch.merged(t.claim for t in tallies),
            first_action=Sketch.merged(t.first_action for t in tallies),
            by_mode=groups("by_mode"),
            by_claimer=groups("by_claimer"),
        )

    def as_json(self) -> dict:
        return {
            "escalated": self.escalated,
            "released": self.released,
            "resolved": self.resolved,
            "claim": self.claim.as_json(),
            "first_action": self.first_action.as_json(),
            "by_mode": {mode: group.as_json() for mode, group in self.by_mode.items()},
            "by_claimer": {str(pk): group.as_json() for pk, group in self.by_claimer.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> Tally:
        return cls(
            escalated=data["escalated"],
            released=data["released"],
            resolved=data["resolved"],
            claim=Sketch.from_json(data["claim"]),
            first_action=Sketch.from_json(data["first_action"]),
            by_mode={mode: Group.from_json(group) for mode, group in data["by_mode"].items()},
            by_claimer={
                int(pk): Group.from_json(group) for pk, group in data["by_claimer"].items()
            },
        )


@dataclass(frozen=True)
class WeekFigures:
    """One week's counts and its two durations' percentiles (``PERCENTILES``, seconds):
    small enough to keep for every week of a long window."""

    escalated: int = 0
    claimed: int = 0
    first_action: int = 0
    claim_percentiles: tuple[float | None, ...] = (None,) * len(PERCENTILES)
    first_action_percentiles: tuple[float | None, ...] = (None,) * len(PERCENTILES)


def weekly_tallies(account_id: int, start: datetime, end: datetime) -> dict[date, Tally]:
    """Live: the tallies of the weeks touching [start, end), from the handoff rows."""
    rows = handoff_rows(account_id, start, end)
    if not rows:
        return {}
    by_week: dict = {}
    if rows[0][0] == rows[-1][0] and len({row[0] for row in rows}) == 1:
        by_week[rows[0][0]] = rows  # the usual case: one week
    else:
        for row in rows:
            by_week.setdefault(row[0], []).append(row)
    return {week_of(week): _tally_of(week_rows) for week, week_rows in by_week.items()}


def _tally_of(rows: list[tuple]) -> Tally:
    """One week's tally from its rows, column by column.

    Each duration is put in its bin once (``bins_of``) and the bins are counted with
    ``Counter`` over the columns (mode or claimer, bin): the same sketches as ``Sketch.of``
    of each group's values, without a Python loop per handoff and group. Groups of up to
    ``EXACT_UP_TO`` values keep their values (exact).
    """
    _, claimers, modes, claims, firsts, released, resolved = zip(*rows, strict=True)
    acted = [
        (mode, claimer, seconds)
        for mode, claimer, seconds in zip(modes, claimers, firsts, strict=True)
        if seconds is not None
    ]
    acted_modes, acted_claimers, acted_seconds = zip(*acted, strict=True) if acted else ((), (), ())
    first_bins = bins_of(acted_seconds)

    def groups(keys: tuple, acted_keys: tuple) -> dict:
        claimed = Counter(keys)
        per_key_bins = Counter(zip(acted_keys, first_bins, strict=True))
        per_key_n = Counter(acted_keys)
        result = {}
        for key, count in claimed.items():
            if key is None:  # not claimed
                continue
            n = per_key_n.get(key, 0)
            if n <= EXACT_UP_TO:
                sketch = Sketch.of(
                    [v for k, v in zip(acted_keys, acted_seconds, strict=True) if k == key]
                )
            else:
                sketch = Sketch.of_bins(n, {b: c for (k, b), c in per_key_bins.items() if k == key})
            result[key] = Group(claimed=count, first_action=sketch)
        return result

    claim_values = [seconds for seconds in claims if seconds is not None]
    return Tally(
        escalated=len(rows),
        released=sum(released),
        resolved=sum(resolved),
        claim=Sketch.of(claim_values),
        first_action=(
            Sketch.of(acted_seconds)
            if len(acted_seconds) <= EXACT_UP_TO
            else Sketch.of_bins(len(first_bins), Counter(first_bins))
        ),
        by_mode=groups(modes, acted_modes),
        by_claimer=groups(claimers, acted_claimers),
    )
