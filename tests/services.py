"""Real services a test owns: its own redis-server, an SMTP server, a Celery worker.

Never the shared Redis on 6379: a test that stops or pauses Redis starts its own on a free
port. The SMTP server is aiosmtpd on loopback; it records every accepted message and can
hold the next one (to kill a worker in the middle of a send) or be stopped and started
again on the same port (a mail server outage).
"""

from __future__ import annotations

import asyncio
import email
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.asgi import (
    ROOT,
    UvicornProcess,
    free_port,
    session_cookie,
    subprocess_env,
    wait_for_port,
    wait_until,
)
from tests.conftest import is_postgres, service_missing


class RedisServer:
    """A private redis-server (no persistence) that a test may stop, restart and pause."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.paused = False

    def start(self) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is ever answered."""
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def settings(self) -> dict:
        """EVENTSTREAM_REDIS as settings.py would build it for this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "db": 0,
            "socket_connect_timeout": 1.0,
            "socket_timeout": 1.0,
        }


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM a process started in its own group, SIGKILL it after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


class PushpinServer:
    """A private Pushpin (Debian's package) in front of some web processes: its own
    configuration, run directory and free ports (scripts/pushpin_config.py writes them)."""

    SIG_KEY = "test-pushpin-sig-key"

    def __init__(self, directory: Path, webs: list[str]) -> None:
        binary = shutil.which("pushpin")
        if binary is None:
            service_missing("pushpin is not installed (apt-get install pushpin)")
        from scripts.pushpin_config import write_config

        self.binary = binary
        self.directory = directory / f"pushpin-{uuid.uuid4().hex[:6]}"
        self.http_port = free_port()
        self.control_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grip_url = f"http://127.0.0.1:{self.control_port}/?iss=pushpin&key={self.SIG_KEY}"
        self.config = write_config(
            self.directory,
            http=f"127.0.0.1:{self.http_port}",
            control_port=self.control_port,
            sig_key=self.SIG_KEY,
            webs=webs,
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> PushpinServer:
        self.log = open(self.directory / "pushpin.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.binary, "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its condure, zurl, proxy and handler go with it
        )
        wait_for_port(self.http_port, process=self.process)
        wait_for_port(self.control_port, process=self.process)
        return self

    def routes_to(self, webs: list[str]) -> None:
        """Point the routes at other web processes; returns once Pushpin has reloaded them."""
        from scripts.pushpin_config import routes

        log = self.directory / "log" / "pushpin-proxy.log"
        loaded = log.read_text(errors="replace").count("routes loaded")
        (self.directory / "routes").write_text(routes(webs))
        wait_until(
            lambda: log.read_text(errors="replace").count("routes loaded") > loaded,
            10,
            self.output,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        stop_process_group(self.process)
        self.process = None
        self.log.close()

    paused = False

    def pause(self) -> None:
        """SIGSTOP to all of Pushpin's processes (each has its own process group): the
        kernel still accepts connections on its ports, nothing is answered, held streams
        stall."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.process is not None:
            for pid in self.pids():
                os.kill(pid, signal.SIGCONT)
        self.paused = False

    def read_log(self, name: str) -> str:
        """One of Pushpin's logs in full: ``pushpin-proxy`` (requests and their targets),
        ``pushpin-handler`` (publishes and their receivers)."""
        return (self.directory / "log" / f"{name}.log").read_text(errors="replace")

    def output(self) -> str:
        logs = [self.directory / "pushpin.log", *sorted((self.directory / "log").glob("*.log"))]
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in logs)

    def pids(self) -> list[int]:
        """Pushpin's processes (the runner and what it started), for their memory."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *map(int, children.read_text().split())]


@dataclass
class ReceivedMail:
    to: list[str]
    message: email.message.Message

    @property
    def subject(self) -> str:
        return self.message["Subject"]

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        raise LookupError(content_type)


IDLE_CLIENT_SECONDS = 10  # a real client sends its next command at once


class SmtpSink:
    """aiosmtpd on loopback recording what it accepts; can hold a message or go down."""

    def __init__(
        self, port: int | None = None, *, timeout: float = 2, reply_delay: float = 0
    ) -> None:
        self.port = port or free_port()
        self.timeout = timeout
        self.reply_delay = reply_delay  # seconds before every reply, the greeting included
        self.hold_all = False
        self.received: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self.hold_next = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.controller = None

    @property
    def url(self) -> str:
        # A short timeout keeps the send deadline and the lease short in tests.
        return f"smtp://127.0.0.1:{self.port}/?timeout={self.timeout:g}"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.hold_next or self.hold_all:
            self.hold_next = False
            self.holding.set()
            # Cancelled by aiosmtpd when the client goes away: the message is never accepted.
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.received.append(ReceivedMail(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        sink = self

        class SlowSMTP(SMTP):
            async def push(self, status):
                # Once per reply: a multi-line reply (EHLO's) has "250-" continuation lines.
                text = status.decode() if isinstance(status, bytes) else status
                if sink.reply_delay and text[3:4] != "-":
                    await asyncio.sleep(sink.reply_delay)
                await super().push(status)

        class SlowController(Controller):
            def factory(self):
                # aiosmtpd waits 300 s for an idle client's next command, and stopping the
                # server waits for every connection: a session left behind (the start-up
                # probe, a worker killed mid-send) would hold the test's teardown that long.
                return SlowSMTP(self.handler, timeout=IDLE_CLIENT_SECONDS, **self.SMTP_kwargs)

        self.controller = SlowController(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.release.set()
            self.controller.stop()
            self.controller = None

    def addresses(self) -> list[str]:
        with self.lock:
            return sorted(address for mail in self.received for address in mail.to)

    def wait_for_count(self, count: int, *, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.addresses()) >= count:
                break
            time.sleep(0.1)
        return self.addresses()


# Every queue the app routes to (settings.CELERY_TASK_ROUTES): one worker that does it all.
ALL_QUEUES = "events,email,outbound"


class CeleryWorker:
    """``celery -A resolutionflow worker --beat`` in its own process group.

    ``supervise()`` restarts it whenever it exits, as systemd's ``Restart=always`` does in
    production: Celery's worker may exit when its Redis goes away (kombu fails restoring
    unacknowledged messages on the lost connection), and the design relies on a restart.
    """

    def __init__(
        self,
        env: dict[str, str],
        directory: Path,
        *,
        name: str = "worker",
        queues: str = ALL_QUEUES,
        beat: bool = True,
        concurrency: int = 4,
    ) -> None:
        self.env = env
        self.queues = queues
        self.beat = beat
        self.concurrency = concurrency
        self.directory = directory
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.log_path = directory / f"{self.name}.log"
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._supervising = threading.Event()
        self._supervisor: threading.Thread | None = None

    def supervise(self) -> CeleryWorker:
        self._supervising.set()
        self._supervisor = threading.Thread(target=self._watch, daemon=True)
        self._supervisor.start()
        return self

    def _watch(self) -> None:
        while self._supervising.is_set():
            if self.process is not None and self.process.poll() is not None:
                time.sleep(1)  # RestartSec=1
                if not self._supervising.is_set():
                    return
                self.log.close()
                self.restarts += 1
                self.start()
            time.sleep(0.2)

    def start(self, *, timeout: float = 30.0) -> CeleryWorker:
        command = [sys.executable, "-m", "celery", "-A", "resolutionflow", "worker"]
        command += ["--pool", "threads", "--concurrency", str(self.concurrency)]
        command += ["--loglevel", "INFO", "--queues", self.queues]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        command += ["--hostname", f"{self.name}@%h"]
        if self.beat:
            command += ["--beat", "--schedule", str(self.directory / f"{self.name}-beat")]
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready in {timeout} s:\n{self.output()}")
            time.sleep(0.1)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def drains(self) -> int:
        """How many outbox drains this worker has finished (from its INFO log)."""
        return sum(
            "tasks.drain_outbox[" in line and "succeeded" in line
            for line in self.log_path.read_text(errors="replace").splitlines()
        )

    def wait_for_drains(self, count: int = 2, *, timeout: float = 30.0) -> None:
        """Poll until ``count`` more drains (and their sweeps) have run on this worker."""
        target = self.drains() + count
        wait_until(lambda: self.drains() >= target, timeout, lambda: self.output())

    def kill(self) -> None:
        """SIGKILL the whole worker (its beat too): no cleanup, no acks."""
        self._supervising.clear()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def stop(self) -> None:
        self._supervising.clear()
        if self._supervisor is not None:
            self._supervisor.join(timeout=40)
        if self.process is None:
            return
        stop_process_group(self.process)
        self.log.close()


@contextmanager
def pushpin_layout(directory: Path):
    """Pushpin in front of two web processes (uvicorn, GRIP on): ``(pushpin, [web1, web2])``."""
    if not is_postgres():
        service_missing("the Pushpin layout's web processes share the test database: PostgreSQL")
    webs = [UvicornProcess(subprocess_env(), log_path=directory / f"web{n}.log") for n in (1, 2)]
    pushpin = PushpinServer(directory, [web.url.removeprefix("http://") for web in webs])
    for web in webs:
        web.env["GRIP_URL"] = pushpin.grip_url
    try:
        for web in webs:
            web.start()
        pushpin.start()
        yield pushpin, webs
    finally:
        pushpin.stop()
        for web in webs:
            if web.process is not None:
                web.stop()


@contextmanager
def celery_broker(url: str):
    """Make this process's Celery app publish to ``url`` (not inline) for a while."""
    from resolutionflow.celery import app

    saved = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = url, False
    _forget_connections(app)
    try:
        yield app
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _forget_connections(app)


def _forget_connections(app) -> None:
    app._pool = None
    app.amqp._producer_pool = None


class Rig:
    """The services of one test, stopped in reverse order afterwards."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.redis = RedisServer(directory).start()
        self.smtp = SmtpSink()
        self.workers: list[CeleryWorker] = []
        self.webs: list[UvicornProcess] = []

    def env(self) -> dict[str, str]:
        return subprocess_env(
            REDIS_URL=self.redis.url, EMAIL_URL=self.smtp.url, SITE_URL="https://rf.example"
        )

    def start_worker(self, *, supervised: bool = False, **options) -> CeleryWorker:
        name = f"w{len(self.workers)}"
        worker = CeleryWorker(self.env(), self.directory, name=name, **options).start()
        self.workers.append(worker)
        return worker.supervise() if supervised else worker

    def start_web(self) -> UvicornProcess:
        web = UvicornProcess(self.env(), log_path=self.directory / f"web{len(self.webs)}.log")
        self.webs.append(web.start())
        return web

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for web in self.webs:
            web.stop()
        self.smtp.stop()
        self.redis.stop()

    def logs(self) -> str:
        """The end of every worker's and web process's log, each under its name."""
        processes = [*self.workers, *self.webs]
        return "\n".join(f"--- {p.log_path.name}\n{p.output()}" for p in processes)


CSRF = "b" * 32  # a well-formed CSRF secret, sent as cookie and header like a browser would


class Escalator:
    """tess, escalating over HTTP like the chat's Escalate form (JSON flavour)."""

    def __init__(self, web, tess) -> None:
        self.tess = tess
        self.client = httpx2.Client(
            base_url=web.url,
            cookies=session_cookie(tess) | {"csrftoken": CSRF},
            headers={"X-CSRFToken": CSRF, "Accept": "application/json"},
            timeout=10,
        )

    def escalate(self, problem: str) -> tuple[httpx2.Response, float]:
        from flowpilot.models import Session

        session = Session.objects.create(
            account=self.tess.account, owner=self.tess, problem=problem
        )
        started = time.monotonic()
        response = self.client.post(
            f"/flowpilot/sessions/{session.pk}/escalate",
            json={"reason": "Tried the usual; still broken", "urgency": "high"},
        )
        return response, time.monotonic() - started
