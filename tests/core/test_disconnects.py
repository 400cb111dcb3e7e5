"""Clients that hang up early never take the database pool with them.

An anonymous client could take the app down: open a TCP connection, send a request with a
made-up session cookie, close 0–2 ms later, repeat. Each cut-off request could leave its
pooled database connection held by a finished thread, and once the pool was empty every
request (sign-in included) answered 500 until a restart. These tests drive that pattern
with raw sockets against a real uvicorn in production mode on PostgreSQL, with a small pool
so that a handful of lost connections would already show, and then sign in.
"""

from __future__ import annotations

import random
import re
import socket
import string
import struct
import subprocess
import sys
import threading
import time

import httpx2
import pytest
from django.conf import settings

from resolutionflow.demo import DEMO_PASSWORD
from tests.asgi import ROOT, UvicornProcess, session_cookie, subprocess_env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 4


@pytest.fixture
def production_web(postgres_only, personas, tmp_path):
    """uvicorn in production mode (DEBUG off, collected static files) with a 4-connection pool."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from resolutionflow.models import User

    # The web process knows only production's hashers, not the tests' fast MD5.
    hasher = PBKDF2PasswordHasher()
    password = hasher.encode(DEMO_PASSWORD, hasher.salt(), iterations=1000)
    User.objects.filter(username__in=["tess", "sky"]).update(password=password)
    env = subprocess_env(
        DEBUG="0",
        SECRET_KEY=settings.SECRET_KEY,  # the sessions the tests make must be valid there
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(tmp_path / "static"),
        DATABASE_POOL_SIZE=str(POOL_SIZE),
        DATABASE_POOL_TIMEOUT="3",
        LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    web = UvicornProcess(env, log_path=tmp_path / "web.log").start()
    yield web
    web.stop()


def cut_off_request(port: int, path: str, *, cookie: str, reset: bool, delay: float) -> None:
    """Send one GET and hang up ``delay`` seconds later (with a TCP reset when ``reset``)."""
    sock = socket.create_connection(("127.0.0.1", port))
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={cookie}\r\n\r\n"
    sock.sendall(request.encode())
    time.sleep(delay)
    sock.close()


def hammer(port: int, path: str, *, rounds: int, cookie: str | None = None) -> None:
    """``rounds`` bursts of five concurrent cut-off requests, half of them reset."""
    rng = random.Random(7)
    for round_number in range(rounds):
        burst = [
            threading.Thread(
                target=cut_off_request,
                args=(port, path),
                kwargs={
                    "cookie": cookie or "".join(rng.choices(string.ascii_lowercase, k=32)),
                    "reset": round_number % 2 == 0,
                    "delay": rng.random() * 0.003,
                },
            )
            for _ in range(5)
        ]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join()


class BehindProxy:
    """A browser behind the TLS proxy production runs behind: cookies are Secure, so they are
    carried by hand over the test's plain HTTP, and the proxy's X-Forwarded-Proto is sent."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, headers=None, **kwargs) -> httpx2.Response:
        origin = self.base_url.replace("http://", "https://")
        headers = {"X-Forwarded-Proto": "https", "Referer": f"{origin}/accounts/login/"} | (
            headers or {}
        )
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = httpx2.request(
            method, self.base_url + path, headers=headers, timeout=10, **kwargs
        )
        self.cookies.update(response.cookies)
        return response


def sign_in(base_url: str, username: str) -> BehindProxy:
    """Sign in through the real form (every step needs the database)."""
    browser = BehindProxy(base_url)
    page = browser.request("GET", "/accounts/login/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = browser.request(
        "POST",
        "/accounts/login/",
        data={"username": username, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 302, answer.text[:500]
    return browser


def assert_pool_serves_every_connection(base_url: str, username: str) -> None:
    """Sign in, then keep POOL_SIZE × 3 requests that need the database going at once."""
    browser = sign_in(base_url, username)
    home = browser.request("GET", "/flowpilot/")
    assert home.status_code == 200, home.text[:500]
    results: list[int] = []

    def fetch() -> None:
        results.append(browser.request("GET", "/flowpilot/").status_code)

    threads = [threading.Thread(target=fetch) for _ in range(POOL_SIZE * 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * (POOL_SIZE * 3)


def test_anonymous_cut_off_requests_leave_the_pool_whole(production_web):
    hammer(production_web.port, "/flowpilot/", rounds=80)

    assert_pool_serves_every_connection(production_web.url, "tess")
    assert "couldn't get a connection" not in production_web.log_path.read_text()


def test_signed_in_cut_off_requests_leave_the_pool_whole(production_web, sam):
    cookie = session_cookie(sam)["sessionid"]
    hammer(production_web.port, "/escalations/", rounds=40, cookie=cookie)

    assert_pool_serves_every_connection(production_web.url, "sky")


def test_fifty_streams_dropped_at_once_leave_the_pool_whole(production_web, sam):
    cookie = session_cookie(sam)["sessionid"]
    streams = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", production_web.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(
            b"GET /escalations/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Accept: text/event-stream\r\nCookie: sessionid=" + cookie.encode() + b"\r\n\r\n"
        )
        streams.append(sock)
    for sock in streams:  # every stream answered and is open
        sock.settimeout(10)
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    for sock in streams:
        sock.close()  # a reset, not a goodbye

    assert_pool_serves_every_connection(production_web.url, "sky")
