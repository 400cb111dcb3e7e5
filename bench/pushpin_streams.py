"""Open streams at scale: uvicorn holding them (direct) against Pushpin holding them (GRIP).

For each size (default 1,000 and 5,000 open streams) and each layout:

- direct: ``uvicorn --workers 2`` on one port (the layout of docs/OPERATIONS.md before
  Pushpin), events between its two worker processes through Redis;
- pushpin: Pushpin (scripts/pushpin_config.py) in front of two separate uvicorn processes
  on their own ports (``make production-local``), ``GRIP_URL`` set: the web processes
  answer each stream request once and Pushpin holds it.

Half the streams are queue streams (``/escalations/events/``), half bell streams
(``/notifications/events/``, which for a senior carries the queue too), spread over 20
engineers of one bench account (a person may have many tabs). A technician then escalates
over HTTP several times, a second apart; we time from the POST until every stream has the
``handoff-escalated`` event, and read the resident memory (RSS) of the web processes and of
Pushpin's processes before and after the streams opened, and how many streams each web
process holds (``ss``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rf_bench \\
        .venv/bin/python bench/pushpin_streams.py [1000 5000] [--rounds 5] [--layout both]

Streams re-check their session every ``RF_STREAM_SESSION_CHECK_SECONDS``; behind Pushpin
that is a reconnect. The bench sets it to an hour for both layouts so that the streams it
opened stay open while it measures (opening 5,000 takes longer than a minute here); the
cost of those reconnects is the "open" rate it prints. The soft limit of open files is
raised to the hard limit (5,000 streams are 10,000+ sockets on one machine). The bench
starts its own redis-server; the bench account and its people are deleted afterwards.
``PUSHPIN_MESSAGE_RATE=2500`` runs Pushpin with Debian's default rate of messages to clients
instead of scripts/pushpin_config.py's 50,000 a second.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resolutionflow.settings")
os.environ.setdefault("DEBUG", "1")
# The servers run with DEBUG off: the sessions this process signs must be theirs too.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))

from bench.harness import free_port, machine, percentile, stop_server  # noqa: E402
from bench.sse_fanout import (  # noqa: E402 - after the path and settings above
    CSRF,
    delete_account,
    delete_sessions,
    make_people,
    make_sessions,
    wait_for_port,
)

ENGINEERS = 20


# -- processes ----------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += tree(int(child))
    return pids


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def streams_per_process(port: int) -> dict[int, int]:
    """Established connections on ``port`` by the pid that holds them (``ss -tnp``)."""
    output = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", output):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def uvicorn(port: int, env: dict, log: Path, workers: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "resolutionflow.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--lifespan", "off", "--timeout-graceful-shutdown", "1", "--no-server-header"]
    if workers > 1:
        command += ["--workers", str(workers)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def warm(port: int) -> None:
    import httpx2

    for _ in range(4):  # several, so that every worker process has loaded the app
        httpx2.get(f"http://127.0.0.1:{port}/escalations/events/", timeout=30)  # a 403


class Layout:
    name = ""

    def __init__(self, env: dict, workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def web_pids(self) -> list[int]:
        return [pid for process in self.webs for pid in tree(process.pid)]

    def pushpin_pids(self) -> list[int]:
        return []

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_server(process)


class Direct(Layout):
    name = "direct"

    def start(self) -> Direct:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        web = uvicorn(self.port, self.env, self.workdir / "direct.log", workers=2)
        self.webs = self.processes = [web]
        wait_for_port(self.port, web, timeout=60)
        warm(self.port)
        return self

    def stream_ports(self) -> list[int]:
        return [self.port]


class Pushpin(Layout):
    name = "pushpin"

    def start(self) -> Pushpin:
        from scripts.pushpin_config import write_config

        ports = [free_port(), free_port()]
        http, control, key = free_port(), free_port(), secrets.token_urlsafe(32)
        self.url = f"http://127.0.0.1:{http}"
        env = self.env | {"GRIP_URL": f"http://127.0.0.1:{control}/?iss=pushpin&key={key}"}
        self.webs = [
            uvicorn(port, env, self.workdir / f"web{n}.log") for n, port in enumerate(ports, 1)
        ]
        self.ports = ports
        config = write_config(
            self.workdir / f"pushpin-{http}",
            http=f"127.0.0.1:{http}",
            control_port=control,
            sig_key=key,
            webs=[f"127.0.0.1:{port}" for port in ports],
            **(
                {"message_rate": int(rate)}
                if (rate := os.environ.get("PUSHPIN_MESSAGE_RATE"))
                else {}
            ),
        )
        self.pushpin = subprocess.Popen(
            [shutil.which("pushpin"), "--config", str(config)],
            stdout=(self.workdir / "pushpin.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes = [*self.webs, self.pushpin]
        for port, web in zip(ports, self.webs, strict=True):
            wait_for_port(port, web, timeout=60)
            warm(port)
        wait_for_port(http, self.pushpin)
        wait_for_port(control, self.pushpin)
        return self

    def pushpin_pids(self) -> list[int]:
        return tree(self.pushpin.pid)

    def stream_ports(self) -> list[int]:
        return self.ports


# -- a light SSE reader: thousands of them in one event loop -------------------------------------


class Stream:
    """One raw HTTP/1.1 event stream; records when each handoff's escalation arrived."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.port, self.path, self.cookie = port, path, cookie
        self.opened = asyncio.Event()
        self.arrivals: dict[str, float] = {}
        self.error: str | None = None
        self.ended = False

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as error:
            self.error = f"connect: {error}"
            self.opened.set()
            return
        try:
            writer.write(
                (
                    f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                    f"Cookie: sessionid={self.cookie}\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.error = head.split(b"\r\n", 1)[0].decode()
                self.opened.set()
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            body = b""
            while True:
                if chunked:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        return
                    data = await reader.readexactly(size + 2)
                    body += data[:-2]
                else:
                    data = await reader.read(65536)
                    if not data:
                        return
                    body += data
                *events, body = body.split(b"\n\n")
                for event in events:
                    self.take(event)
        except (OSError, asyncio.IncompleteReadError) as error:
            self.error = self.error or f"read: {error!r}"
        finally:
            self.ended = True
            self.opened.set()
            writer.close()

    def take(self, event: bytes) -> None:
        if b"event: stream-open" in event:
            self.opened.set()
        elif b"event: handoff-escalated" in event:
            found = re.search(rb'"handoff": "([0-9a-f-]{36})"', event)
            if found:
                self.arrivals.setdefault(found.group(1).decode(), time.perf_counter())


async def measure(layout: Layout, size: int, cookies: list[str], tech: str, sessions: list[int]):
    import httpx2

    host_port = int(layout.url.rsplit(":", 1)[1])
    paths = ["/escalations/events/", "/notifications/events/"]
    streams = [
        Stream(host_port, paths[n % 2], cookies[(n // 2) % len(cookies)]) for n in range(size)
    ]
    tasks = []
    started = time.perf_counter()
    # Open in waves: a browser population reconnecting all at once is another bench.
    for index, stream in enumerate(streams):
        tasks.append(asyncio.create_task(stream.run()))
        if index % 100 == 99:
            await asyncio.gather(*(s.opened.wait() for s in streams[index - 99 : index + 1]))
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 600)
    opened_in = time.perf_counter() - started
    failed = [s.error for s in streams if s.error]
    if failed:
        raise RuntimeError(f"{len(failed)} streams failed to open: {failed[:3]}")
    await asyncio.sleep(2)  # let the last opens settle (Pushpin's first next-link fetches)
    memory = {"web": rss_kib(layout.web_pids()), "pushpin": rss_kib(layout.pushpin_pids())}
    held = {}
    for port in layout.stream_ports():
        held |= streams_per_process(port)

    rounds = []
    async with httpx2.AsyncClient(
        base_url=layout.url,
        timeout=60,
        cookies={"sessionid": tech, "csrftoken": CSRF},
        headers={"X-CSRFToken": CSRF, "Accept": "application/json"},
    ) as poster:
        for index, session_id in enumerate(sessions):
            await asyncio.sleep(1)
            posted = time.perf_counter()
            response = await poster.post(
                f"/flowpilot/sessions/{session_id}/escalate",
                json={"reason": "Bench: tried the usual", "urgency": "normal"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"escalate answered {response.status_code}: {response.text}")
            handoff = response.json()["handoff"]
            deadline = time.perf_counter() + 60
            # A stream the server ended (an error) is one a browser would reopen with its
            # Last-Event-ID: counted apart, not waited for.
            while any(handoff not in s.arrivals and not s.ended for s in streams):
                if time.perf_counter() > deadline:
                    missing = sum(handoff not in s.arrivals for s in streams)
                    raise RuntimeError(f"{missing} of {size} streams never got {handoff}")
                await asyncio.sleep(0.01)
            latencies = [(s.arrivals[handoff] - posted) * 1000 for s in streams if not s.ended]
            rounds.append({"warmup": index == 0, "latencies_ms": latencies})
    ended = sum(s.ended for s in streams)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "opened_in": opened_in,
        "memory": memory,
        "held": held,
        "rounds": rounds,
        "ended": ended,
    }


def run(layout_class, size: int, rounds: int, env: dict, workdir: Path) -> dict:
    account, cookies, technician, tech = make_people(ENGINEERS)
    sessions = make_sessions(account, technician, rounds + 1)
    layout = layout_class(env, workdir)
    try:
        layout.start()
        time.sleep(1)
        idle = {"web": rss_kib(layout.web_pids()), "pushpin": rss_kib(layout.pushpin_pids())}
        result = asyncio.run(measure(layout, size, cookies, tech, sessions))
        result["idle"] = idle
        return result
    finally:
        layout.stop()
        delete_account(account)
        delete_sessions([*cookies, tech])


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=5, help="measured escalations per run")
    parser.add_argument("--layout", choices=["direct", "pushpin", "both"], default="both")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL=postgres://... (the servers are other processes)")
    if args.layout != "direct" and shutil.which("pushpin") is None:
        raise SystemExit("pushpin is not installed (apt-get install pushpin)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it

    import logging

    import django

    django.setup()
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    workdir = Path(tempfile.mkdtemp(prefix="pushpin-streams-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(redis_port, redis)
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "EMAIL_URL", "GRIP_URL"}}
    env |= {
        "DEBUG": "0",
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "*",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "EMAIL_URL": "dummy://",
        "RF_STREAM_SESSION_CHECK_SECONDS": "3600",
        "RF_RATE_ESCALATIONS": "off",
    }
    layouts = {"direct": [Direct], "pushpin": [Pushpin], "both": [Direct, Pushpin]}[args.layout]

    print(f"Open streams, direct vs Pushpin, {args.rounds} measured escalations (+1 warm-up)")
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; open files {hard}")
    print(
        f"{'layout':>8} {'streams':>7} {'opened in':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'max ms':>7} {'web RSS idle→open':>19} {'pushpin RSS idle→open':>22} "
        f"{'KiB/stream':>10} {'ended':>5}  connections per web process  load (1 5 15 min)"
    )
    try:
        for size in args.sizes:
            for layout_class in layouts:
                before = load()
                result = run(layout_class, size, args.rounds, env, workdir)
                measured = [r for r in result["rounds"] if not r["warmup"]]
                latencies = [value for r in measured for value in r["latencies_ms"]]
                idle, memory = result["idle"], result["memory"]
                grown = memory["web"] - idle["web"] + memory["pushpin"] - idle["pushpin"]
                held = sorted(result["held"].values(), reverse=True)
                print(
                    f"{layout_class.name:>8} {size:>7} {result['opened_in']:>8.1f}s "
                    f"{statistics.median(latencies):>7.0f} {percentile(latencies, 95):>7.0f} "
                    f"{max(latencies):>7.0f} "
                    f"{idle['web'] / 1024:>8.0f}→{memory['web'] / 1024:>6.0f} MiB "
                    f"{idle['pushpin'] / 1024:>11.0f}→{memory['pushpin'] / 1024:>6.0f} MiB "
                    f"{grown / size:>10.1f} {result['ended']:>5}  {held!s:<28} {before} → {load()}",
                    flush=True,
                )
    finally:
        redis.kill()
        redis.wait()
    print(f"logs: {workdir}")


if __name__ == "__main__":
    main()
