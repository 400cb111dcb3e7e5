"""Claim race over HTTP: concurrent claimers against a real ASGI server on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/claim_race.py [--claimers 50] [--rounds 20] [--sequential 300]

Creates and migrates its own database (``resolutionflow_bench_claim``, or ``--db NAME``) on
the server of DATABASE_URL, adds ``--claimers`` engineers and fresh open handoffs, starts
uvicorn in a subprocess (``bench.claim_settings``: the app plus a bench-only floor view),
then measures over keep-alive HTTP connections with session cookies and CSRF, as a browser
would:

- one claimer at a time (``--sequential`` claims of fresh handoffs);
- bursts: ``--claimers`` threads released together by a Barrier on the same handoff,
  ``--rounds`` times: winners, 409s and errors per round, and every latency;

each for POST /handoffs/<id>/claim (the whole action: conditional UPDATE, event row,
session, the escalator's bell item, every engineer's "arrived" item marked read, outbox
events published after commit; each handoff starts with one unread "arrived" item per
engineer, as after a real escalation) and for the floor,
POST /bench/floor/<id>/claim (a bare view doing only the conditional UPDATE, on the same
server and middleware). Prints p50 / p95 / p99 / max latency for each.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

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

BURST_DEADLINE_MS = 500


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="resolutionflow_bench_claim")
    parser.add_argument("--claimers", type=int, default=50, help="claimers per burst")
    parser.add_argument("--rounds", type=int, default=20, help="bursts per endpoint")
    parser.add_argument("--sequential", type=int, default=300, help="one-at-a-time claims")
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="think time between one-at-a-time claims (0: back to back, each request also "
        "waits for the previous one's after-response event publishing)",
    )
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--defer-publish",
        action="store_true",
        help="leave events in the outbox (no after-commit publishing): shows its share",
    )
    return parser.parse_args()


# --- the database ----------------------------------------------------------------------------


def bench_env(url: str, *, defer_publish: bool = False) -> dict[str, str]:
    return {
        **os.environ,
        "RF_BENCH_DEFER_PUBLISH": "1" if defer_publish else "0",
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "bench.claim_settings",
        "LOG_LEVEL": "ERROR",  # 409s are the point here, not warnings
        "PYTHONPATH": str(ROOT),
    }


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=bench_env(url),
        check=True,
    )


@dataclass
class Fixture:
    cookies: list[str]  # one signed-in engineer per claimer: "sessionid=...; csrftoken=..."
    csrf: str
    handoffs: dict[str, list[str]] = field(default_factory=dict)


def prepare(url: str, args: argparse.Namespace) -> Fixture:
    """Engineers with sessions, and fresh open handoffs for every measurement."""
    os.environ.update(bench_env(url))
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from escalations.models import Handoff, Notification, NotificationKind
    from flowpilot.models import Session, SessionStatus
    from resolutionflow.management.commands.seed_demo import seed_people
    from resolutionflow.models import Role, User

    people = seed_people()
    tess = people["tess"]
    engineers = []
    for index in range(args.claimers):
        engineer, _ = User.objects.get_or_create(
            username=f"bench-engineer-{index}",
            defaults={
                "account_id": tess.account_id,
                "role": Role.ENGINEER,
                "display_name": f"Bench Engineer {index}",
            },
        )
        engineers.append(engineer)

    cookies = []
    csrf = secrets.token_hex(16)  # 32 characters: Django accepts it as a cookie token
    for engineer in engineers:
        store = SessionStore()
        store[SESSION_KEY] = str(engineer.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = engineer.get_session_auth_hash()
        store.create()
        cookies.append(f"sessionid={store.session_key}; csrftoken={csrf}")

    needs = {
        "claim-sequential": args.warmup + args.sequential,
        "floor-sequential": args.warmup + args.sequential,
        "claim-burst": args.rounds,
        "floor-burst": args.rounds,
    }
    fixture = Fixture(cookies=cookies, csrf=csrf)
    for purpose, count in needs.items():
        sessions = Session.objects.bulk_create(
            [
                Session(
                    account_id=tess.account_id,
                    owner=tess,
                    problem=f"Bench {purpose} {index}: the printer is offline",
                    status=SessionStatus.ESCALATED,
                )
                for index in range(count)
            ]
        )
        handoffs = Handoff.objects.bulk_create(
            [
                Handoff(
                    id=uuid.uuid4(),
                    account_id=tess.account_id,
                    session=session,
                    escalated_by=tess,
                    reason="Bench",
                    escalation_package={"version": 1},
                )
                for session in sessions
            ]
        )
        fixture.handoffs[purpose] = [str(handoff.pk) for handoff in handoffs]
        # As after a real escalation: every engineer's bell holds an unread "arrived" item,
        # which the claim marks read (and tells each of them, live).
        Notification.objects.bulk_create(
            [
                Notification(
                    account_id=tess.account_id,
                    recipient=engineer,
                    handoff=handoff,
                    kind=NotificationKind.HANDOFF_ESCALATED,
                    text=f"Tess Tran escalated: bench {purpose}",
                )
                for handoff in handoffs
                for engineer in engineers
            ],
            batch_size=5000,
        )
    from django.db import connections

    connections.close_all()
    return fixture


# --- the server ------------------------------------------------------------------------------


# --- the clients ----------------------------------------------------------------------------


class Claimer:
    """One signed-in engineer on one keep-alive connection."""

    def __init__(self, port: int, cookie: str, csrf: str) -> None:
        self.port = port
        self.headers = {
            "Cookie": cookie,
            "X-CSRFToken": csrf,
            "Accept": "application/json",
            "Content-Length": "0",
        }
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path: str) -> tuple[int, float]:
        """(status, milliseconds); status 0 for a transport error."""
        started = time.perf_counter()
        try:
            self.connection.request("POST", path, headers=self.headers)
            response = self.connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            status = 0
        return status, (time.perf_counter() - started) * 1000


def claim_path(kind: str, handoff_id: str) -> str:
    return (
        f"/handoffs/{handoff_id}/claim" if kind == "claim" else f"/bench/floor/{handoff_id}/claim"
    )


def sequential(
    port: int, fixture: Fixture, kind: str, warmup: int, pause_ms: float = 0.0
) -> list[float]:
    claimer = Claimer(port, fixture.cookies[0], fixture.csrf)
    handoffs = fixture.handoffs[f"{kind}-sequential"]
    latencies = []
    for index, handoff_id in enumerate(handoffs):
        status, ms = claimer.post(claim_path(kind, handoff_id))
        if status != 200:
            sys.exit(f"sequential {kind}: HTTP {status} for a fresh handoff")
        if index >= warmup:
            latencies.append(ms)
        if pause_ms:
            time.sleep(pause_ms / 1000)
    return latencies


@dataclass
class BurstResult:
    latencies: list[float] = field(default_factory=list)
    winners_per_round: list[int] = field(default_factory=list)
    conflicts: int = 0
    errors: int = 0
    slowest_per_round: list[float] = field(default_factory=list)


def bursts(port: int, fixture: Fixture, kind: str, claimers: int) -> BurstResult:
    handoffs = fixture.handoffs[f"{kind}-burst"]
    people = [Claimer(port, fixture.cookies[i], fixture.csrf) for i in range(claimers)]
    # Open every connection (and warm the server's threads) before the first burst.
    for claimer in people:
        claimer.connection.request("GET", "/accounts/login/", headers=claimer.headers)
        claimer.connection.getresponse().read()
    barrier = threading.Barrier(claimers + 1)
    outcomes: list[list[tuple[int, float]]] = [[] for _ in handoffs]

    def run(claimer: Claimer) -> None:
        for round_index, handoff_id in enumerate(handoffs):
            barrier.wait()
            outcomes[round_index].append(claimer.post(claim_path(kind, handoff_id)))
            barrier.wait()

    threads = [threading.Thread(target=run, args=(claimer,)) for claimer in people]
    for thread in threads:
        thread.start()
    for _ in handoffs:
        barrier.wait()  # release the burst
        barrier.wait()  # every answer is in
        time.sleep(0.05)  # let the winner's after-commit publishing finish
    for thread in threads:
        thread.join()

    result = BurstResult()
    for round_outcomes in outcomes:
        statuses = [status for status, _ms in round_outcomes]
        result.winners_per_round.append(statuses.count(200))
        result.conflicts += statuses.count(409)
        result.errors += sum(1 for status in statuses if status not in (200, 409))
        result.latencies.extend(ms for _status, ms in round_outcomes)
        result.slowest_per_round.append(max(ms for _status, ms in round_outcomes))
    return result


# --- report ----------------------------------------------------------------------------------


def row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | {len(values)} | {statistics.median(values):.1f} | "
        f"{percentile(values, 95):.1f} | {percentile(values, 99):.1f} | {max(values):.1f} |"
    )


def main() -> None:
    args = parse_args()
    url = postgres_url(args.db)
    ensure_database(url)
    migrate(url)
    fixture = prepare(url, args)
    port = free_port()
    server = start_uvicorn(
        bench_env(url, defer_publish=args.defer_publish), port, workers=args.workers
    )
    try:
        seq = {
            kind: sequential(port, fixture, kind, args.warmup, args.pause_ms)
            for kind in ("claim", "floor")
        }
        burst = {kind: bursts(port, fixture, kind, args.claimers) for kind in ("claim", "floor")}
    finally:
        stop_server(server)

    print(
        f"Machine: {machine()}; uvicorn workers: {args.workers}; "
        f"after-commit publishing: {'deferred to the drain' if args.defer_publish else 'on'}; "
    )
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print()
    print("Latency in ms, client side, keep-alive HTTP/1.1 on loopback.")
    print()
    print("| measurement | requests | p50 | p95 | p99 | max |")
    print("|---|---|---|---|---|---|")
    spacing = f" ({args.pause_ms:g} ms apart)" if args.pause_ms else " (back to back)"
    print(row("claim, one at a time" + spacing, seq["claim"]))
    print(row("floor, one at a time" + spacing, seq["floor"]))
    print(row(f"claim, bursts of {args.claimers}", burst["claim"].latencies))
    print(row(f"floor, bursts of {args.claimers}", burst["floor"].latencies))
    print()
    for kind in ("claim", "floor"):
        result = burst[kind]
        winners = result.winners_per_round
        late = sum(1 for ms in result.latencies if ms > BURST_DEADLINE_MS)
        print(
            f"{kind} bursts: {len(winners)} rounds of {args.claimers}; exactly one winner in "
            f"{winners.count(1)}/{len(winners)} (winners per round: min {min(winners)}, "
            f"max {max(winners)}); 409s {result.conflicts}; errors {result.errors}; "
            f"responses over {BURST_DEADLINE_MS} ms: {late}; slowest response of a round: "
            f"median {statistics.median(result.slowest_per_round):.0f} ms, "
            f"max {max(result.slowest_per_round):.0f} ms"
        )
    failed = any(
        result.errors or any(w != 1 for w in result.winners_per_round) for result in burst.values()
    )
    print(json.dumps({"ok": not failed}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
