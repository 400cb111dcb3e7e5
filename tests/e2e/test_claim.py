"""Claiming from the queue in Chromium: two engineers take the same card at the same moment;
both ways to take over work from a card."""

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


def test_sam_and_sky_take_it_at_once_one_lands_in_the_chat_the_other_is_told(
    page_for, tess, sam, sky
):
    handoff = escalate(make_session(tess), urgency="high", reason="Floor blocked")
    pages = {"sam": open_queue(page_for, sam), "sky": open_queue(page_for, sky)}
    button = f"#handoff-{handoff.pk} .takeover-self"
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

    chat_url = re.compile(rf"/flowpilot/sessions/{handoff.session_id}/")
    handoff_url = re.compile(rf"/handoffs/{handoff.pk}/$")
    for _ in range(100):
        handoff.refresh_from_db()
        landed = [name for name, page in pages.items() if chat_url.search(page.url)]
        if handoff.claimed_by_id and landed:
            break
        pages["sam"].wait_for_timeout(50)
    winner = handoff.claimed_by
    loser = "sky" if winner.username == "sam" else "sam"
    # The winner works in the chat at once; the loser lands on the handoff, told who has it.
    expect(pages[winner.username]).to_have_url(chat_url)
    expect(pages[winner.username].locator("#toasts")).to_contain_text("It's yours.")

    loser_page = pages[loser]
    expect(loser_page.locator("#toasts")).to_contain_text(f"Already picked up by {winner.name}")
    expect(loser_page).to_have_url(handoff_url)
    expect(loser_page.locator("#claim-box")).to_contain_text(f"{winner.name} has it")
    # The loser's claim reached the server and lost there: the race was real.
    assert HandoffEvent.objects.filter(
        handoff=handoff, kind="claim_lost", actor__username=loser
    ).exists()
    assert loser_page.rf_errors == []


def test_ill_take_it_from_here_on_a_card_opens_the_chat_ready_to_type(page_for, tess, sam):
    handoff = escalate(make_session(tess))
    page = open_queue(page_for, sam)
    page.click(f"#handoff-{handoff.pk} .takeover-self")
    expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{handoff.session_id}/"))
    expect(page.locator("#toasts")).to_contain_text("It's yours.")
    assert Handoff.objects.get(pk=handoff.pk).claimed_by == sam
    assert page.rf_errors == []


def test_get_ai_analysis_on_a_card_claims_and_briefs_flowpilot(page_for, tess, sam):
    handoff = escalate(make_session(tess))
    page = open_queue(page_for, sam)
    page.click(f"#handoff-{handoff.pk} .takeover-ai")
    expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{handoff.session_id}/"))
    expect(page.locator("#toasts")).to_contain_text("FlowPilot was briefed")
    handoff.refresh_from_db()
    assert handoff.claimed_by == sam
    assert handoff.takeover_mode == "analysis"
    assert handoff.first_action_at is None  # the briefing is not the claimer's own work
    assert page.rf_errors == []
