"""Claiming in Chromium: two engineers click Claim on the same card at the same moment."""

import re

import pytest
from playwright.sync_api import expect

from escalations.models import Handoff, HandoffEvent
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.browser


def open_queue(page_for, user):
    page = page_for(user)
    page.goto("/escalations/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    return page


def test_sam_and_sky_claim_at_once_one_lands_on_the_handoff_the_other_is_told(
    page_for, tess, sam, sky
):
    handoff = escalate(make_session(tess), urgency="high", reason="Floor blocked")
    pages = {"sam": open_queue(page_for, sam), "sky": open_queue(page_for, sky)}
    button = f"#handoff-{handoff.pk} .claim-button"
    for page in pages.values():
        expect(page.locator(button)).to_be_enabled()

    # Both pages click at the same wall-clock moment (one browser, one clock).
    at = pages["sam"].evaluate("Date.now()") + 500
    for page in pages.values():
        page.evaluate(
            "([selector, at]) => setTimeout("
            "() => document.querySelector(selector).click(), Math.max(0, at - Date.now()))",
            [button, at],
        )

    handoff_url = re.compile(rf"/handoffs/{handoff.pk}/$")
    for _ in range(100):
        handoff.refresh_from_db()
        landed = [name for name, page in pages.items() if handoff_url.search(page.url)]
        if handoff.claimed_by_id and landed:
            break
        pages["sam"].wait_for_timeout(50)
    winner = handoff.claimed_by
    loser = "sky" if winner.username == "sam" else "sam"
    expect(pages[winner.username]).to_have_url(handoff_url)
    expect(pages[winner.username].locator("#claim-box")).to_contain_text("You have it")

    loser_page = pages[loser]
    expect(loser_page.locator("#toasts")).to_contain_text(f"Already picked up by {winner.name}")
    expect(loser_page).to_have_url(re.compile(r"/escalations/$"))
    # The loser's claim reached the server and lost there: the race was real.
    assert HandoffEvent.objects.filter(
        handoff=handoff, kind="claim_lost", actor__username=loser
    ).exists()
    # Live, the card moves to "Recently claimed" on the loser's page.
    expect(loser_page.locator(f"#handoff-{handoff.pk}")).to_have_count(0, timeout=6000)
    expect(loser_page.locator("#recent-list")).to_contain_text(winner.name)
    assert loser_page.rf_errors == []


def test_a_lone_claimer_lands_on_the_handoff_screen_with_a_toast(page_for, tess, sam):
    handoff = escalate(make_session(tess))
    page = open_queue(page_for, sam)
    page.click(f"#handoff-{handoff.pk} .claim-button")
    expect(page).to_have_url(re.compile(rf"/handoffs/{handoff.pk}/$"))
    expect(page.locator("#toasts")).to_contain_text("It's yours.")
    assert Handoff.objects.get(pk=handoff.pk).claimed_by == sam
    assert page.rf_errors == []
