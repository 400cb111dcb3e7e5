"""The SQLite fallback against the PostgreSQL path, on the same generated data (issue 12).

The metrics have one implementation; what differs by database is the SQL the ORM writes
for it (seconds between two times, the week in the current time zone). This test copies
the generated handoffs from the PostgreSQL test database into a migrated in-memory SQLite
database and computes every figure on both: rows, endpoint answers (live and from the
rollups) and the week series must agree.
"""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from analytics import metrics, rollups, tally
from analytics.models import WeeklyRollup
from escalations.models import Handoff
from flowpilot.models import Session
from resolutionflow.models import Account, User

pytestmark = pytest.mark.django_db

TWIN = "sqlite_twin"


class TwinRouter:
    """Every read and write to the SQLite twin."""

    def db_for_read(self, model, **hints):
        return TWIN

    db_for_write = db_for_read


@contextmanager
def sqlite_twin():
    """An in-memory SQLite database with every migration applied, holding a copy of the
    accounts, people, sessions and handoffs of the PostgreSQL test database (route to it
    first: the data migrations use the router)."""
    config = connections.configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )["default"]
    twin = DatabaseWrapper(config, alias=TWIN)
    connections[TWIN] = twin
    try:
        executor = MigrationExecutor(twin)
        executor.migrate(executor.loader.graph.leaf_nodes())
        with transaction.atomic(using=TWIN):
            for model in (Account, User, Session, Handoff):
                model.objects.using(TWIN).bulk_create(model.objects.using("default").order_by("pk"))
        yield
    finally:
        twin.close()
        del connections[TWIN]


def on_the_twin():
    cache.clear()  # rollup ids and accounts are the same on both: nothing cached may cross
    return override_settings(DATABASE_ROUTERS=["tests.analytics.test_sqlite_fallback.TwinRouter"])


def rows_of(account_id, start, end) -> list[tuple]:
    """The handoff rows, comparable: the week as a date, seconds to the microsecond."""
    rows = [
        (
            tally.week_of(week),
            claimer,
            mode,
            None if claim is None else round(claim, 6),
            None if first is None else round(first, 6),
            released,
            resolved,
        )
        for week, claimer, mode, claim, first, released, resolved in tally.handoff_rows(
            account_id, start, end
        )
    ]
    return sorted(rows, key=repr)


def figures(account_id, now) -> dict:
    today = timezone.localdate(now)
    return {
        days: metrics.escalation_summary(
            account_id, metrics.Window.last_days(days, today=today), now=now
        ).as_dict()
        for days in (7, 30, 45, 71)
    }


def test_sqlite_gives_the_same_rows_and_figures_as_postgresql(postgres_only, generated):
    now, account = generated["now"], generated["account"]
    start, end = now - timedelta(days=80), now + timedelta(days=1)
    # A zone far from UTC (weeks start 11 or 13 hours before UTC's): the week in the
    # current time zone is the part of the SQL that differs most between the two.
    with timezone.override("Pacific/Auckland"):
        cache.clear()
        pg_rows = rows_of(account, start, end)
        pg_live = figures(account, now)
        rollups.refresh_account(account, now=now, build_limit=None)
        pg_rolled = figures(account, now)
        assert pg_rolled == pg_live

        # The router first: the data migrations then write to the twin, not to PostgreSQL.
        with on_the_twin(), sqlite_twin():
            assert connections[Handoff.objects.all().db].vendor == "sqlite"
            assert Handoff.objects.count() == Handoff.objects.using("default").count()
            assert rows_of(account, start, end) == pg_rows
            assert len(pg_rows) > 600
            assert figures(account, now) == pg_live
            rollups.refresh_account(account, now=now, build_limit=None)
            assert WeeklyRollup.objects.filter(account_id=account).count() >= 9
            assert figures(account, now) == pg_rolled
