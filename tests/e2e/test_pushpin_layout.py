"""The production layout in Chromium: Pushpin in front of two web processes (GRIP).

Debian's pushpin with its own configuration (scripts/pushpin_config.py) routes pages, writes
and bell streams to web 1 and the queue streams (and the handoff pages) to web 2, two
separate uvicorn processes sharing nothing but the test database and Pushpin. Both browsers
talk to Pushpin only: tess's escalation is committed by web 1, which publishes its events to
Pushpin's control port after the response; sam's queue stream was answered by web 2 (his
bell's by web 1) with hold instructions, and Pushpin holds and feeds both.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from escalations.models import Handoff
from tests.escalations.conftest import make_session
from tests.services import pushpin_layout

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


@pytest.fixture(scope="module")
def layout(django_db_setup, django_db_blocker, tmp_path_factory):
    directory = tmp_path_factory.mktemp("pushpin-browser")
    with django_db_blocker.unblock(), pushpin_layout(directory) as (pushpin, webs):
        yield pushpin, webs


@pytest.fixture
def page_through_pushpin(browser, layout, postgres_only, transactional_db):
    pushpin, _ = layout
    contexts = []

    def make(user):
        context = browser.new_context(base_url=pushpin.url, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(8000)
        client = Client()
        client.force_login(user)
        cookie = client.cookies["sessionid"].value
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": pushpin.url}])
        contexts.append(context)
        page = context.new_page()
        page.rf_errors = []
        page.on("pageerror", lambda error: page.rf_errors.append(str(error)))
        page.on("console", lambda m: page.rf_errors.append(m.text) if m.type == "error" else None)
        return page

    yield make
    for context in contexts:
        context.close()


def test_an_escalation_on_web_1_reaches_sams_queue_held_by_pushpin(
    layout, page_through_pushpin, tess, sam
):
    pushpin, (web1, web2) = layout
    session = make_session(tess, problem="Badge readers offline on floor 3")

    sams = page_through_pushpin(sam)
    sams.goto("/escalations/")
    expect(sams.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(sams.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")

    tess_page = page_through_pushpin(tess)
    tess_page.goto(f"/flowpilot/sessions/{session.pk}/")
    tess_page.locator(".fp-escalate summary").click()
    tess_page.fill("#escalate-reason", "Power-cycled the controller, still offline")
    tess_page.select_option("#escalate-urgency", "high")
    tess_page.locator("#escalate-form button[type=submit]").click()
    expect(tess_page.locator("#toasts")).to_contain_text("Escalated", timeout=5000)
    handoff = Handoff.objects.get(session=session)

    card = sams.locator(f"#handoff-{handoff.pk}")
    expect(card).to_be_visible(timeout=3000)
    expect(card).to_contain_text("Badge readers offline on floor 3")
    expect(card).to_contain_text("Tess Tran")
    expect(sams.locator("#bell-button .bell-count")).to_have_text("1", timeout=3000)
    assert sams.rf_errors == []
    assert tess_page.rf_errors == []

    # Who did what, from Pushpin's own logs: the escalation went to web 1, the streams to
    # web 2, and the events reached sam's streams through a publish to Pushpin.
    proxied = pushpin.read_log("pushpin-proxy")
    escalated = rf"POST \S+/flowpilot/sessions/{session.pk}/escalate -> \S+:{web1.port}\b"
    assert re.search(escalated, proxied), proxied
    assert re.search(rf"GET \S+/escalations/events/\S* -> \S+:{web2.port}\b", proxied), proxied
    published = pushpin.read_log("pushpin-handler")
    # sam's queue stream and his bell (which carries the queue too), and his bell's own channel.
    assert f"publish channel=events-queue-{sam.account_id} receivers=2" in published, published
    assert f"publish channel=events-user-{sam.pk} receivers=1" in published, published
