"""SSE fan-out: how long until every connected senior's queue and bell have a new escalation.

For each size (default 10, 100 and 300), a fresh uvicorn process serves the app; that many
engineers of one bench account each hold the two streams of the queue page open (the queue,
/escalations/events/, and the bell, /notifications/events/, which for a senior also carries
the queue's events; signed-in session cookies, httpx2 AsyncClient streams); a technician
escalates over HTTP; we time from the POST until each queue stream has the handoff and each
bell its notification, and read the server's RSS.

Run from the repository root, on PostgreSQL (the server is another process):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/resolutionflow_dev \\
        .venv/bin/python bench/sse_fanout.py [10 100 300] [--rounds 5] [--embedded]

By default the bench starts its own redis-server on a free port (REDIS_URL for the server:
events travel Redis pub/sub as in production; the email tasks are queued and dropped with
that Redis). ``--embedded`` runs without Redis: events in-process, tasks inline.
The bench account and its people are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")
os.environ.setdefault("DEBUG", "1")

from bench.harness import free_port, machine, percentile  # noqa: E402 - after the path

CSRF = "c" * 32


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- data (synchronous ORM, outside the event loop) --------------------------------------------


def make_people(size: int) -> tuple:
    from django.contrib.sessions.backends.db import SessionStore

    from resolutionflow.models import Account, Role, User

    tag = uuid.uuid4().hex[:8]
    account = Account.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}")
    engineers = User.objects.bulk_create(
        User(
            username=f"bench-{tag}-eng-{n}",
            email=f"eng{n}@{tag}.bench.example",
            account=account,
            role=Role.ENGINEER,
        )
        for n in range(size)
    )
    technician = User.objects.create(
        username=f"bench-{tag}-tech", email="", account=account, role=Role.TECHNICIAN
    )

    def cookie(user) -> str:
        store = SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        store["_auth_user_hash"] = user.get_session_auth_hash()
        store.create()
        return store.session_key

    return account, [cookie(user) for user in engineers], technician, cookie(technician)


def make_sessions(account, technician, count: int) -> list[int]:
    from flowpilot.models import Session

    return [
        Session.objects.create(
            account=account, owner=technician, problem=f"Bench problem {n}: printers stuck"
        ).pk
        for n in range(count)
    ]


def delete_account(account) -> None:
    from escalations.models import Handoff
    from resolutionflow.models import User

    Handoff.objects.filter(account=account).delete()  # its people are PROTECTed otherwise
    User.objects.filter(account=account).delete()
    account.delete()


def delete_sessions(keys: list[str]) -> None:
    from django.contrib.sessions.models import Session as DjangoSession

    DjangoSession.objects.filter(session_key__in=keys).delete()


# -- the measurement ---------------------------------------------------------------------------


class Watcher:
    """One stream of one senior: records when each handoff's ``event`` came."""

    def __init__(self, client, cookie: str, path: str, event: str) -> None:
        self.client = client
        self.cookie = cookie
        self.path = path
        self.event = event
        self.opened = asyncio.Event()
        self.arrivals: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        headers = {"Cookie": f"sessionid={self.cookie}", "Accept": "text/event-stream"}
        async with self.client.stream("GET", self.path, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"stream answered {response.status_code}")
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "stream-open":
                        self.opened.set()
                elif line.startswith("data: ") and event == self.event:
                    handoff = json.loads(line[6:])["handoff"]
                    self.arrivals.setdefault(handoff, time.perf_counter())
                    self.changed.set()


async def measure(
    url: str, cookies: list[str], tech_cookie: str, sessions: list[int], server_pid: int
) -> dict:
    import httpx2

    limits = httpx2.Limits(max_connections=2 * len(cookies) + 10, max_keepalive_connections=20)
    timeout = httpx2.Timeout(30.0, read=None)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=timeout) as streams:
        queues = [
            Watcher(streams, cookie, "/escalations/events/", "handoff-escalated")
            for cookie in cookies
        ]
        bells = [
            Watcher(streams, cookie, "/notifications/events/", "notification") for cookie in cookies
        ]
        watchers = queues + bells
        started = time.perf_counter()
        tasks = [asyncio.create_task(watcher.run()) for watcher in watchers]
        await asyncio.wait_for(asyncio.gather(*(w.opened.wait() for w in watchers)), 120)
        connect_seconds = time.perf_counter() - started
        connected_rss = rss_kib(server_pid)

        poster = httpx2.AsyncClient(
            base_url=url,
            timeout=30,
            cookies={"sessionid": tech_cookie, "csrftoken": CSRF},
            headers={"X-CSRFToken": CSRF, "Accept": "application/json"},
        )
        rounds = []
        try:
            for index, session_id in enumerate(sessions):
                await asyncio.sleep(0.5)
                posted = time.perf_counter()
                response = await poster.post(
                    f"/flowpilot/sessions/{session_id}/escalate",
                    json={"reason": "Bench: tried the usual", "urgency": "normal"},
                )
                answered = time.perf_counter()
                if response.status_code != 201:
                    raise RuntimeError(f"escalate answered {response.status_code}: {response.text}")
                handoff = response.json()["handoff"]
                deadline = time.perf_counter() + 30
                while any(handoff not in w.arrivals for w in watchers):
                    if time.perf_counter() > deadline:
                        missing = sum(handoff not in w.arrivals for w in watchers)
                        raise RuntimeError(f"{missing} streams never got {handoff}")
                    await asyncio.sleep(0.005)
                rounds.append(
                    {
                        "warmup": index == 0,
                        "request_ms": (answered - posted) * 1000,
                        "latencies_ms": [(w.arrivals[handoff] - posted) * 1000 for w in queues],
                        "bell_ms": [(w.arrivals[handoff] - posted) * 1000 for w in bells],
                    }
                )
        finally:
            await poster.aclose()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "connect_seconds": connect_seconds,
        "rounds": rounds,
        "connected_rss_kib": connected_rss,
    }


def run_size(size: int, rounds: int, env: dict, workdir: Path) -> dict:
    account, cookies, technician, tech_cookie = make_people(size)
    sessions = make_sessions(account, technician, rounds + 1)
    port = free_port()
    log = open(workdir / f"uvicorn-{size}.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "uvicorn", "resolutionflow.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--lifespan", "off", "--timeout-graceful-shutdown", "1", "--no-server-header"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server)
        # One request warms the app (imports, URLconf, templates) before we read memory.
        import httpx2

        httpx2.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
        idle_rss = rss_kib(server.pid)
        url = f"http://127.0.0.1:{port}"
        result = asyncio.run(measure(url, cookies, tech_cookie, sessions, server.pid))
        result["idle_rss_kib"] = idle_rss
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        delete_account(account)
        delete_sessions([*cookies, tech_cookie])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 100, 300])
    parser.add_argument("--rounds", type=int, default=5, help="measured escalations per size")
    parser.add_argument("--embedded", action="store_true", help="no Redis: events in-process")
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL=postgres://... (the server is another process)")

    import logging

    import django

    django.setup()
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    workdir = Path(tempfile.mkdtemp(prefix="sse-fanout-"))
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "EMAIL_URL"}}
    env |= {"DEBUG": "1", "ALLOWED_HOSTS": "*", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    redis = None
    if not args.embedded:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found; install it or pass --embedded")
        redis_port = free_port()
        redis = subprocess.Popen(
            [binary, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(redis_port, redis)
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    env["EMAIL_URL"] = "dummy://"  # no mail leaves the machine (tasks run inline if embedded)

    mode = "embedded (no Redis)" if args.embedded else "Redis pub/sub (own redis-server)"
    print(f"SSE fan-out, {mode}, {args.rounds} measured escalations per size (+1 warm-up)")
    print(f"machine: {machine()}")
    print(f"date: {datetime.date.today().isoformat()}")
    header = (
        f"{'seniors':>7} {'connect s':>9} {'POST ms':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'max ms':>7} {'bell p95':>8} {'bell max':>8} {'first max':>9} {'RSS idle':>9} "
        f"{'RSS open':>9} {'KiB/senior':>10}"
    )
    print(header)
    try:
        for size in args.sizes:
            result = run_size(size, args.rounds, env, workdir)
            measured = [r for r in result["rounds"] if not r["warmup"]]
            latencies = [value for r in measured for value in r["latencies_ms"]]
            bell = [value for r in measured for value in r["bell_ms"]]
            first = max(result["rounds"][0]["latencies_ms"])
            post = statistics.median(r["request_ms"] for r in measured)
            per_connection = (result["connected_rss_kib"] - result["idle_rss_kib"]) / size
            print(
                f"{size:>7} {result['connect_seconds']:>9.2f} {post:>8.1f} "
                f"{statistics.median(latencies):>7.1f} {percentile(latencies, 95):>7.1f} "
                f"{max(latencies):>7.1f} {percentile(bell, 95):>8.1f} {max(bell):>8.1f} "
                f"{first:>9.1f} "
                f"{result['idle_rss_kib'] / 1024:>7.1f}Mi "
                f"{result['connected_rss_kib'] / 1024:>7.1f}Mi "
                f"{per_connection:>10.1f}",
                flush=True,
            )
    finally:
        if redis is not None:
            redis.kill()
            redis.wait()
    print(f"server logs: {workdir}")


if __name__ == "__main__":
    main()
