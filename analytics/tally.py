"""What the metrics add up, for one week or a whole window: counts and duration sketches.

The one SQL of the analytics numbers lives here (``handoff_rows``): the handoffs escalated
in a time range, with their two durations. A week's ``Tally`` is built from those rows,
either live (the window's partial weeks) or once by the worker into ``WeeklyRollup``; a
window's tally is the merge of its weeks'. PostgreSQL and SQLite run the same code: only
the seconds-between expression differs (``SecondsBetween``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import NotSupportedError, connections
from django.db.models import (
    Case,
    DateField,
    Expression,
    FloatField,
    Func,
    IntegerField,
    QuerySet,
    When,
)
from django.db.models.functions import TruncWeek

from analytics.sketch import Sketch
from escalations.models import Handoff, TakeoverMode


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


ROW_FIELDS = (
    "week",
    "claimed_by_id",
    "takeover_mode",
    "claim_seconds",
    "first_action_seconds",
    "was_released",
    "was_resolved",
)


def _flag(field: str) -> Case:
    return Case(When(**{f"{field}__isnull": False}, then=1), default=0, output_field=IntegerField())


def handoff_rows(account_id: int, start: datetime, end: datetime) -> list[tuple]:
    """The one query behind every figure: per handoff escalated in [start, end), its week
    (Monday, current time zone), claimer, take-over mode, two durations and whether it was
    released or resolved.

    The ORM writes the SQL; the rows are read from the cursor as they come (numbers, ids,
    the week) so that a busy week's thousands of rows skip the per-value converters.
    """
    rows = (
        handoffs_between(account_id, start, end)
        .annotate(
            week=TruncWeek("created_at", output_field=DateField()),
            claim_seconds=time_to_claim_expression(),
            first_action_seconds=time_to_first_action_expression(),
            was_released=_flag("released_at"),
            was_resolved=_flag("resolved_at"),
        )
        .values_list(*ROW_FIELDS)
    )
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()  # one call: iterating a cursor costs per row
    if rows and isinstance(rows[0][0], str):  # SQLite gives the text of the date
        return [(date.fromisoformat(week), *rest) for week, *rest in rows]
    if rows and isinstance(rows[0][0], datetime):  # PostgreSQL's date_trunc, a timestamp
        return [(week.date(), *rest) for week, *rest in rows]
    return rows


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


def weekly_tallies(account_id: int, start: datetime, end: datetime) -> dict[date, Tally]:
    """Live: the tallies of the weeks touching [start, end), from the handoff rows.

    The durations are gathered in lists first and each sketch is made in one go
    (``Sketch.of``): a busy week is thousands of rows.
    """
    gathered: dict[date, _Gathered] = {}
    for week, claimer, mode, claim, first_action, released, resolved in handoff_rows(
        account_id, start, end
    ):
        bucket = gathered.get(week)
        if bucket is None:
            bucket = gathered[week] = _Gathered()
        bucket.escalated += 1
        bucket.released += released
        bucket.resolved += resolved
        if claim is None:
            continue
        bucket.claims.append(claim)
        mode_group = bucket.by_mode.setdefault(mode or TakeoverMode.SELF, ([], [0]))
        claimer_group = bucket.by_claimer.setdefault(claimer, ([], [0]))
        mode_group[1][0] += 1
        claimer_group[1][0] += 1
        if first_action is not None:
            bucket.first_actions.append(first_action)
            mode_group[0].append(first_action)
            claimer_group[0].append(first_action)
    return {week: bucket.tally() for week, bucket in gathered.items()}


@dataclass
class _Gathered:
    """One week's raw values, before they become sketches."""

    escalated: int = 0
    released: int = 0
    resolved: int = 0
    claims: list[float] = field(default_factory=list)
    first_actions: list[float] = field(default_factory=list)
    by_mode: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)
    by_claimer: dict[int, tuple[list[float], list[int]]] = field(default_factory=dict)

    def tally(self) -> Tally:
        def groups(raw: dict) -> dict:
            return {
                key: Group(claimed=claimed[0], first_action=Sketch.of(values))
                for key, (values, claimed) in raw.items()
            }

        return Tally(
            escalated=self.escalated,
            released=self.released,
            resolved=self.resolved,
            claim=Sketch.of(self.claims),
            first_action=Sketch.of(self.first_actions),
            by_mode=groups(self.by_mode),
            by_claimer=groups(self.by_claimer),
        )
