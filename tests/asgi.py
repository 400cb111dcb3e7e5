"""The app over real HTTP for tests: uvicorn in a thread or in a subprocess, and an SSE reader.

pytest-django's live_server is WSGI and cannot stream server-sent events, so streams are
tested against uvicorn. ``AsgiServer`` runs in a daemon thread of the test process (it
shares the test database and the in-process event listeners: use transaction=True tests).
``UvicornProcess`` is a separate web process, configured by environment like production.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, message="condition not met", *, every=0.05) -> None:
    """Poll ``condition`` until it is true; after ``timeout`` seconds fail with ``message``
    (a string, or a callable giving one: say what was seen, not only what was expected)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(every)


def wait_for_port(port: int, *, timeout: float = 15.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class AsgiServer:
    """uvicorn serving resolutionflow.asgi in a daemon thread."""

    def __init__(self) -> None:
        import uvicorn

        from resolutionflow.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being served (a closed page's last requests may still
        be writing: flushing the database under them can deadlock). True if idle."""
        deadline = time.monotonic() + timeout
        while self.server.server_state.tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class UvicornProcess:
    """``uvicorn resolutionflow.asgi:application`` as its own process, with its own env."""

    def __init__(self, env: dict[str, str], *, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> UvicornProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "uvicorn", "resolutionflow.asgi:application"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        command += ["--timeout-graceful-shutdown", "1", "--lifespan", "off"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def output(self) -> str:
        """The end of this process's log (its warnings, and the relay's resyncs)."""
        return self.log_path.read_text(errors="replace")[-6000:]

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])


def session_cookie(user) -> dict[str, str]:
    """Cookies of a signed-in browser for ``user`` (a real session in the test database)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def json(self):
        return json.loads(self.data) if self.data else None


class SseStream:
    """Reads one event stream in a background thread; the test waits for events from it."""

    def __init__(self, base_url: str, path: str, *, cookies=None, headers=None) -> None:
        self.events: queue.Queue[SseEvent] = queue.Queue()
        self.seen: list[SseEvent] = []
        self.status: int | None = None
        self.body = b""
        self.last_id: str | None = None
        self._opened = threading.Event()
        self._response = None
        self._closing = False
        self._client = httpx2.Client(
            base_url=base_url,
            cookies=cookies or {},
            timeout=httpx2.Timeout(10.0, read=None),
        )
        self._thread = threading.Thread(target=self._read, args=(path, headers or {}), daemon=True)
        self._thread.start()

    def _read(self, path: str, headers: dict) -> None:
        try:
            with self._client.stream("GET", path, headers=headers) as response:
                self._response = response
                self.status = response.status_code
                if response.status_code != 200:
                    self.body = response.read()
                    self._opened.set()
                    return
                self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "event" in fields or "data" in fields:
                            event = SseEvent(
                                fields.get("event", "message"),
                                fields.get("data", ""),
                                fields.get("id"),
                            )
                            if event.id:
                                self.last_id = event.id
                            self.events.put(event)
                        fields = {}
                    elif line.startswith(":"):
                        continue
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        fields[name] = fields[name] + "\n" + value if name in fields else value
        except Exception as error:  # closed by us, or the server went away
            if not self._closing:
                self.events.put(SseEvent("connection-lost", str(error), None))
        finally:
            self._opened.set()

    def wait_status(self, timeout: float = 10.0) -> int | None:
        self._opened.wait(timeout)
        return self.status

    def next(self, *, timeout: float = 5.0, skip=("keep-alive",)) -> SseEvent:
        """The next event not of a type in ``skip``; raises TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event within {timeout} s (seen: {self.seen})")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event.event not in skip:
                return event

    def wait_open(self, timeout: float = 10.0) -> SseStream:
        assert self.wait_status(timeout) == 200, (self.status, self.body)
        event = self.next(timeout=timeout)
        assert event.event == "stream-open", event
        return self

    def wait_for(self, event_type: str, *, timeout: float = 5.0, where=None) -> SseEvent:
        """Skip events until one of ``event_type`` (matching ``where(data)``) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(timeout=max(0.01, deadline - time.monotonic()))
            if event.event == event_type and (where is None or where(event.json)):
                return event

    def drain(self, *, quiet: float = 0.5) -> list[SseEvent]:
        """Every event that arrives until the stream is quiet for ``quiet`` seconds."""
        got = []
        while True:
            try:
                got.append(self.next(timeout=quiet))
            except TimeoutError:
                return got

    def close(self) -> None:
        self._closing = True
        if self._response is not None:
            # Closing the response from this thread does not interrupt the reader's blocking
            # read; shutting the socket down does.
            stream = self._response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                self._response.close()
        with contextlib.suppress(Exception):
            self._client.close()
        self._thread.join(timeout=5)


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process of the app: the test database, nothing inherited
    that could point it elsewhere."""
    from django.conf import settings

    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    for key in ("REDIS_URL", "EMAIL_URL", "DATABASE_URL", "RF_REQUIRE_SERVICES"):
        env.pop(key, None)
    env.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="resolutionflow.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        ALLOWED_HOSTS="*",
        DATABASE_URL=test_database_url(),
        LOG_LEVEL="INFO",
    )
    env.update(overrides)
    assert settings.DATABASES["default"]["NAME"]
    return env


def test_database_url() -> str:
    """A URL for the database the tests run on (its test name, set by pytest-django)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("child processes share the test database only on PostgreSQL")
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


test_database_url.__test__ = False  # not a test, whatever its name says
