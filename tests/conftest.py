"""Shared fixtures: the demo personas, service checks and the RF_REQUIRE_SERVICES rule."""

import os
import uuid

import pytest
from django.conf import settings

from resolutionflow.demo import DEMO_PASSWORD  # noqa: F401 - re-exported for tests

# The in-process ASGI server of the browser and stream tests must not start the embedded
# beat (resolutionflow/embedded_beat.py): tests run the drain and re-alerts on their clock.
os.environ.setdefault("RF_EMBEDDED_BEAT", "0")

REQUIRE_SERVICES = os.environ.get("RF_REQUIRE_SERVICES", "").strip().lower() in {
    "1",
    "true",
    "yes",
    "on",
}


def service_missing(reason: str) -> None:
    """Skip for a missing service or browser; fail instead when RF_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(f"RF_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under RF_REQUIRE_SERVICES=1 no test may skip: a skip is reported as a failure."""
    report = yield
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under RF_REQUIRE_SERVICES=1: {reason}"
    return report


def drives_a_browser(item) -> bool:
    """A test that uses Playwright's Chromium (through the ``browser`` fixture)."""
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items) -> None:
    """Browser tests run last (in their collected order).

    Playwright's sync API keeps an event loop running in the test thread from the first
    browser test to the end of the run, and Django refuses synchronous database calls
    under a running loop. Only browser tests lift that guard (tests/e2e/conftest.py);
    every other test keeps it, so a sync database call from async code still fails where
    it would in production. Under pytest-xdist (``make test``) files are handed out whole,
    each where its first test stands in this order (``--dist loadfile
    --no-loadscope-reorder``). So every test of a file with a browser test goes last: a
    file's test without a browser, sorted earlier, would take the file's browser tests
    with it, and the worker's later tests would run under Playwright's loop.
    """
    with_a_browser = {item.path for item in items if drives_a_browser(item)}
    items.sort(key=lambda item: (item.path in with_a_browser, drives_a_browser(item)))


@pytest.fixture(autouse=True)
def async_safety_outside_browser_tests(request, monkeypatch):
    """Django's async-safety guard stands for every test that drives no browser, whatever
    the environment says; browser tests lift it (tests/e2e/conftest.py ``browser``)."""
    if not drives_a_browser(request.node):
        monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)


@pytest.fixture(autouse=True)
def fresh_caches(settings):
    """Each test starts with empty caches, in memory (tests of the Redis-backed counters
    build their own): a user id reused by the next test must not inherit its rate-limit
    hits, nor an account id the analytics' cached weeks."""
    import uuid

    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"default-{uuid.uuid4().hex}",
        },
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"ratelimit-{uuid.uuid4().hex}",
        },
    }


@pytest.fixture(autouse=True)
def fresh_presence(monkeypatch):
    """Each test starts with nobody viewing anything (escalations/presence.py): a memory
    store of its own, or a Redis key prefix of its own, removed afterwards. What an earlier
    test or test run left in Redis must not expire into this test's outbox."""
    from escalations import presence

    shared = presence.store()
    if isinstance(shared, presence.RedisStore):
        own = presence.RedisStore(settings.EVENTSTREAM_REDIS)
        own.prefix = f"{shared.prefix}test-{uuid.uuid4().hex}:"
    else:
        own = presence.MemoryStore()
    monkeypatch.setattr(presence, "store", lambda: own)
    yield own
    own.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The demo password is hashed for every persona of every test: keep it cheap."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@pytest.fixture
def postgres_only():
    """For tests that need real PostgreSQL semantics (row locks, concurrent writers)."""
    if not is_postgres():
        service_missing("this test needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    """The configured Redis, or a skip (a failure under RF_REQUIRE_SERVICES=1)."""
    url = settings.REDIS_URL
    if not url:
        service_missing("this test needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        service_missing(f"Redis at {url} does not answer: {error}")
    return url


@pytest.fixture
def personas(db) -> dict:
    """The demo people of Acme IT and Globex, by username."""
    from resolutionflow.management.commands.seed_demo import seed_people

    return seed_people()


@pytest.fixture
def tess(personas):
    return personas["tess"]


@pytest.fixture
def sam(personas):
    return personas["sam"]


@pytest.fixture
def sky(personas):
    return personas["sky"]


@pytest.fixture
def ada(personas):
    return personas["ada"]


@pytest.fixture
def gil(personas):
    return personas["gil"]


@pytest.fixture
def gwen(personas):
    return personas["gwen"]


@pytest.fixture
def client_for(client):
    """client_for(user) → a test client signed in as that user (one per call)."""
    from django.test import Client

    def make(user) -> Client:
        signed_in = Client()
        signed_in.force_login(user)
        return signed_in

    return make


def api_body(body: dict) -> dict:
    """An API answer without the human text of the one error shape (docs/API.md): what a
    program reads, ``error`` and its facts or the field ``errors``, compared exactly."""
    facts = {key: value for key, value in body.items() if key != "message"}
    if facts.get("error") == "invalid":
        del facts["error"]
    return facts
