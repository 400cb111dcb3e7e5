"""What the benches share: their own PostgreSQL database, a uvicorn server, percentiles.

Each bench builds its own database on the server of DATABASE_URL (never the one it names),
serves the app with uvicorn in a subprocess on a free port, and reports percentiles with
the machine and its load, so that a figure copied into docs/PERFORMANCE.md says where it
was measured.
"""

from __future__ import annotations

import http.client
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def postgres_url(name: str) -> str:
    """DATABASE_URL's server with the bench's own database ``name``."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL (this bench is about PostgreSQL).")
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if it does not exist yet."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_uvicorn(
    env: dict[str, str], port: int, *, workers: int = 1, ready_within: float = 30
) -> subprocess.Popen:
    """uvicorn serving the app in its own process group; returns once sign-in answers 200."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "resolutionflow.asgi:application",
            "--no-server-header",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "1",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/accounts/login/")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    sys.exit(f"uvicorn did not answer within {ready_within:g} s")


def stop_server(server: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session``: its whole process group."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def machine() -> str:
    """CPUs, platform, Python and the load average: the line printed above a bench's table."""
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}, Python "
        f"{platform.python_version()}; load average {load_average()}"
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"
