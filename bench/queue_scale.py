"""The queue page at 50, 2,000 and 20,000 waiting handoffs, over HTTP under uvicorn.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/queue_scale.py [--workers 2] [--requests 200]

Builds its own database (``resolutionflow_bench_queue``, or ``--db NAME``) on the server of
DATABASE_URL, collects the static files into a temporary folder, and serves the app with
uvicorn in production settings (DEBUG off, a SECRET_KEY, the manifest static storage; no
HTTPS redirect on loopback). Each size is its own account in the same database, loaded
with that many waiting handoffs (urgencies mixed, groups escalated in the same microsecond
so the sort key ties, two tried steps each, 200 claimed ones for "Recently claimed"); after
VACUUM ANALYZE, one client per size, signed in as that account's engineer on its own
keep-alive connection, sends the requests round-robin across the sizes, so that whatever
else loads the machine weighs on every size alike. It times:

- the queue page (``GET /escalations/``, the first 50 cards and the total);
- "Show more" deep in the queue (``?after=<cursor>`` of the last page, htmx fragment);
- the live refresh of the waiting section (``?through=<last card of the first page>``);
- the JSON queue (``Accept: application/json``, first page).

Prints p50 / p95 and the response size per size, the p95 ratio to the 50-waiting run for
each, and whether the page meets the bound: p95 at 2,000 and 20,000 within 1.5x of the
p95 at 50, and a page size that does not grow.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    ensure_database,
    free_port,
    machine,
    percentile,
    postgres_url,
    start_uvicorn,
    stop_server,
)

SIZES = (50, 2_000, 20_000)
CLAIMED = 200
BOUND = 1.5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="resolutionflow_bench_queue")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per URL")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sizes", default=",".join(str(size) for size in SIZES))
    return parser.parse_args()


def bench_env(url: str, static_root: str) -> dict[str, str]:
    """Production settings, as a deploy sets them (HTTPS is a proxy's job, not loopback's)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    return {
        **env,
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": url,
        "STATIC_ROOT": static_root,
        "DJANGO_SETTINGS_MODULE": "resolutionflow.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args, "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )


# --- the data --------------------------------------------------------------------------------


def sign_in(user) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"sessionid={store.session_key}"


def load(waiting: int):
    """An account with exactly ``waiting`` open handoffs (and CLAIMED claimed ones); its
    engineer."""
    from django.db import transaction
    from django.utils import timezone

    from escalations.models import Handoff, HandoffState, Urgency
    from flowpilot.models import Session, SessionStatus, Task, TaskStatus
    from resolutionflow.models import Account, Role, User

    account, _ = Account.objects.get_or_create(
        slug=f"bench-queue-{waiting}", defaults={"name": f"Bench queue {waiting}"}
    )
    people = {}
    for role, name in ((Role.TECHNICIAN, "tech"), (Role.ENGINEER, "eng"), (Role.ENGINEER, "sky")):
        people[name], _ = User.objects.get_or_create(
            username=f"bench-queue-{waiting}-{name}",
            defaults={"account": account, "role": role, "display_name": f"Bench {name.title()}"},
        )
    tech, claimer = people["tech"], people["sky"]
    with transaction.atomic():
        Handoff.objects.filter(account=account).delete()
        Session.objects.filter(account=account).delete()
        now = timezone.now()
        total = waiting + CLAIMED
        sessions = Session.objects.bulk_create(
            [
                Session(
                    account=account,
                    owner=tech,
                    problem=f"Bench queue {index}: Outlook keeps asking for a password\n"
                    "Since this morning, on every start, after the password change.",
                    customer=f"Customer {index % 40}",
                    device=f"LAPTOP-{index:05d}",
                    status=SessionStatus.ESCALATED,
                )
                for index in range(total)
            ],
            batch_size=2000,
        )
        Task.objects.bulk_create(
            [
                Task(
                    session=session,
                    position=position,
                    title=f"Step {position + 1}",
                    status=TaskStatus.FAILED if position == 0 else TaskStatus.DONE,
                    created_by=tech,
                )
                for session in sessions
                for position in range(2)
            ],
            batch_size=5000,
        )
        urgencies = [Urgency.HIGH] + [Urgency.NORMAL] * 7 + [Urgency.LOW] * 2
        handoffs = []
        for index, session in enumerate(sessions):
            # Groups of five escalated in the same microsecond: the sort key ties.
            created = now - timedelta(seconds=30 * (total - index // 5))
            claimed = index >= waiting
            handoffs.append(
                Handoff(
                    id=uuid.uuid4(),
                    account=account,
                    session=session,
                    escalated_by=tech,
                    reason="Cleared the credentials and rebuilt the profile; it still "
                    "prompts. The user cannot send mail.",
                    urgency=urgencies[index % len(urgencies)],
                    state=HandoffState.CLAIMED if claimed else HandoffState.OPEN,
                    claimed_by=claimer if claimed else None,
                    claimed_at=created + timedelta(minutes=3) if claimed else None,
                    created_at=created,
                    escalation_package={"version": 1},
                )
            )
        Handoff.objects.bulk_create(handoffs, batch_size=2000)
    return people["eng"]


def cursors(engineer) -> dict[str, str]:
    """Positions as the page hands them out: the last card of the first page (a live
    refresh's window) and the one before the queue's last page (a deep "Show more")."""
    from escalations import queries
    from escalations.models import Handoff

    ids = queries.waiting_handoffs(engineer).order_by(*queries.QUEUE_ORDER)
    count = ids.count()
    size = queries.QUEUE_PAGE_SIZE

    def at(position: int) -> str:
        pk = ids.values_list("pk", flat=True)[position]
        return queries.QueueCursor.of(Handoff.objects.get(pk=pk)).encode()

    return {"first": at(min(size, count) - 1), "deep": at(max(0, count - size - 1))}


# --- the server and the client ---------------------------------------------------------------


class Client:
    """One signed-in engineer on one keep-alive connection."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str, headers: dict[str, str]) -> tuple[float, int]:
        """(milliseconds, bytes); raises on anything but a 200."""
        started = time.perf_counter()
        self.connection.request("GET", path, headers={"Cookie": self.cookie, **headers})
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            sys.exit(f"GET {path}: {response.status}\n{body[:500]!r}")
        return elapsed, len(body)


def main() -> None:
    args = parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    url = postgres_url(args.db)
    ensure_database(url)
    static_root = tempfile.mkdtemp(prefix="rf-bench-static-")
    env = bench_env(url, static_root)
    manage(env, "migrate")
    manage(env, "collectstatic", "--noinput")
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection, connections

    setups = {}
    for size in sizes:
        started = time.monotonic()
        engineer = load(size)
        setups[size] = {"cookie": sign_in(engineer), **cursors(engineer)}
        print(f"  {size:>6} waiting loaded in {time.monotonic() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connections.close_all()

    htmx = {"HX-Request": "true"}
    urls = {
        "queue page": lambda setup: ("/escalations/", {}),
        "Show more, last page": lambda setup: (
            "/escalations/?" + urlencode({"after": setup["deep"]}),
            htmx,
        ),
        "live refresh (first page in view)": lambda setup: (
            "/escalations/?" + urlencode({"through": setup["first"]}),
            htmx,
        ),
        "JSON queue": lambda setup: ("/escalations/", {"Accept": "application/json"}),
    }
    load_before = os.getloadavg()
    times = {(size, label): [] for size in sizes for label in urls}
    sizes_seen = {(size, label): 0 for size in sizes for label in urls}
    port = free_port()
    server = start_uvicorn(env, port, workers=args.workers)
    try:
        clients = {size: Client(port, setups[size]["cookie"]) for size in sizes}
        for round_ in range(args.warmup + args.requests):
            for label, request in urls.items():
                for size in sizes:
                    path, headers = request(setups[size])
                    elapsed, length = clients[size].get(path, headers)
                    sizes_seen[size, label] = max(sizes_seen[size, label], length)
                    if round_ >= args.warmup:
                        times[size, label].append(elapsed)
    finally:
        stop_server(server)
        shutil.rmtree(static_root, ignore_errors=True)
    load_after = os.getloadavg()

    print()
    print(
        f"{machine()}; "
        f"uvicorn workers: {args.workers}, {args.requests} requests per URL and size after "
        f"{args.warmup} warm-up, round-robin; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after"
    )
    base = sizes[0]
    print(f"| URL | waiting | p50 ms | p95 ms | p95 / p95 at {base} | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    stats = {
        key: {"p50": statistics.median(values), "p95": percentile(values, 95)}
        for key, values in times.items()
    }
    for label in urls:
        for size in sizes:
            row = stats[size, label]
            ratio = row["p95"] / stats[base, label]["p95"]
            print(
                f"| {label} | {size:,} | {row['p50']:.1f} | {row['p95']:.1f} | "
                f"{ratio:.2f} | {sizes_seen[size, label]:,} |"
            )
    page = {size: stats[size, "queue page"] for size in sizes}
    within = all(page[size]["p95"] <= BOUND * page[base]["p95"] for size in sizes)
    # Bounded: 50 cards at every size. Their content differs with the data (a deep queue's
    # first 50 are all high urgency and overdue, with a pill each), so allow 10 %.
    page_bytes = {size: sizes_seen[size, "queue page"] for size in sizes}
    bounded = all(page_bytes[size] <= page_bytes[base] * 1.10 for size in sizes)
    print()
    print(f"queue page p95 within {BOUND}x of {base} waiting: {'yes' if within else 'NO'}")
    print(f"queue page size bounded: {'yes' if bounded else 'NO'}")


if __name__ == "__main__":
    main()
