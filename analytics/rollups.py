"""Weekly rollups: past weeks added up once, so any window answers fast (issue 15).

A window's figures are the merge of its weeks' tallies (``analytics.tally``):

- a whole past week inside the window comes from its ``WeeklyRollup`` when that is fresh;
- the current week, a week the window cuts (its first, or its last when it ends before
  Sunday), and a week whose rollup is missing or stale are computed live from the handoff
  rows, with the same code: a rollup only ever saves time, never changes a number. A cut
  week with a fresh rollup is that rollup minus the days outside the window when those
  are fewer than the days inside and the subtraction gives exactly what reading the days
  inside would (``Tally.minus``).

What a window's past weeks add up to is kept in Django's cache (each server process's
memory by default), in two kinds of part: the merged fresh rollups, and each run of weeks
computed live (the cut first week). A part's key is what its numbers depend on: every
week's rollup id and ``version``. A handoff change bumps its week's version, so the next
request computes the part that holds that week again, and only that part; the current
week is computed at every request. A change written around the actions (SQL by hand) is
seen by neither the rollups nor the cache until ``manage.py build_rollups --rebuild`` (new
rows, new keys).

Keeping them current: every handoff change sends ``escalations.signals.handoff_changed``
inside its transaction; the receiver marks that handoff's week stale (when it is a past
week with a rollup) and, after commit, enqueues ``analytics.tasks.refresh_rollups`` (inline
after the response in embedded mode). The outbox drain (every 5 s with a worker) builds
weeks that just ended and retries anything left stale. Rebuilding is safe to run twice:
``version`` keeps a rebuild that raced a change from marking the week fresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from analytics.models import WeeklyRollup
from analytics.tally import Tally, WeekFigures, first_escalation_at, weekly_tallies
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

# The merged closed weeks of a window are kept in Django's cache (the default cache: memory
# of each server process) for this long; the key changes as soon as a week changes anyway.
CLOSED_CACHE_SECONDS = 24 * 3600
_CACHE_FORMAT = 1  # bump when what is cached changes shape


def window_tallies(
    account_id: int, start: date, end: date, *, now: datetime, memo: dict | None = None
) -> tuple[Tally, dict[date, WeekFigures]]:
    """The whole window [start, end] (days, both included), and each week touching it.

    The window's closed weeks (every week before the current one, the first cut to the
    window) are merged once and cached (``_closed_weeks``); the current week is computed
    live at every request. ``memo``, a dict shared by the windows of one request, computes
    the current week once for all of them.
    """
    this_monday = current_monday(now)
    mondays = []
    monday = monday_of(start)
    while monday <= end:
        mondays.append(monday)
        monday += WEEK
    closed = [m for m in mondays if m < this_monday]
    parts: list[Tally] = []
    figures: dict[date, WeekFigures] = {}
    if closed:
        closed_end = min(end, this_monday - timedelta(days=1))
        total, closed_figures = _closed_weeks(account_id, start, closed_end, closed)
        parts.append(total)
        figures.update(closed_figures)
    current = [m for m in mondays if m >= this_monday]
    if current:
        run_start = max(start_of(current[0]), start_of(start))
        run_end = start_of(end + timedelta(days=1))
        key = (account_id, run_start, run_end)
        memo = {} if memo is None else memo
        if key not in memo:
            live = weekly_tallies(account_id, run_start, run_end)
            memo[key] = live, {week: tally.figures() for week, tally in live.items()}
        live, live_figures = memo[key]
        parts.extend(live.values())
        figures.update(live_figures)
    return Tally.merged(parts), figures


def _closed_weeks(
    account_id: int, start: date, end: date, mondays: list[date]
) -> tuple[Tally, dict[date, WeekFigures]]:
    """[start, end] of past weeks only: merged, and each week's figures.

    Two parts, each cached (``_cached``) under what its numbers depend on: the whole weeks
    with a fresh rollup, merged; and each run of other weeks (the window's cut first week,
    a stale week, a week not built yet), computed live from the handoff rows. A week's
    identity is its rollup row's id and version, and a change to a handoff of a past week
    bumps that version (``mark_stale``): a changed week is a new key, and only the part that
    holds it is computed again. A week before the account's first escalation needs no
    row (nothing can be escalated into the past); a part with a week that has neither is
    computed at every request, never cached.
    """
    rows = {
        week: (pk, version, stale)
        for week, pk, version, stale in WeeklyRollup.objects.filter(
            account_id=account_id, week__gte=mondays[0], week__lte=mondays[-1]
        ).values_list("week", "pk", "version", "stale")
    }
    first_week = None
    if any(monday not in rows for monday in mondays):
        first = first_escalation_at(account_id)
        first_week = None if first is None else monday_of(timezone.localdate(first))

    def identity(weeks: list[date]) -> str | None:
        parts = []
        for monday in weeks:
            if monday in rows:
                pk, version, _ = rows[monday]
                parts.append(f"{monday}:{pk}:{version}")
            elif first_week is None or monday < first_week:
                parts.append(f"{monday}:-")
            else:
                return None
        return ";".join(parts)

    whole = [
        monday
        for monday in mondays
        if monday in rows
        and not rows[monday][2]
        and monday >= start
        and monday + timedelta(days=6) <= end
    ]
    parts: list[Tally] = []
    figures: dict[date, WeekFigures] = {}
    if whole:
        merged, whole_figures = _cached(
            account_id, "weeks", identity(whole), lambda: _from_rollups(account_id, whole)
        )
        parts.append(merged)
        figures.update(whole_figures)
    # Live: the runs of consecutive weeks without a fresh rollup read, cut to [start, end].
    runs: list[list[date]] = []
    for monday in mondays:
        if monday in figures:
            continue
        if runs and runs[-1][-1] + WEEK == monday:
            runs[-1].append(monday)
        else:
            runs.append([monday])
    for run in runs:
        run_start = max(start_of(run[0]), start_of(start))
        run_end = min(start_of(run[-1] + WEEK), start_of(end + timedelta(days=1)))
        run_identity = identity(run)
        rollup_pk = None
        if len(run) == 1 and run[0] in rows and not rows[run[0]][2]:
            rollup_pk = rows[run[0]][0]  # a cut week with a fresh rollup
        merged, run_figures = _cached(
            account_id,
            f"live:{run_start.isoformat()}:{run_end.isoformat()}",
            run_identity,
            lambda run_start=run_start, run_end=run_end, rollup_pk=rollup_pk: _live(
                account_id, run_start, run_end, rollup_pk=rollup_pk
            ),
        )
        parts.append(merged)
        figures.update(run_figures)
    return Tally.merged(parts), figures


Part = tuple[Tally, dict[date, WeekFigures]]


def _cached(account_id: int, kind: str, identity: str | None, compute) -> Part:
    """``compute()``, kept in the cache under ``identity`` (None: never cached)."""
    if identity is None:
        return compute()
    digest = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
    zone = timezone.get_current_timezone_name()
    key = f"analytics:{_CACHE_FORMAT}:{account_id}:{zone}:{kind}:{digest}"
    part = cache.get(key)
    if part is None:
        part = compute()
        cache.set(key, part, CLOSED_CACHE_SECONDS)
    return part


def _from_rollups(account_id: int, mondays: list[date]) -> Part:
    """The weeks' rollups, merged, and their figures (stored with each rollup)."""
    data = WeeklyRollup.objects.filter(
        account_id=account_id, week__gte=mondays[0], week__lte=mondays[-1]
    ).values_list("week", "data")
    wanted = set(mondays)
    tallies, figures = [], {}
    for week, blob in data:
        if week in wanted:
            tally = Tally.from_json(blob)
            tallies.append(tally)
            figures[week] = week_figures(blob) or tally.figures()
    return Tally.merged(tallies), figures


def _live(account_id: int, start: datetime, end: datetime, *, rollup_pk: int | None) -> Part:
    """[start, end) from the handoff rows. For a cut week whose rollup is fresh
    (``rollup_pk``) and whose days outside the window are fewer than those inside, the
    rollup minus the days outside, when that is exact (``Tally.minus``): fewer rows read."""
    monday = monday_of(timezone.localdate(start))
    week_start, week_end = start_of(monday), start_of(monday + WEEK)
    outside = None
    if start == week_start and end < week_end:
        outside = (end, week_end)
    elif end == week_end and start > week_start:
        outside = (week_start, start)
    if rollup_pk is not None and outside and outside[1] - outside[0] < end - start:
        data = WeeklyRollup.objects.filter(pk=rollup_pk).values_list("data", flat=True).first()
        if data is not None:
            removed = weekly_tallies(account_id, *outside).get(monday, Tally())
            rest = Tally.from_json(data).minus(removed)
            if rest is not None:
                return rest, ({monday: rest.figures()} if rest.escalated else {})
    weeks = weekly_tallies(account_id, start, end)
    return Tally.merged(weeks.values()), {week: tally.figures() for week, tally in weeks.items()}


def stored(tally: Tally) -> dict:
    """A rollup's ``data``: the tally, and the figures the weekly series shows of it."""
    return tally.as_json() | {"figures": asdict(tally.figures())}


def week_figures(data: dict) -> WeekFigures | None:
    figures = data.get("figures")
    if figures is None:
        return None
    return WeekFigures(
        **{
            name: tuple(value) if isinstance(value, list) else value
            for name, value in figures.items()
        }
    )


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
            [WeeklyRollup(account_id=account_id, week=monday, data=stored(tally), computed_at=now)],
            ignore_conflicts=True,
        )
        return bool(created)
    pk, version = existing
    return bool(
        WeeklyRollup.objects.filter(pk=pk, version=version).update(
            data=stored(tally), stale=False, computed_at=now
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
