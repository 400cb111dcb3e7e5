"""The live queue in Chromium: escalations slide in, claims move cards aside, never one's own."""

import pytest
from playwright.sync_api import expect

from escalations import actions
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.browser


def open_queue(page_for, user):
    page = page_for(user)
    page.goto("/escalations/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    return page


def test_a_new_escalation_appears_in_an_open_queue_within_two_seconds(page_for, tess, sam):
    page = open_queue(page_for, sam)
    expect(page.locator("#queue-empty")).to_be_visible()

    handoff = escalate(make_session(tess), urgency="high", reason="Whole office offline")

    card = page.locator(f"#handoff-{handoff.pk}")
    expect(card).to_be_visible(timeout=2000)
    expect(card).to_contain_text("Whole office offline")
    expect(card).to_contain_text("Tess Tran")
    expect(page.locator("#waiting-count")).to_have_text("1")
    expect(page.locator("#queue-empty")).to_be_hidden()
    # The card that slid in works like the others: its preview opens inline.
    card.locator(".preview-toggle").click()
    expect(card.locator(".handoff-card-preview")).to_contain_text("What was tried")
    assert page.rf_errors == []


def test_high_urgency_slides_in_above_normal(page_for, tess, sam):
    normal = escalate(make_session(tess), urgency="normal")
    page = open_queue(page_for, sam)
    high = escalate(make_session(tess), urgency="high")
    expect(page.locator(".handoff-card")).to_have_count(2, timeout=2000)
    ids = page.locator(".handoff-card").evaluate_all("cards => cards.map(c => c.dataset.handoff)")
    assert ids == [str(high.pk), str(normal.pk)]


def test_an_engineers_own_escalation_reaches_the_others_but_not_them(page_for, sam, sky):
    sams_page = open_queue(page_for, sam)
    skys_page = open_queue(page_for, sky)

    own = escalate(make_session(sam), reason="Need another pair of eyes")

    expect(skys_page.locator(f"#handoff-{own.pk}")).to_be_visible(timeout=2000)
    sams_page.wait_for_timeout(700)  # the event reached sam too, and was ignored
    expect(sams_page.locator(".handoff-card")).to_have_count(0)


def test_a_claim_by_someone_else_moves_the_card_to_recently_claimed(page_for, tess, sam, sky):
    handoff = escalate(make_session(tess, problem="Scanner to email stopped working"))
    page = open_queue(page_for, sky)
    card = page.locator(f"#handoff-{handoff.pk}")
    expect(card).to_be_visible()

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    expect(card).to_contain_text("Picked up by Sam Okafor", timeout=2000)
    expect(card).to_be_hidden(timeout=5000)
    recent = page.locator("#recent-list")
    expect(recent).to_contain_text("Scanner to email stopped working")
    expect(recent).to_contain_text("Sam Okafor")
    expect(page.locator("#waiting-count")).to_have_text("0")
    assert page.rf_errors == []
