"""Server time to render the handoff screen and the queue, at scale, and their query counts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/handoff_screen.py [--reload]

Builds its own database (``resolutionflow_bench_handoff``, or ``--db NAME``) on the server of
DATABASE_URL, bulk-loads it with SQL ``generate_series`` (100,000 sessions and handoffs,
1,000,000 messages, 300,000 tasks; one session alone has 100,000 messages), then times the
views in-process through Django's test Client: the whole middleware stack and the
templates, no network and no ASGI server. The data is kept for the next run (``--reload``
rebuilds it). Prints p50 / p95 per page and the SQL query counts, which must not grow with
the length of the session.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SESSIONS = 100_000
MESSAGES = 1_000_000
LONG_SESSION_MESSAGES = 100_000
TASKS_PER_SESSION = 3
OPEN_HANDOFFS = 50
CLAIMED_HANDOFFS = 200
ID_BASE = 1_000_000  # bench rows get ids above the demo data's


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="resolutionflow_bench_handoff")
    parser.add_argument("--reload", action="store_true", help="drop and rebuild the bench data")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=30)
    return parser.parse_args()


def database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL (this bench is about PostgreSQL).")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str, name: str, *, reload: bool) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reload:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")
    # DEBUG for the static files finders (no collectstatic); switched off below, as the
    # test runner does, so that Django does not keep every query in memory.
    os.environ["DEBUG"] = "1"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False
    settings.ANTHROPIC_API_KEY = ""  # time our code, never a network call


def loaded() -> bool:
    from escalations.models import Handoff

    return Handoff.objects.filter(session_id__gt=ID_BASE).count() == SESSIONS


def sample_assessment() -> dict:
    """The assessment every bench handoff stores: the offline engine's for a printer case."""
    from escalations.assessment import offline_assessment
    from flowpilot.assistants import Conversation, TriedStep

    return offline_assessment(
        Conversation(
            problem="Nothing prints on the 2nd floor printer; jobs stuck in the queue",
            tasks=(TriedStep(title="Restart the print spooler", status="failed", outcome="No"),),
            escalation_reason="The whole floor is blocked",
            urgency="high",
            escalated_by="Tess Tran",
        )
    )


def refresh_stored_assessments() -> None:
    """Data kept from an earlier run stores the assessment as that version made it: store
    today's shape (one UPDATE), so the screen is timed on what the code now stores."""
    import json

    from django.db import connection

    sample = sample_assessment()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT assessment FROM escalations_handoff WHERE session_id = %s", [ID_BASE + 2]
        )
        stored = cursor.fetchone()[0]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        if {k: v for k, v in stored.items() if k != "generated_at"} == {
            k: v for k, v in sample.items() if k != "generated_at"
        }:
            return
        started = time.perf_counter()
        cursor.execute(
            "UPDATE escalations_handoff SET assessment = %s::jsonb WHERE session_id > %s",
            [json.dumps(sample), ID_BASE],
        )
        cursor.execute("VACUUM ANALYZE escalations_handoff")
    print(f"  stored today's assessment shape in {time.perf_counter() - started:.1f} s")


def load(personas: dict) -> None:
    """Everything in SQL: a few statements, each a generate_series."""
    from django.db import connection, transaction

    acme = personas["tess"].account_id
    tess, sam, sky = personas["tess"].pk, personas["sam"].pk, personas["sky"].pk
    sample = sample_assessment()
    import json

    assessment = json.dumps(sample)
    long_messages = LONG_SESSION_MESSAGES
    other_messages = MESSAGES - long_messages
    first, last = ID_BASE + 1, ID_BASE + SESSIONS
    params = {
        "acme": acme,
        "tess": tess,
        "sam": sam,
        "sky": sky,
        "first": first,
        "sessions": SESSIONS,
        "open": OPEN_HANDOFFS,
        "claimed": OPEN_HANDOFFS + CLAIMED_HANDOFFS,
        "long": long_messages,
        "other": other_messages,
        "assessment": assessment,
    }
    steps = [
        (
            "sessions",
            """
            INSERT INTO flowpilot_session
                (id, account_id, owner_id, problem, customer, device, status, escalated_to_id,
                 created_at, updated_at)
            SELECT %(first)s + g - 1, %(acme)s, %(tess)s,
                   'Printer ' || g || ' prints nothing; jobs stay stuck in the print queue',
                   'Customer ' || (g %% 500), 'WS-' || lpad((g %% 9999)::text, 4, '0'),
                   CASE WHEN g <= %(open)s THEN 'escalated'
                        WHEN g <= %(claimed)s THEN 'escalated' ELSE 'resolved' END,
                   CASE WHEN g <= %(open)s THEN NULL
                        WHEN g <= %(claimed)s
                            THEN (CASE WHEN g %% 2 = 0 THEN %(sam)s ELSE %(sky)s END)
                        ELSE NULL END,
                   now() - (g || ' minutes')::interval, now() - (g || ' minutes')::interval
            FROM generate_series(1, %(sessions)s) AS g
            """,
        ),
        (
            "messages (one session of 100,000)",
            """
            INSERT INTO flowpilot_message
                (session_id, role, author_id, body, engine, note, created_at)
            SELECT %(first)s,
                   CASE WHEN g %% 2 = 0 THEN 'assistant' ELSE 'user' END,
                   CASE WHEN g %% 2 = 0 THEN NULL ELSE %(tess)s END,
                   'Message ' || g || ': still stuck after trying the next step in the lane.',
                   CASE WHEN g %% 2 = 0 THEN 'offline' ELSE '' END, '',
                   now() - interval '200 days' + (g || ' seconds')::interval
            FROM generate_series(1, %(long)s) AS g
            """,
        ),
        (
            "messages (the other 900,000)",
            """
            INSERT INTO flowpilot_message
                (session_id, role, author_id, body, engine, note, created_at)
            SELECT %(first)s + 1 + (g - 1) %% (%(sessions)s - 1),
                   CASE WHEN g %% 2 = 0 THEN 'assistant' ELSE 'user' END,
                   CASE WHEN g %% 2 = 0 THEN NULL ELSE %(tess)s END,
                   'Message ' || g || ': the spooler restart did not help; jobs still queued.',
                   CASE WHEN g %% 2 = 0 THEN 'offline' ELSE '' END, '',
                   now() - interval '100 days' + (g || ' seconds')::interval
            FROM generate_series(1, %(other)s) AS g
            """,
        ),
        (
            "tasks",
            """
            INSERT INTO flowpilot_task
                (session_id, position, title, detail, command, shell, status, outcome, source,
                 created_by_id, created_at, updated_at)
            SELECT %(first)s + s - 1, p, 'Step ' || p || ' of session ' || s,
                   'Why this step and what to look for.',
                   CASE WHEN p = 1 THEN 'Get-Service Spooler' ELSE '' END,
                   CASE WHEN p = 1 THEN 'powershell' ELSE '' END,
                   CASE p WHEN 1 THEN 'failed' WHEN 2 THEN 'done' ELSE 'todo' END,
                   CASE p WHEN 1 THEN 'No change, jobs still queued' ELSE '' END,
                   'assistant', NULL, now(), now()
            FROM generate_series(1, %(sessions)s) AS s, generate_series(1, 3) AS p
            """,
        ),
        (
            "handoffs",
            """
            INSERT INTO escalations_handoff
                (id, account_id, session_id, escalated_by_id, reason, urgency, state, created_at,
                 claimed_by_id, claimed_at, first_action_at, first_action_kind, released_at,
                 resolved_at, resolution_note, reopened_from_id, escalation_package, assessment,
                 assessment_updated_at)
            SELECT gen_random_uuid(), %(acme)s, %(first)s + g - 1, %(tess)s,
                   'Out of ideas on session ' || g,
                   (ARRAY['low', 'normal', 'high'])[1 + g %% 3],
                   CASE WHEN g <= %(open)s THEN 'open'
                        WHEN g <= %(claimed)s THEN 'claimed' ELSE 'resolved' END,
                   now() - (g || ' minutes')::interval,
                   CASE WHEN g <= %(open)s THEN NULL WHEN g %% 2 = 0 THEN %(sam)s ELSE %(sky)s END,
                   CASE WHEN g <= %(open)s THEN NULL
                        ELSE now() - (g || ' minutes')::interval + interval '4 minutes' END,
                   CASE WHEN g <= %(claimed)s THEN NULL
                        ELSE now() - (g || ' minutes')::interval + interval '6 minutes' END,
                   CASE WHEN g <= %(claimed)s THEN '' ELSE 'message' END,
                   NULL,
                   CASE WHEN g <= %(claimed)s THEN NULL
                        ELSE now() - (g || ' minutes')::interval + interval '40 minutes' END,
                   '', NULL,
                   jsonb_build_object('version', 1, 'reason', 'Out of ideas on session ' || g),
                   %(assessment)s::jsonb,
                   now() - (g || ' minutes')::interval
            FROM generate_series(1, %(sessions)s) AS g
            """,
        ),
        (
            "handoff events",
            """
            INSERT INTO escalations_handoffevent (handoff_id, kind, actor_id, created_at, detail)
            SELECT h.id, k.kind, CASE k.kind WHEN 'escalated' THEN h.escalated_by_id
                                              ELSE h.claimed_by_id END,
                   h.created_at + k.after, '{}'::jsonb
            FROM escalations_handoff h
            JOIN (VALUES ('escalated', interval '0'), ('claimed', interval '4 minutes'),
                         ('resolved', interval '40 minutes')) AS k(kind, after)
              ON k.kind = 'escalated' OR (k.kind = 'claimed' AND h.claimed_at IS NOT NULL)
                 OR (k.kind = 'resolved' AND h.resolved_at IS NOT NULL)
            WHERE h.session_id >= %(first)s
            """,
        ),
        (
            "notifications and views",
            """
            INSERT INTO escalations_notification
                (account_id, recipient_id, handoff_id, kind, text, created_at, read_at)
            SELECT %(acme)s, %(sam)s, h.id, 'handoff_escalated',
                   'Tess Tran escalated: a printer prints nothing', h.created_at,
                   CASE WHEN h.state = 'open' THEN NULL ELSE h.created_at END
            FROM escalations_handoff h WHERE h.session_id >= %(first)s;
            INSERT INTO escalations_handoffview (handoff_id, user_id, first_seen_at)
            SELECT h.id, %(sam)s, h.created_at FROM escalations_handoff h
            WHERE h.session_id >= %(first)s AND h.session_id %% 2 = 0 AND h.state <> 'open'
            """,
        ),
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        for label, sql in steps:
            started = time.perf_counter()
            for statement in sql.split(";\n"):
                if statement.strip():
                    cursor.execute(statement, params)
            print(f"  loaded {label} in {time.perf_counter() - started:.1f} s", flush=True)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('flowpilot_session', 'id'), %s)", [last]
        )
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def timed(
    client, url: str, *, n: int, warmup: int, headers: dict | None = None
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per request (CPU: this process only, not PostgreSQL's).

    On a shared machine the wall time includes waiting for a CPU; the CPU time does not.
    """
    for _ in range(warmup):
        response = client.get(url, headers=headers or {})
        assert response.status_code == 200, (url, response.status_code)
    wall, cpu = [], []
    for _ in range(n):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers or {})
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200
    return wall, cpu


def queries_for(client, url: str, headers: dict | None = None) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, headers=headers or {})
    return len(captured)


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def row(wall: list[float], cpu: list[float]) -> str:
    return " | ".join(f"{p(samples, q):.1f}" for samples in (wall, cpu) for q in (50, 95))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    args = parse_args()
    url = database_url(args.db)
    ensure_database(url, args.db, reload=args.reload)
    setup_django(url)

    import django
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from escalations.models import Handoff
    from resolutionflow.management.commands.seed_demo import seed_people

    call_command("migrate", verbosity=0)
    personas = seed_people()
    if not loaded():
        print(f"Loading the bench data into {args.db} ...", flush=True)
        load(personas)

    refresh_stored_assessments()

    sam = personas["sam"]
    long_open = Handoff.objects.get(session_id=ID_BASE + 1)
    short_open = Handoff.objects.get(session_id=ID_BASE + 2)
    claimed = Handoff.objects.filter(
        session_id__gt=ID_BASE, claimed_by=sam, state="claimed"
    ).first()
    client = Client()
    client.force_login(sam)
    htmx = {"HX-Request": "true"}

    pages = [
        (
            "handoff screen (session of 9 messages)",
            reverse("escalations:handoff", args=[short_open.pk]),
            None,
        ),
        (
            "handoff screen (session of 100,000 messages)",
            reverse("escalations:handoff", args=[long_open.pk]),
            None,
        ),
        ("queue page (50 waiting, 100,000 handoffs)", reverse("escalations:queue"), None),
        (
            "assessment card + Where it stands refetch (SSE)",
            reverse("escalations:assessment", args=[short_open.pk]),
            htmx,
        ),
        (
            "Where it stands alone (the chat panel's refetch)",
            reverse("escalations:stands", args=[claimed.pk]),
            htmx,
        ),
        (
            "claimer's chat panel",
            reverse("escalations:session_panel", args=[claimed.session_id]),
            htmx,
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM flowpilot_message")
        messages = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM escalations_handoff")
        handoffs = cursor.fetchone()[0]

    print()
    print(f"Machine: {machine()}")
    print(
        f"PostgreSQL {pg_version}, Python {platform.python_version()}, "
        f"Django {django.get_version()}; "
        f"{handoffs:,} handoffs, {messages:,} messages; {args.requests} timed requests per page "
        f"after {args.warmup} warm-up, test Client in-process (full middleware, no network)."
    )
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M')}; load average before: {load_average()}")
    print()
    print("| page | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms | SQL queries |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, page_url, headers in pages:
        queries = queries_for(client, page_url, headers)
        wall, cpu = timed(client, page_url, n=args.requests, warmup=args.warmup, headers=headers)
        print(f"| {label} | {row(wall, cpu)} | {queries} |", flush=True)

    # With no stored assessment the screen computes the offline one (never the AI's).
    Handoff.objects.filter(pk=short_open.pk).update(assessment={}, assessment_updated_at=None)
    page_url = reverse("escalations:handoff", args=[short_open.pk])
    queries = queries_for(client, page_url)
    wall, cpu = timed(client, page_url, n=args.requests, warmup=args.warmup)
    print(
        f"| handoff screen, no stored assessment (offline computed at render) "
        f"| {row(wall, cpu)} | {queries} |"
    )
    print(f"\nLoad average after: {load_average()} (a shared machine makes p95 noisy)")
    # Put it back for the next run.
    from escalations.actions import store_assessment
    from escalations.assessment import conversation_for_handoff, offline_assessment

    store_assessment(
        handoff_id=short_open.pk,
        assessment=offline_assessment(
            conversation_for_handoff(Handoff.objects.get(pk=short_open.pk))
        ),
        expected_updated_at=None,
    )


if __name__ == "__main__":
    main()
