"""The live bell in Chromium: tess escalates in her browser, sam's open queue and bell
light up within two seconds, and the bell item opens the handoff."""

import re

import pytest
from playwright.sync_api import expect

from escalations import actions
from escalations.models import Handoff
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.browser


def bell_is_live(page) -> None:
    expect(page.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")


def test_an_escalation_rings_sams_bell_and_the_item_opens_the_handoff(page_for, tess, sam):
    session = make_session(tess, problem="Whole office printer queue is stuck")
    sams = page_for(sam)
    sams.goto("/escalations/")
    expect(sams.locator("#live-status")).to_have_attribute("data-state", "live")
    bell_is_live(sams)
    expect(sams.locator("#bell-button .bell-count")).to_have_count(0)

    # tess, in her own browser, escalates from the chat.
    tess_page = page_for(tess)
    tess_page.goto(f"/flowpilot/sessions/{session.pk}/")
    tess_page.locator(".fp-escalate summary").click()
    tess_page.fill("#escalate-reason", "Spooler restarted twice, jobs still stuck")
    tess_page.select_option("#escalate-urgency", "high")
    tess_page.locator("#escalate-form button[type=submit]").click()
    expect(tess_page.locator("#toasts")).to_contain_text("Escalated", timeout=5000)
    handoff = Handoff.objects.get(session=session)

    # sam: the card and the bell, live, within two seconds.
    expect(sams.locator(f"#handoff-{handoff.pk}")).to_be_visible(timeout=2000)
    expect(sams.locator("#bell-button .bell-count")).to_have_text("1", timeout=2000)

    sams.locator("#bell-button").click()
    item = sams.locator("#bell-menu .bell-item").first
    expect(item).to_contain_text("Tess Tran escalated: Whole office printer queue is stuck")
    item.click()

    expect(sams).to_have_url(re.compile(rf"/handoffs/{handoff.pk}/$"))
    expect(sams.locator("main")).to_contain_text("Spooler restarted twice, jobs still stuck")
    # Opened means read: the bell on the handoff page has nothing unread.
    bell_is_live(sams)
    expect(sams.locator("#bell-button")).to_be_visible()
    expect(sams.locator("#bell-button .bell-count")).to_have_count(0)
    assert sams.rf_errors == []
    assert tess_page.rf_errors == []


def test_tess_hears_that_her_escalation_was_picked_up(page_for, tess, sam):
    handoff = escalate(make_session(tess, problem="VPN drops every hour"))
    page = page_for(tess)
    page.goto("/flowpilot/")
    bell_is_live(page)

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    expect(page.locator("#bell-button .bell-count")).to_have_text("1", timeout=2000)
    expect(page.locator("#toasts")).to_contain_text("Sam Okafor picked up your escalation")
    page.locator("#bell-button").click()
    expect(page.locator("#bell-menu")).to_be_visible()
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator("#bell-button .bell-count")).to_have_count(0)
    # The menu stays open across the refresh, and Escape closes it.
    expect(page.locator("#bell-menu")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#bell-menu")).to_be_hidden()

    page.locator("#bell-button").click()
    page.locator("#bell-menu .bell-item").first.click()
    expect(page).to_have_url(re.compile(rf"/handoffs/{handoff.pk}/$"))
    assert page.rf_errors == []


def test_a_claim_elsewhere_answers_skys_bell_live(page_for, tess, sam, sky):
    handoff = escalate(make_session(tess, problem="Outlook asks for a password all day"))
    skys = page_for(sky)
    skys.goto("/flowpilot/")  # any page: the bell is on every one
    bell_is_live(skys)
    expect(skys.locator("#bell-button .bell-count")).to_have_text("1")

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    expect(skys.locator("#bell-button .bell-count")).to_have_count(0, timeout=2000)
    skys.locator("#bell-button").click()
    expect(skys.locator("#bell-menu .bell-outcome")).to_have_text("Sam Okafor has it")
    assert skys.rf_errors == []
