"""Browser harness: the real app under uvicorn on a free port, Debian's Chromium via Playwright.

pytest-django's live_server is WSGI and cannot stream server-sent events, so the app is
served by uvicorn in a background thread of the test process: it shares the test database
and the in-process event listeners. Browser tests use transaction=True so the server sees
their data.
"""

import os
import shutil

import pytest
from django.test import Client

from tests.asgi import AsgiServer
from tests.conftest import service_missing

CHROMIUM = os.environ.get("RF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker):
    """The app served over real HTTP for the whole session."""
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    with django_db_blocker.unblock():
        server = AsgiServer()
        server.start()
        yield server
        server.stop()


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # From here to the end of the run Playwright's sync API keeps an event loop running in
    # this thread, and Django refuses synchronous database calls under a running loop: the
    # tests' own (synchronous) ORM calls need the guard lifted. Browser tests run last
    # (tests/conftest.py), so no other test runs with it lifted.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as error:
        playwright.stop()
        service_missing(f"Chromium at {CHROMIUM} would not start: {error}")
    yield browser
    browser.close()
    playwright.stop()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page_for(browser, asgi_server, transactional_db):
    """page_for(user[, viewport=...]) → a Playwright page in its own context, signed in."""
    contexts = []

    def make(user=None, *, viewport=None):
        context = browser.new_context(
            base_url=asgi_server.url, viewport=viewport or {"width": 1360, "height": 900}
        )
        context.set_default_timeout(8000)
        if user is not None:
            client = Client()
            client.force_login(user)
            session_cookie = client.cookies["sessionid"]
            context.add_cookies(
                [{"name": "sessionid", "value": session_cookie.value, "url": asgi_server.url}]
            )
        contexts.append(context)
        page = context.new_page()
        page.rf_errors = []
        page.on("pageerror", lambda error: page.rf_errors.append(str(error)))
        page.on(
            "console",
            lambda msg: page.rf_errors.append(msg.text) if msg.type == "error" else None,
        )
        return page

    yield make
    for context in contexts:
        context.close()
    # The server may still be answering the closed pages (a card refetch, a presence
    # beat): the database is flushed after this, and must not be under their writes.
    asgi_server.wait_idle()
