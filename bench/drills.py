"""Fault drills: load plus one injected fault per scenario, and what it cost.

For each scenario a fresh layout is started on the given PostgreSQL database: a private
redis-server, an aiosmtpd relay, two uvicorn web processes, the events worker (with the
beat) and the email worker: the Procfile's layout without Pushpin (streams held by the web
processes, the direct layout). Technicians escalate without pause on both
web processes while seniors' queue and bell streams are open on both; then the fault:

- ``redis-pause``: SIGSTOP Redis for 15 s, then SIGCONT.
- ``slow-smtp``: the relay answers every reply in 4.6 s (EMAIL_URL timeout 5 s); four
  escalations only, since each message takes about 28 s.
- ``pg-terminate``: pg_terminate_backend on every web/worker backend, three times.

Printed per scenario: escalations committed, HTTP 5xx (503 apart: the database said "try
again"), requests with no answer, emails missing and duplicated
(one per senior per escalation expected), stream events missing (queue and bell streams),
and the recovery time (from the end of the fault until the last stream had every event
committed during it).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rf_drills \\
        .venv/bin/python bench/drills.py [redis-pause slow-smtp pg-terminate]

The database is migrated and the demo people are seeded; the handoffs the drill creates
stay there (use a scratch database).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.pop("REDIS_URL", None)  # this process only writes rows and reads streams

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from tests.asgi import SseStream, session_cookie, subprocess_env, wait_until  # noqa: E402
from tests.services import (  # noqa: E402
    CeleryWorker,
    Escalator,
    RedisServer,
    SmtpSink,
)

LOAD_SECONDS = 8  # of escalations before and after the fault
LAYOUT_APPLICATION = "rf-drill-layout"


def database_url() -> str:
    return os.environ["DATABASE_URL"]


class Layout:
    def __init__(self, directory: Path, *, smtp: SmtpSink) -> None:
        from tests.asgi import UvicornProcess

        self.directory = directory
        self.redis = RedisServer(directory).start()
        self.smtp = smtp.start()
        env = subprocess_env(
            REDIS_URL=self.redis.url, EMAIL_URL=self.smtp.url, SITE_URL="https://rf.example"
        )
        # Named, so that pg-terminate hits the layout's connections, not the drill's own.
        env["DATABASE_URL"] = f"{database_url()}?application_name={LAYOUT_APPLICATION}"
        env["LOG_LEVEL"] = "WARNING"
        # Production mode: Django's handler500 (with it the 503 for an unreachable
        # database) only answers with DEBUG off. The drill's requests are JSON: no static.
        env.update(DEBUG="0", SECRET_KEY=settings.SECRET_KEY, SECURE_SSL_REDIRECT="0")
        self.webs = [
            UvicornProcess(env, log_path=directory / f"web{n}.log").start() for n in range(2)
        ]
        self.workers = [
            CeleryWorker(env, directory, name="events", queues="events").start(),
            CeleryWorker(
                env, directory, name="email", queues="email,outbound", beat=False, concurrency=8
            ),
        ]
        self.workers[1].start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for web in self.webs:
            web.stop()
        self.smtp.stop()
        self.redis.stop()


class Load:
    def __init__(self, webs, tess, *, limit: int | None = None) -> None:
        self.limit = limit
        self.escalators = [Escalator(web, tess) for web in webs]
        self.committed: list[tuple[str, float]] = []
        self.statuses: Counter[int] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        number = 0
        try:
            while not self.stop.is_set() and (self.limit is None or number < self.limit):
                escalator = self.escalators[number % len(self.escalators)]
                try:
                    response, _ = escalator.escalate(f"Drill {number}: VPN drops")
                except Exception:
                    self.statuses[0] += 1  # no HTTP answer at all
                    connection.close()
                    time.sleep(0.2)
                    continue
                finally:
                    number += 1
                self.statuses[response.status_code] += 1
                if response.status_code == 201:
                    self.committed.append((response.json()["handoff"], time.monotonic()))
        finally:
            connection.close()


def terminate_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [LAYOUT_APPLICATION],
        )
        return cursor.fetchone()[0]


def run(scenario: str, directory: Path) -> dict:
    from escalations.models import EmailDelivery
    from resolutionflow.management.commands.seed_demo import seed_people

    people = seed_people()
    # Leftovers of an earlier drill on this database would be swept into this one's counts.
    EmailDelivery.objects.exclude(state="sent").update(state="failed", next_attempt_at=None)
    tess, sam, sky = people["tess"], people["sam"], people["sky"]
    seniors = sorted(
        p.email for p in people.values() if p.account_id == tess.account_id and p.is_senior
    )
    smtp = SmtpSink(timeout=5, reply_delay=4.6) if scenario == "slow-smtp" else SmtpSink()
    layout = Layout(directory, smtp=smtp)
    streams = {
        (who.username, kind, n): SseStream(web.url, path, cookies=session_cookie(who))
        for who in (sam, sky)
        for n, web in enumerate(layout.webs)
        for kind, path in (
            ("handoff-escalated", "/escalations/events/"),
            ("notification", "/notifications/events/"),
        )
    }
    try:
        for stream in streams.values():
            stream.wait_open(timeout=30)
        # A relay taking ~28 s a message: a few escalations are enough to see duplicates.
        load = Load(layout.webs, tess, limit=4 if scenario == "slow-smtp" else None)
        load.thread.start()
        time.sleep(LOAD_SECONDS)
        fault_started = time.monotonic()
        if scenario == "redis-pause":
            layout.redis.pause()
            time.sleep(15)
            layout.redis.resume()
        elif scenario == "pg-terminate":
            for _ in range(3):
                terminate_backends()
                time.sleep(2)
        fault_ended = time.monotonic()
        time.sleep(LOAD_SECONDS)
        load.stop.set()
        load.thread.join(timeout=60)
        for escalator in load.escalators:
            escalator.client.close()

        committed = dict(load.committed)
        during = {h for h, at in load.committed if fault_started <= at <= fault_ended}
        missing_events = 0
        last_arrival = fault_ended
        for (_, kind, _), stream in streams.items():
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 30
            while not committed.keys() <= seen.keys() and time.monotonic() < deadline:
                try:
                    event = stream.next(timeout=1)
                except TimeoutError:
                    continue
                if event.event == kind and event.json:
                    seen.setdefault(event.json["handoff"], event.received_at)
            for event in stream.seen:
                if event.event == kind and event.json:
                    seen.setdefault(event.json["handoff"], event.received_at)
            missing_events += len(committed.keys() - seen.keys())
            last_arrival = max([last_arrival] + [seen[h] for h in during if h in seen])

        expected = Counter({(h, a): 1 for h in committed for a in seniors})
        wait_until(
            lambda: len(layout.smtp.received) >= len(expected),
            180,
            "",
        ) if expected else None
        time.sleep(5)  # a drain and a sweep: would a second copy go out?
        got = Counter(
            (mail.message["X-ResolutionFlow-Handoff"], address)
            for mail in layout.smtp.received
            for address in mail.to
        )
        errors = [
            line
            for web in layout.webs
            for line in web.log_path.read_text(errors="replace").splitlines()
            if line
            and not line.startswith((" ", "Traceback", "During", "The above"))
            and ("Error" in line or "Exception" in line)
        ]
        if errors:
            print("  web errors:", *sorted(set(errors))[:10], sep="\n    ", flush=True)
        return {
            "escalations committed": len(committed),
            "500": sum(n for code, n in load.statuses.items() if code >= 500 and code != 503),
            "503": load.statuses[503],
            "no answer": load.statuses[0],
            "emails missing": sum((expected - got).values()),
            "emails duplicated": sum(max(0, got[key] - 1) for key in expected),
            "stream events missing": missing_events,
            "recovery s": round(last_arrival - fault_ended, 1),
        }
    except AssertionError:
        return {"error": "emails did not all arrive within 180 s"}
    finally:
        for stream in streams.values():
            stream.close()
        layout.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios", nargs="*", default=["redis-pause", "slow-smtp", "pg-terminate"]
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    results = {}
    for scenario in args.scenarios:
        with tempfile.TemporaryDirectory() as directory:
            print(f"running {scenario} ...", flush=True)
            results[scenario] = run(scenario, Path(directory))
            print(f"  {results[scenario]}", flush=True)
    columns = list(next(iter(results.values())).keys())
    print("\n| scenario | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for scenario, row in results.items():
        print(f"| {scenario} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
