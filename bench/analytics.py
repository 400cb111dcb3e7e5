"""Latency of GET /analytics/flowpilot/escalations and the dashboard with 1,000,000 handoffs.

Creates (if missing) and migrates a dedicated database, fills it with SQL generate_series
(once: later runs reuse it while the row count matches), builds the weekly rollups (as the
worker would; timed), then times the endpoint and the admin dashboard for 30, 90, 365 and
731 days and the queue's metric card through Django's full stack (middleware, session
auth, the psycopg pool) in this process, with the production settings (DEBUG off): repeat
requests, then a few windows with the cache emptied before every request ("nothing
cached": the first request after a change). Prints the machine, the date, `uptime` and
the numbers; the results go to docs/PERFORMANCE.md.

    .venv/bin/python bench/analytics.py                  # 1,000,000 handoffs
    .venv/bin/python bench/analytics.py --rows 200000 --requests 50
    .venv/bin/python bench/analytics.py --regenerate     # rebuild the data

The data: ten accounts; "bench-0" holds 90 % of the handoffs (the worst case for one
tenant), the other nine share the rest. Handoffs are spread evenly over the last two years;
96 % are claimed (exponential wait, mean 4 min), 92 % of those get a first action
(exponential, mean 5 min), most are resolved, 5 % released; four seniors per account, a
third of the claims taken over with "Get AI analysis".
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
SPAN_DAYS = 730
ACCOUNTS = 10
BIG_SHARE = 0.9  # of the handoffs, in account bench-0
SENIORS = 4  # per account


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def setup_django(database: str) -> None:
    os.environ.update(
        DATABASE_URL=f"{SERVER}/{database}",
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-not-for-anything-else-0123456789abcdef",
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="resolutionflow.settings",
    )
    sys.path.insert(0, str(ROOT))
    import warnings

    import django

    # No collectstatic for a bench: WhiteNoise's warning about it is noise here.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()
    from django.conf import settings

    # The dashboard links its CSS: no collectstatic manifest for a bench, plain URLs.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def machine() -> dict[str, str]:
    from django.db import connection

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    import django

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {memory} RAM",
        "system": platform.platform(),
        "software": f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"PostgreSQL {postgres} (same machine, default settings)",
    }


def uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"


def populate(rows: int, *, regenerate: bool) -> dict:
    """The bench accounts, their two people each, and ``rows`` handoffs with sessions."""
    from django.db import connection, transaction

    from escalations.models import Handoff
    from resolutionflow.models import Account, Role, User

    accounts = []
    for index in range(ACCOUNTS):
        account, _ = Account.objects.get_or_create(
            slug=f"bench-{index}", defaults={"name": f"Bench {index}"}
        )
        technician, _ = User.objects.get_or_create(
            username=f"bench-tech-{index}",
            defaults={"account": account, "role": Role.TECHNICIAN},
        )
        seniors = [
            User.objects.get_or_create(
                username=f"bench-senior-{index}" + (f"-{number}" if number else ""),
                defaults={"account": account, "role": Role.ENGINEER},
            )[0]
            for number in range(SENIORS)
        ]
        admin, _ = User.objects.get_or_create(
            username=f"bench-admin-{index}", defaults={"account": account, "role": Role.ADMIN}
        )
        accounts.append((account, technician, seniors[0], seniors, admin))
    big = accounts[0][:3]
    # A full baseline for bench-0, so minutes recovered and hours saved are computed too.
    from analytics.models import BaselineMeasurement

    if not BaselineMeasurement.objects.filter(account=big[0]).exists():
        for minutes in (12, 14.5, 16, 18, 25):
            BaselineMeasurement.objects.create(
                account=big[0], minutes=minutes, measured_on=datetime.date.today(), timed_by=big[2]
            )
    account_ids = [a[0].pk for a in accounts]
    existing = Handoff.objects.filter(account_id__in=account_ids).count()
    if existing == rows and not regenerate:
        print(f"reusing {existing:,} handoffs")
        return {"big": big, "accounts": accounts, "fresh": False}

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM escalations_handoff WHERE account_id = ANY(%s)", [account_ids])
        cursor.execute("DELETE FROM flowpilot_session WHERE account_id = ANY(%s)", [account_ids])
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM flowpilot_session")
        base = cursor.fetchone()[0]
        params = {
            "rows": rows,
            "base": base,
            "span": SPAN_DAYS * 86400,
            "small": ACCOUNTS - 1,
            "every": round(1 / (1 - BIG_SHARE)),
            "account": account_ids,
            "tech": [a[1].pk for a in accounts],
            # A row per account of its seniors' ids, picked by (k, 1 + g % SENIORS).
            "senior": [[s.pk for s in a[3]] for a in accounts],
            "seniors": SENIORS,
        }
        # Row g: account slot k (1-based into the arrays), escalated at ts (oldest first).
        rows_sql = """
            SELECT g,
                   CASE WHEN g %% %(every)s = 0 THEN 2 + (g / %(every)s) %% %(small)s ELSE 1 END
                       AS k,
                   now() - make_interval(secs => %(span)s * (1 - g::float8 / %(rows)s)) AS ts
            FROM generate_series(1, %(rows)s) AS g
        """
        # The f-strings only inline rows_sql, a constant above; values go in as parameters.
        cursor.execute(
            f"""
            INSERT INTO flowpilot_session
                (id, account_id, owner_id, problem, customer, device, status, created_at,
                 updated_at)
            SELECT %(base)s + g, (%(account)s::bigint[])[k], (%(tech)s::bigint[])[k],
                   'Bench problem ' || g, '', '', 'resolved', ts, ts
            FROM ({rows_sql}) AS r
            """,  # noqa: S608
            params,
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('flowpilot_session', 'id'), "
            "(SELECT MAX(id) FROM flowpilot_session))"
        )
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            f"""
            INSERT INTO escalations_handoff
                (id, account_id, session_id, escalated_by_id, reason, urgency, state,
                 created_at, claimed_by_id, claimed_at, first_action_at, first_action_kind,
                 takeover_mode, released_at, resolved_at, resolution_note, escalation_package,
                 assessment)
            SELECT gen_random_uuid(), (%(account)s::bigint[])[k], %(base)s + g,
                   (%(tech)s::bigint[])[k], 'Bench escalation', 'normal',
                   CASE WHEN NOT claimed THEN 'open'
                        WHEN fate < 0.05 THEN 'released'
                        WHEN fate < 0.90 THEN 'resolved'
                        ELSE 'claimed' END,
                   ts,
                   CASE WHEN claimed
                        THEN (%(senior)s::bigint[][])[k][1 + g %% %(seniors)s] END,
                   CASE WHEN claimed THEN claimed_at END,
                   CASE WHEN claimed AND acted
                        THEN claimed_at + make_interval(secs => -ln(1 - r4) * 300) END,
                   CASE WHEN claimed AND acted THEN 'message' ELSE '' END,
                   CASE WHEN claimed AND g %% 3 = 0 THEN 'analysis' ELSE 'self' END,
                   CASE WHEN claimed AND fate < 0.05
                        THEN claimed_at + make_interval(secs => 1800) END,
                   CASE WHEN claimed AND fate >= 0.05 AND fate < 0.90
                        THEN claimed_at + make_interval(secs => 3600) END,
                   '', '{{}}'::jsonb, '{{}}'::jsonb
            FROM (
                SELECT r.*, c.claimed, c.acted, c.fate, c.r4,
                       r.ts + make_interval(secs => -ln(1 - c.r2) * 240) AS claimed_at
                FROM ({rows_sql}) AS r
                CROSS JOIN LATERAL (
                    SELECT random() < 0.96 AS claimed, random() AS r2,
                           random() < 0.92 AS acted, random() AS r4, random() AS fate,
                           r.g AS correlate
                ) AS c
            ) AS h
            """,  # noqa: S608
            params,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE flowpilot_session")
        cursor.execute("VACUUM ANALYZE escalations_handoff")
    print(f"generated {rows:,} handoffs in {time.perf_counter() - started:.0f} s")
    return {"big": big, "accounts": accounts, "fresh": True}


def build_rollups(*, fresh: bool) -> None:
    """What the worker does as weeks end: every account's past weeks, timed."""
    from django.utils import timezone

    from analytics import rollups
    from analytics.models import WeeklyRollup

    if fresh:
        WeeklyRollup.objects.all().delete()
    started = time.perf_counter()
    written = rollups.refresh_all(now=timezone.now(), build_limit=None)
    took = time.perf_counter() - started
    print(f"rollups: {written} weeks built in {took:.1f} s ({WeeklyRollup.objects.count()} in all)")


def timed(client, url: str, params: dict, requests: int, *, cold: bool = False) -> dict:
    """``cold``: Django's cache is emptied before each request (not timed), so every request
    merges the window's past weeks from their rollups, as the first one after a change does."""
    from django.core.cache import cache

    for _ in range(5):  # warm the pool, the plan cache and the page cache
        client.get(url, params)
    samples, cpu = [], []
    for _ in range(requests):
        if cold:
            cache.clear()
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, params)
        samples.append((time.perf_counter() - started) * 1000)
        # This process's CPU time (Django, the metrics, the client): the work, without the
        # waits for a CPU that a loaded machine adds to the wall time. PostgreSQL's excluded.
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200, response.status_code
    samples.sort()
    return {
        "cpu": statistics.median(cpu),
        "p50": statistics.median(samples),
        "p95": samples[max(0, round(0.95 * len(samples)) - 1)],
        "max": samples[-1],
        "n": len(samples),
    }


def count_queries(client, url: str, params: dict, *, cold: bool = False) -> int:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params)
    if cold:
        cache.clear()
    with CaptureQueriesContext(connection) as captured:
        client.get(url, params)
    return len(captured)


def explain(account_id: int, window) -> list[str]:
    """The plans of the window's queries, nothing cached: the rollup rows, the first
    escalation, the rollups' data, the cut first week and the current week."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics import metrics

    cache.clear()
    with CaptureQueriesContext(connection) as captured:
        metrics.window_tallies(account_id, window)
    lines = []
    with connection.cursor() as cursor:
        for query in captured:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {query['sql']}")
            lines += [row[0] for row in cursor.fetchall()] + [""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", default="resolutionflow_bench")
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    ensure_database(args.database)
    setup_django(args.database)
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from analytics import metrics
    from escalations.models import Handoff

    call_command("migrate", verbosity=0)
    data = populate(args.rows, regenerate=args.regenerate)
    build_rollups(fresh=data["fresh"])
    big_account, _, big_senior = data["big"]
    big_admin = data["accounts"][0][4]
    small_account, _, small_senior = data["accounts"][1][:3]

    info = machine()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    info["load"] = f"load average {load} (1, 5, 15 min) before the run"
    info["uptime"] = uptime()
    print()
    for key, value in info.items():
        print(f"{key:>9}: {value}")
    total = Handoff.objects.count()
    print(
        f"   handoffs: {total:,} in the database; {big_account.slug} holds "
        f"{Handoff.objects.filter(account=big_account).count():,}"
    )
    print()

    today = timezone.localdate()
    endpoint = reverse("analytics:flowpilot_escalations")
    client = Client()
    client.force_login(big_senior)
    small_client = Client()
    small_client.force_login(small_senior)
    admin_client = Client()
    admin_client.force_login(big_admin)
    dashboard = reverse("analytics:dashboard")
    warm, cold = False, True
    scenarios = [
        ("endpoint, default window (30 days)", client, endpoint, 30, warm),
        ("endpoint, 90 days", client, endpoint, 90, warm),
        ("endpoint, 365 days", client, endpoint, 365, warm),
        ("endpoint, 731 days (the maximum)", client, endpoint, 731, warm),
        ("endpoint, small account, 30 days", small_client, endpoint, 30, warm),
        ("dashboard, 30 days", admin_client, dashboard, 30, warm),
        ("dashboard, 90 days", admin_client, dashboard, 90, warm),
        ("dashboard, 365 days", admin_client, dashboard, 365, warm),
        ("dashboard, 731 days", admin_client, dashboard, 731, warm),
        ("metric card (queue page)", client, reverse("analytics:card"), None, warm),
        ("endpoint, 30 days, nothing cached", client, endpoint, 30, cold),
        ("endpoint, 731 days, nothing cached", client, endpoint, 731, cold),
        ("dashboard, 30 days, nothing cached", admin_client, dashboard, 30, cold),
        ("dashboard, 731 days, nothing cached", admin_client, dashboard, 731, cold),
    ]
    header = (
        f"{'scenario':<38} {'handoffs':>9} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
        f" {'cpu ms':>7}"
    )
    print(header)
    print("-" * len(header))
    requests = args.requests
    for label, who, url, days, is_cold in scenarios:
        params = {}
        in_window = "—"
        if days:
            window = metrics.Window.last_days(days, today=today)
            params = {"from": window.start.isoformat(), "to": window.end.isoformat()}
            account = small_account if who is small_client else big_account
            in_window = f"{metrics.handoffs_in(account.pk, window).count():,}"
        queries = count_queries(who, url, params, cold=is_cold)
        result = timed(who, url, params, requests, cold=is_cold)
        print(
            f"{label:<38} {in_window:>9} {queries:>7} {result['p50']:>8.1f} "
            f"{result['p95']:>8.1f} {result['max']:>8.1f} {result['cpu']:>7.1f}   (n={result['n']})"
        )
    print()
    print("load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()) + " after")
    print("uptime: " + uptime())
    print()
    print("EXPLAIN ANALYZE of the window query, default window of bench-0:")
    for line in explain(big_account.pk, metrics.Window.last_days(30, today=today)):
        print("   ", line)


if __name__ == "__main__":
    main()
