"""Weekly rollups: past weeks added up once, so any window answers fast (issue 15).

A window's figures are the merge of its weeks' tallies (``analytics.tally``):

- a whole past week inside the window comes from its ``WeeklyRollup`` when that is fresh;
- the current week, a week the window cuts (its first, or its last when it ends before
  Sunday), and a week whose rollup is missing or stale are computed live from the handoff
  rows, with the same code: a rollup only ever saves time, never changes a number.

Keeping them current: every handoff change sends ``escalations.signals.handoff_changed``
inside its transaction; the receiver marks that handoff's week stale (when it is a past
week with a rollup) and, after commit, enqueues ``analytics.tasks.refresh_rollups`` (inline
after the response in embedded mode). The outbox drain (every 5 s with a worker) builds
weeks that just ended and retries anything left stale. Rebuilding is safe to run twice:
``version`` keeps a rebuild that raced a change from marking the week fresh.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from analytics.models import WeeklyRollup
from analytics.tally import Tally, weekly_tallies
from escalations.models import Handoff
from resolutionflow.models import Account

WEEK = timedelta(days=7)
# How many missing weeks one refresh builds per account: a two-year backfill is spread over
# a few drains (or done at once by ``manage.py build_rollups``).
BUILD_PER_RUN = 8


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def start_of(day: date) -> datetime:
    """Midnight at the start of ``day`` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def current_monday(now: datetime) -> date:
    return monday_of(timezone.localdate(now))


# -- reading -------------------------------------------------------------------------------


def window_tallies(
    account_id: int, start: date, end: date, *, now: datetime, memo: dict | None = None
) -> tuple[Tally, dict[date, Tally]]:
    """The whole window [start, end] (days, both included) and each week touching it.

    One query for the rollups, plus one per run of weeks computed live (usually the first
    and the current week): a fixed handful whatever the window's length. ``memo``, a dict
    shared by the windows of one request, computes a live run they share (the current
    week) once.
    """
    this_monday = current_monday(now)
    mondays = []
    monday = monday_of(start)
    while monday <= end:
        mondays.append(monday)
        monday += WEEK
    whole = [m for m in mondays if m >= start and m + timedelta(days=6) <= end and m < this_monday]
    weeks: dict[date, Tally] = {}
    if whole:
        rows = WeeklyRollup.objects.filter(
            account_id=account_id, week__gte=whole[0], week__lte=whole[-1], stale=False
        ).values_list("week", "data")
        weeks = {week: Tally.from_json(data) for week, data in rows}
    # Live: the runs of consecutive weeks without a fresh rollup, cut to the window.
    live_runs: list[list[date]] = []
    for monday in mondays:
        if monday in weeks:
            continue
        if live_runs and live_runs[-1][-1] + WEEK == monday:
            live_runs[-1].append(monday)
        else:
            live_runs.append([monday])
    for run in live_runs:
        run_start = max(start_of(run[0]), start_of(start))
        run_end = min(start_of(run[-1] + WEEK), start_of(end + timedelta(days=1)))
        key = (account_id, run_start, run_end)
        if memo is None or key not in memo:
            live = weekly_tallies(account_id, run_start, run_end)
            if memo is None:
                weeks.update(live)
                continue
            memo[key] = live
        weeks.update(memo[key])
    return Tally.merged(weeks.values()), weeks


# -- keeping them current ------------------------------------------------------------------


def mark_stale(handoff: Handoff, *, now: datetime) -> bool:
    """The handoff changed: its week's rollup (if it has one) must be rebuilt. One UPDATE,
    and none at all for a handoff of the current week (never rolled up)."""
    monday = monday_of(timezone.localdate(handoff.created_at))
    if monday >= current_monday(now):
        return False
    return bool(
        WeeklyRollup.objects.filter(account_id=handoff.account_id, week=monday).update(
            stale=True, version=F("version") + 1
        )
    )


def rebuild_week(account_id: int, monday: date, *, now: datetime) -> bool:
    """(Re)compute one past week's rollup; False when a change raced it (it stays stale)."""
    existing = (
        WeeklyRollup.objects.filter(account_id=account_id, week=monday)
        .values_list("pk", "version")
        .first()
    )
    tally = weekly_tallies(account_id, start_of(monday), start_of(monday + WEEK)).get(
        monday, Tally()
    )
    if existing is None:
        created = WeeklyRollup.objects.bulk_create(
            [
                WeeklyRollup(
                    account_id=account_id, week=monday, data=tally.as_json(), computed_at=now
                )
            ],
            ignore_conflicts=True,
        )
        return bool(created)
    pk, version = existing
    return bool(
        WeeklyRollup.objects.filter(pk=pk, version=version).update(
            data=tally.as_json(), stale=False, computed_at=now
        )
    )


def refresh_account(account_id: int, *, now: datetime, build_limit: int | None = BUILD_PER_RUN):
    """Rebuild the account's stale weeks, then build up to ``build_limit`` missing past
    weeks (newest first). Returns how many weeks were written."""
    written = 0
    stale = WeeklyRollup.objects.filter(account_id=account_id, stale=True).values_list(
        "week", flat=True
    )
    for monday in list(stale):
        written += rebuild_week(account_id, monday, now=now)
    first = Handoff.objects.filter(account_id=account_id).aggregate(first=Min("created_at"))
    if first["first"] is None:
        return written
    this_monday = current_monday(now)
    have = set(WeeklyRollup.objects.filter(account_id=account_id).values_list("week", flat=True))
    monday = this_monday - WEEK
    oldest = monday_of(timezone.localdate(first["first"]))
    built = 0
    while monday >= oldest and (build_limit is None or built < build_limit):
        if monday not in have:
            written += rebuild_week(account_id, monday, now=now)
            built += 1
        monday -= WEEK
    return written


def refresh_all(*, now: datetime, build_limit: int | None = BUILD_PER_RUN) -> int:
    """Every account's rollups (the drain's sweep and ``manage.py build_rollups``)."""
    written = 0
    for account_id in Account.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            written += refresh_account(account_id, now=now, build_limit=build_limit)
    return written
