"""The handoff screen reads in seconds: what a senior needs is in the first viewport (issue 17).

Asserted by element boxes at a 1366×768 laptop, a 1920×1080 screen and a 390×844 phone.
Screenshots of each land in test-results/screenshots/ (docs/screenshots/ holds chosen ones).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from escalations import actions as handoffs
from escalations.actions import store_assessment
from flowpilot import actions as flowpilot

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"

VIEWPORTS = [
    ("laptop", {"width": 1366, "height": 768}),
    ("wide", {"width": 1920, "height": 1080}),
    ("phone", {"width": 390, "height": 844}),
]


@pytest.fixture
def handoff(tess):
    """A DNS session as Tess escalated it: two checks, one whose outcome tells."""
    session = flowpilot.start_session(
        user=tess,
        problem="Leeds office cannot resolve intranet.corp.local or the file server by name",
        customer="Leeds office",
        device="WS-0311 (Windows 11)",
    )
    flowpilot.add_task(session=session, user=tess, title="Flush the DNS cache")
    flowpilot.add_task(
        session=session, user=tess, title="Check the DNS server service and forwarders"
    )
    flush, server = session.tasks.order_by("position")
    flowpilot.update_task(task=flush, user=tess, status="failed", outcome="No change")
    flowpilot.update_task(
        task=server, user=tess, status="done", outcome="DNS Server service is stopped on DC01"
    )
    return handoffs.escalate(
        session=session,
        user=tess,
        reason="Whole office blocked; I can't restart it",
        urgency="high",
    ).handoff


def box_of(page, selector: str) -> dict:
    locator = page.locator(selector)
    expect(locator).to_be_visible()
    return locator.bounding_box()


def assert_in_first_viewport(box: dict, viewport: dict, what: str) -> None:
    bottom = box["y"] + box["height"]
    assert box["y"] >= 0 and bottom <= viewport["height"], (
        f"{what} spans {box['y']:.0f}–{bottom:.0f} px, the first viewport ends at "
        f"{viewport['height']} px"
    )
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], f"{what} is cut"


def test_header_where_it_stands_and_both_take_over_buttons_are_above_the_fold(
    page_for, sam, handoff
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in VIEWPORTS:
        page = page_for(sam, viewport=viewport)
        page.goto(f"/handoffs/{handoff.pk}/")
        expect(page.locator("#where-it-stands")).to_contain_text("Most likely")
        page.evaluate("document.fonts.ready")
        page.screenshot(path=str(SCREENSHOTS / f"handoff-{name}.png"))

        assert page.evaluate("window.scrollY") == 0
        header = box_of(page, "#handoff-header")
        stands = box_of(page, "#where-it-stands")
        take = box_of(page, "#claim-box button.takeover-self")
        analysis = box_of(page, "#claim-box button.takeover-ai")
        for box, what in (
            (header, "the header"),
            (stands, "Where it stands"),
            (take, "I'll take it from here"),
            (analysis, "Get AI analysis"),
        ):
            assert_in_first_viewport(box, viewport, what)
        # Where it stands comes right under the header.
        assert 0 <= stands["y"] - (header["y"] + header["height"]) <= 24
        if name == "wide":
            assert_in_first_viewport(
                box_of(page, "#assessment-card"), viewport, "the whole assessment"
            )
        if name == "phone":
            # One column: header, Where it stands, then the take-over box, then the rest.
            assert stands["y"] < take["y"]
            tried = box_of(page, "#handoff-tried")
            assert tried["y"] > analysis["y"] + analysis["height"]
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert page.rf_errors == []

    # The box's three lines, as a senior reads them.
    stands = page.locator("#where-it-stands")
    expect(stands).to_contain_text("The DNS server or its forwarders are failing")
    expect(stands).to_contain_text(
        "Step \u201cCheck the DNS server service and forwarders\u201d \u2014 done:"
    )
    expect(stands.locator(".stands-quote")).to_have_text("DNS Server service is stopped on DC01")
    expect(stands.locator(".copy-btn")).to_be_visible()


def test_where_it_stands_follows_a_new_assessment_on_the_screen_and_in_the_chat_panel(
    page_for, sam, handoff
):
    screen = page_for(sam)
    screen.goto(f"/handoffs/{handoff.pk}/")
    stands = screen.locator("#where-it-stands")
    expect(stands).to_contain_text("The DNS server or its forwarders are failing")
    screen.get_by_role("button", name="I'll take it from here").click()
    panel_stands = screen.locator("#handoff-panel #where-it-stands")
    expect(panel_stands).to_contain_text("The DNS server or its forwarders are failing")
    # The chat listens on the handoff's stream.
    screen.wait_for_function(
        "() => document.getElementById('session-live')['htmx-internal-data']"
        "?.sseEventSource?.readyState === 1"
    )
    handoff.refresh_from_db()

    store_assessment(
        handoff_id=handoff.pk,
        assessment={
            "summary": "Claude: DC01's DNS service stopped after patching.",
            "tried": [],
            "causes": [
                {"title": "DNS service on DC01 stopped after patching", "why": "Event 4013."},
                {"title": "Forwarders unreachable", "why": ""},
            ],
            "next_steps": [
                {
                    "title": "Start the DNS service on DC01",
                    "detail": "",
                    "command": "Start-Service DNS",
                    "shell": "powershell",
                }
            ],
            "confidence": "low",
            "engine": "claude",
            "note": "",
            "model": "claude-test",
            "unclear": {
                "options": ["DNS service on DC01 stopped after patching", "Forwarders unreachable"],
                "ask": "Did DC01 restart for patches last night?",
            },
            "generated_at": timezone.now().isoformat(),
        },
        expected_updated_at=handoff.assessment_updated_at,
    )

    expect(panel_stands).to_contain_text(
        "Not clear yet: DNS service on DC01 stopped after patching or Forwarders unreachable"
    )
    expect(panel_stands).to_contain_text("ask Tess: Did DC01 restart for patches last night?")
    expect(panel_stands.locator(".stands-code")).to_have_text("Start-Service DNS")
    assert screen.rf_errors == []
