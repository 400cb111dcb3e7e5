"""Rate limits in Chromium: past the limit the page says so and keeps what was typed."""

import pytest
from playwright.sync_api import expect

from flowpilot.models import Message
from resolutionflow.demo import DEMO_PASSWORD
from resolutionflow.ratelimit import Rate
from tests.escalations.conftest import make_session

pytestmark = pytest.mark.browser


@pytest.fixture
def one_of_each(settings):
    settings.RF_RATE_LIMITS = {
        "sessions": Rate(1, 3600),
        "messages": Rate(1, 60),
        "escalations": Rate(1, 3600),
    }


def test_a_message_past_the_limit_stays_in_the_composer_with_a_toast(page_for, tess, one_of_each):
    session = make_session(tess)
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")
    box = page.locator("#composer-body")
    box.fill("The printer shows error 0x00000709")
    page.locator("#composer button[type=submit]").click()
    expect(page.locator("#chat-log")).to_contain_text("error 0x00000709")
    expect(box).to_have_value("")

    box.fill("Second message, one too many")
    page.locator("#composer button[type=submit]").click()
    expect(page.locator("#toasts")).to_contain_text("Too many messages")
    expect(box).to_have_value("Second message, one too many")
    assert not Message.objects.filter(body="Second message, one too many").exists()
    assert page.rf_errors == [] or all("429" in error for error in page.rf_errors)


def test_an_escalation_past_the_limit_keeps_the_reason(page_for, tess, one_of_each):
    first, second = make_session(tess), make_session(tess)
    page = page_for(tess)
    for session, reason in [(first, "First reason"), (second, "Second reason, kept")]:
        page.goto(f"/flowpilot/sessions/{session.pk}/")
        page.locator(".fp-escalate summary").click()
        page.fill("#escalate-reason", reason)
        page.locator("#escalate-form button[type=submit]").click()
        if session is first:
            expect(page.locator("#toasts")).to_contain_text("Escalated")
    expect(page.locator("#toasts")).to_contain_text("Too many escalations")
    expect(page.locator("#escalate-reason")).to_have_value("Second reason, kept")


def test_sign_in_lockout_shows_the_wait_and_keeps_the_name(
    browser, asgi_server, personas, settings
):
    settings.RF_LOGIN_FREE_FAILURES_PER_NAME = 2
    context = browser.new_context(base_url=asgi_server.url)
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        for _ in range(2):
            page.fill("#id_username", "sam")
            page.fill("#id_password", "not-his-password")
            page.locator("button[type=submit]").click()
        expect(page.locator(".alert-error")).to_contain_text("Too many failed sign-ins")
        expect(page.locator(".alert-error")).to_contain_text("Wait 30 seconds")
        expect(page.locator("#id_username")).to_have_value("sam")
        expect(page.locator("#id_password")).to_have_value("")
        page.fill("#id_password", DEMO_PASSWORD)
        page.locator("button[type=submit]").click()
        expect(page.locator(".alert-error")).to_contain_text("Too many failed sign-ins")
        assert "/accounts/login/" in page.url
    finally:
        context.close()
