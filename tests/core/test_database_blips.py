"""A database blip answers 503 with Retry-After, never 500, and never hangs a request.

Against a real uvicorn in production mode on PostgreSQL: backends terminated with
``pg_terminate_backend`` while technicians escalate and seniors claim (the pool must not
hand out the dead connections, and a request whose connection dies mid-query is an
outage, not a bug), then the database refusing every new connection (each request gives
up after the pool timeout with a 503; the plain escalate form comes back with its text).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from flowpilot.models import Session
from resolutionflow.demo import DEMO_PASSWORD
from tests.asgi import ROOT, UvicornProcess, subprocess_env, wait_until
from tests.core.test_disconnects import BehindProxy, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 16
POOL_TIMEOUT = 3
WEB_APPLICATION = "rf-blips-web"


@pytest.fixture
def production_web(postgres_only, personas, tmp_path):
    """uvicorn in production mode (DEBUG off: Django's handler500 answers errors)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from resolutionflow.models import User

    hasher = PBKDF2PasswordHasher()
    password = hasher.encode(DEMO_PASSWORD, hasher.salt(), iterations=1000)
    User.objects.filter(username__in=["tess", "sam", "sky"]).update(password=password)
    env = subprocess_env(
        DEBUG="0",
        SECRET_KEY=settings.SECRET_KEY,
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(tmp_path / "static"),
        DATABASE_POOL_SIZE=str(POOL_SIZE),
        DATABASE_POOL_TIMEOUT=str(POOL_TIMEOUT),
        LOG_LEVEL="WARNING",
    )
    # Named, so that the blips hit the web process only, never this test's own pool.
    env["DATABASE_URL"] = f"{env['DATABASE_URL']}?application_name={WEB_APPLICATION}"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    web = UvicornProcess(env, log_path=tmp_path / "web.log").start()
    yield web
    web.stop()


def terminate_web_backends() -> int:
    """pg_terminate_backend every connection of the web process; how many went."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [WEB_APPLICATION],
        )
        return cursor.fetchone()[0]


def set_allow_connections(allowed: bool) -> None:
    """ALTER DATABASE … ALLOW_CONNECTIONS, from the maintenance database (PostgreSQL refuses
    it from a connection to the database itself)."""
    import psycopg

    db = settings.DATABASES["default"]
    name = connection.ops.quote_name(db["NAME"])
    with psycopg.connect(
        dbname="postgres",
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        autocommit=True,
    ) as maintenance:
        maintenance.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {str(allowed).lower()}")


def api(browser: BehindProxy, method: str, path: str, **kwargs):
    headers = {"Accept": "application/json", "X-CSRFToken": browser.cookies["csrftoken"]}
    return browser.request(method, path, headers=headers, **kwargs)


class Load:
    """Technicians start sessions and escalate; seniors list the queue and claim."""

    def __init__(self, web, escalators: list[BehindProxy], claimers: list[BehindProxy]) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(self._escalate, browser))
            for browser in escalators
        ] + [
            threading.Thread(target=self._loop, args=(self._claim, browser)) for browser in claimers
        ]

    def _loop(self, step, browser) -> None:
        while not self.stop.is_set():
            try:
                step(browser)
            except Exception as error:  # a timeout or a reset is a failure too
                with self.lock:
                    self.errors.append(repr(error))

    def _record(self, response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.errors.append(f"{response.status_code}: {response.text[:300]}")
            if response.status_code == 503 and (
                response.headers.get("Retry-After") != "5"
                or response.json() != {"error": "unavailable"}
            ):
                self.errors.append(f"a bad 503: {response.headers} {response.text[:300]}")

    def _escalate(self, browser) -> None:
        started = api(browser, "POST", "/flowpilot/sessions/", json={"problem": "VPN drops"})
        self._record(started)
        if started.status_code != 201:
            return
        escalated = api(
            browser,
            "POST",
            f"/flowpilot/sessions/{started.json()['session']}/escalate",
            json={"reason": "Reinstalled the client, still drops", "urgency": "normal"},
        )
        self._record(escalated)

    def _claim(self, browser) -> None:
        queue = api(browser, "GET", "/escalations/")
        self._record(queue)
        if queue.status_code != 200:
            return
        for card in queue.json()["waiting"][:2]:
            self._record(api(browser, "POST", f"/handoffs/{card['id']}/claim"))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_terminated_backends_under_load_give_no_500(production_web):
    escalators = [sign_in(production_web.url, "tess") for _ in range(4)]
    claimers = [sign_in(production_web.url, name) for name in ("sam", "sky", "sam", "sky")]
    terminated = 0
    with Load(production_web, escalators, claimers) as load:
        wait_until(lambda: sum(load.statuses.values()) > 30, 30, "the load never got going")
        while terminated < 27:
            before = sum(load.statuses.values())
            terminated += terminate_web_backends()
            wait_until(
                lambda before=before: sum(load.statuses.values()) > before + 10,
                30,
                lambda: f"requests stopped after a termination: {load.statuses}",
            )
        settled = sum(load.statuses.values())
        wait_until(lambda: sum(load.statuses.values()) > settled + 20, 30, "no recovery")

    assert terminated >= 27
    assert not load.errors, load.errors[:3]
    assert load.statuses[500] == 0, load.statuses
    assert load.statuses[201] > 0 and load.statuses[200] > 0, load.statuses


def test_a_database_refusing_connections_answers_503_fast_and_keeps_the_form(production_web, tess):
    browser = sign_in(production_web.url, "tess")
    session = Session.objects.create(account=tess.account, owner=tess, problem="Printer jams")
    page = browser.request("GET", f"/flowpilot/sessions/{session.pk}/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    set_allow_connections(False)
    try:
        terminate_web_backends()
        started = time.monotonic()
        answer = api(browser, "GET", "/flowpilot/")
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text[:300]
        assert answer.json() == {"error": "unavailable"}
        assert answer.headers["Retry-After"] == "5"
        # The pool gives up after its timeout: seconds, never the 10 s hang of before.
        assert elapsed < POOL_TIMEOUT + 5, elapsed

        typed = "Swapped the toner & reseated the tray <twice>"
        form = browser.request(
            "POST",
            f"/flowpilot/sessions/{session.pk}/escalate",
            data={"reason": typed, "urgency": "high", "csrfmiddlewaretoken": token},
        )
        assert form.status_code == 503
        assert form.headers["Retry-After"] == "5"
        assert "Nothing was saved" in form.text
        assert "Swapped the toner &amp; reseated the tray &lt;twice&gt;" in form.text
        assert f'action="/flowpilot/sessions/{session.pk}/escalate"' in form.text
        assert 'name="csrfmiddlewaretoken"' in form.text
    finally:
        set_allow_connections(True)

    # Back: the pool reconnects by itself, and the form's text goes through when re-sent.
    wait_until(
        lambda: api(browser, "GET", "/flowpilot/").status_code == 200, 30, "no recovery", every=0.5
    )
    again = browser.request(
        "POST",
        f"/flowpilot/sessions/{session.pk}/escalate",
        data={"reason": "Swapped the toner", "urgency": "high", "csrfmiddlewaretoken": token},
    )
    assert again.status_code in (200, 303), again.text[:300]
    assert Session.objects.get(pk=session.pk).status == "escalated"


def test_connections_killed_while_idle_in_the_pool_are_never_handed_out(production_web, sam):
    seniors = [sign_in(production_web.url, name) for name in ("sam", "sky") * 4]

    def burst() -> list[int]:
        codes: list[int] = []
        threads = [
            threading.Thread(
                target=lambda b=browser: codes.append(api(b, "GET", "/escalations/").status_code)
            )
            for browser in seniors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return codes

    assert burst() == [200] * len(seniors)  # the pool now holds several connections
    assert terminate_web_backends() >= 2  # every one of them dies while idle

    # Each is checked before use and replaced: not one request sees a dead connection.
    assert burst() + burst() == [200] * (2 * len(seniors))
