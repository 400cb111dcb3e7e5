"""The handoff screen and taking a handoff over, in Chromium against the real ASGI app."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from escalations import actions as handoffs
from escalations.actions import store_assessment
from flowpilot import actions as flowpilot
from flowpilot.models import Task

pytestmark = pytest.mark.browser

CLAUDE_ASSESSMENT = {
    "summary": "Claude: the queue is blocked by one corrupt job after Tuesday's update.",
    "tried": [],
    "causes": [{"title": "A corrupt job blocks the spooler", "why": "Every job waits behind it."}],
    "next_steps": [
        {
            "title": "Purge the spool folder",
            "detail": "Stop the spooler, empty the folder, start it.",
            "command": "net stop spooler",
            "shell": "cmd",
        }
    ],
    "confidence": "high",
    "engine": "claude",
    "note": "",
    "model": "claude-test",
}


@pytest.fixture
def handoff(tess):
    """tess's printer session, worked a little, then escalated (the assessment is stored)."""
    session = flowpilot.start_session(
        user=tess,
        problem="Nothing prints on the 2nd floor HP printer; jobs stay stuck in the print queue",
        customer="Northwind HQ",
        device="WS-0142 (Windows 11)",
    )
    flowpilot.answer(session=session)
    first = session.tasks.order_by("position").first()
    flowpilot.update_task(task=first, user=tess, status="failed", outcome="No change at all")
    flowpilot.post_message(session=session, user=tess, body="Spooler restarted, still stuck.")
    handoff = handoffs.escalate(
        session=session, user=tess, reason="The whole floor is blocked", urgency="high"
    ).handoff
    handoff.refresh_from_db()
    return handoff


def open_handoff(page_for, user, handoff):
    page = page_for(user)
    page.goto(f"/handoffs/{handoff.pk}/")
    return page


def take_over(page, button: str) -> None:
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile(r"/flowpilot/sessions/\d+/$"))
    expect(page.locator("#handoff-panel #lane-chips")).to_be_visible()


def test_the_header_and_the_assessment_render(page_for, sam, handoff):
    page = open_handoff(page_for, sam, handoff)

    header = page.locator("#handoff-header")
    expect(header).to_contain_text("Tess Tran")
    expect(header).to_contain_text("High urgency")
    expect(header).to_contain_text("Northwind HQ")
    expect(header).to_contain_text("WS-0142 (Windows 11)")
    expect(header).to_contain_text("The whole floor is blocked")
    card = page.locator("#assessment-card")
    expect(card).to_contain_text("AI assessment")
    expect(card).to_contain_text("Offline knowledge base")
    expect(card).to_contain_text(re.compile(r"(High|Medium|Low) confidence"))
    expect(card.locator(".cause").first).to_be_visible()
    expect(card.locator(".chip").first).to_be_visible()
    expect(page.locator("#handoff-tried")).to_contain_text("No change at all")
    expect(page.get_by_role("button", name="I'll take it from here")).to_be_visible()
    expect(page.get_by_role("button", name="Get AI analysis")).to_be_visible()
    assert page.rf_errors == []


def test_the_ai_assessment_replaces_the_offline_one_live(page_for, sam, handoff):
    page = open_handoff(page_for, sam, handoff)
    card = page.locator("#assessment-card")
    expect(card).to_contain_text("Offline knowledge base")
    # Wait until the page listens on the handoff's stream.
    page.wait_for_function(
        "() => document.querySelector('.handoff-stream')['htmx-internal-data']"
        "?.sseEventSource?.readyState === 1"
    )

    store_assessment(
        handoff_id=handoff.pk,
        assessment=CLAUDE_ASSESSMENT | {"generated_at": timezone.now().isoformat()},
        expected_updated_at=handoff.assessment_updated_at,
    )

    expect(card).to_contain_text("Claude (claude-test)")
    expect(card).to_contain_text("A corrupt job blocks the spooler")
    # "Where it stands" follows in the same fetch.
    expect(page.locator("#where-it-stands")).to_contain_text("A corrupt job blocks the spooler")
    expect(page.locator("#where-it-stands .stands-code")).to_have_text("net stop spooler")
    expect(card).not_to_contain_text("Offline knowledge base")
    assert page.rf_errors == []


def test_take_it_from_here_closes_the_overlay_and_focuses_the_composer(page_for, sam, handoff):
    page = open_handoff(page_for, sam, handoff)
    take_over(page, "I'll take it from here")

    expect(page.locator("#handoff-overlay")).to_be_hidden()
    expect(page.locator("#composer-body")).to_be_focused()
    assert "takeover" not in page.url, "the one-shot flag is dropped from the address"
    expect(page.locator(".fp-banner-escalated")).to_contain_text("You have it")
    # The overlay stays at hand.
    page.get_by_role("button", name="Handoff from Tess Tran").click()
    expect(page.locator("#handoff-overlay")).to_be_visible()
    assert page.rf_errors == []


def test_get_ai_analysis_ends_with_the_answer_in_the_chat_and_new_steps_in_the_lane(
    page_for, sam, handoff
):
    steps_before = Task.objects.filter(session=handoff.session).count()
    page = open_handoff(page_for, sam, handoff)
    take_over(page, "Get AI analysis")

    overlay = page.locator("#handoff-overlay")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Handoff from Tess Tran")
    expect(overlay).to_contain_text("FlowPilot was briefed")
    expect(overlay.get_by_role("button")).to_have_count(1)

    log = page.locator("#chat-log")
    expect(log.locator(".msg-user").last).to_contain_text("Handoff briefing")
    expect(log.locator(".msg-user").last).to_contain_text("Sam Okafor")
    expect(log.locator(".msg-assistant").last).to_contain_text("FlowPilot")
    last_two = log.locator("article.msg").evaluate_all(
        "items => items.slice(-2).map(item => item.className)"
    )
    assert "msg-user" in last_two[0] and "msg-assistant" in last_two[1], "the answer follows"
    assert Task.objects.filter(session=handoff.session).count() > steps_before
    new_task = Task.objects.filter(session=handoff.session).order_by("-id").first()
    expect(page.locator(f"#task-{new_task.pk}")).to_be_visible()
    assert page.rf_errors == []


def test_the_overlay_closes_with_close(page_for, sam, handoff):
    page = open_handoff(page_for, sam, handoff)
    take_over(page, "Get AI analysis")
    overlay = page.locator("#handoff-overlay")
    expect(overlay).to_be_visible()

    overlay.get_by_role("button", name="Close").click()

    expect(overlay).to_be_hidden()
    expect(page.locator("#composer-body")).to_be_focused()
    page.reload()
    expect(page.locator("#handoff-panel #lane-chips")).to_be_visible()
    expect(overlay).to_be_hidden()  # the flag was one-shot
    assert page.rf_errors == []


def suggested_steps_in_lane(handoff) -> list[Task]:
    """The lane tasks that are also among the assessment's suggested next steps."""
    from escalations.assessment import assessment_for_display

    lane = {task.title: task for task in Task.objects.filter(session=handoff.session)}
    suggested = assessment_for_display(handoff).next_steps
    return [lane[step["title"]] for step in suggested if step["title"] in lane]


def test_a_chip_expands_and_open_in_tasks_panel_adds_the_step(page_for, sam, handoff):
    # FlowPilot proposed its steps to tess, so they are in her lane; take one out so that its
    # chip offers to add it (which steps the engine suggests is not this test's subject).
    in_lane = suggested_steps_in_lane(handoff)
    assert in_lane, "the fixture's assessment suggests steps from the lane"
    in_lane[-1].delete()
    page = open_handoff(page_for, sam, handoff)
    take_over(page, "I'll take it from here")
    chip = page.locator("#handoff-panel .chip:not(.chip-in-lane)").first
    title = chip.locator(".chip-title").inner_text()
    opener = chip.get_by_role("button", name="Open in Tasks panel")
    expect(opener).to_be_hidden()

    chip.locator("summary").click()
    expect(opener).to_be_visible()
    expect(chip.locator(".chip-body")).to_be_visible()
    opener.click()

    expect(page.locator("#toasts")).to_contain_text("Added to the Tasks lane")
    task = Task.objects.get(session=handoff.session, title=title)
    lane_task = page.locator(f"#task-{task.pk}")
    expect(lane_task).to_be_visible()
    expect(lane_task).to_contain_text(title)
    expect(lane_task).to_be_in_viewport()
    # The step no longer offers to be added (its chip says "In lane", or the chips step
    # aside once every suggested step is in the lane).
    expect(page.locator("#lane-chips .chip:not(.chip-in-lane)", has_text=title)).to_have_count(0)
    assert page.rf_errors == []


def test_a_chip_whose_step_is_in_the_lane_points_at_it(page_for, sam, handoff):
    # tess's lane holds the suggested steps (FlowPilot proposed them to her); one is taken
    # out, so that the chips show (they step aside when every suggestion is in the lane).
    in_lane = suggested_steps_in_lane(handoff)
    assert len(in_lane) >= 2, "the fixture's assessment suggests steps from the lane"
    in_lane[-1].delete()
    queued = in_lane[0]
    step = {"title": queued.title}
    page = open_handoff(page_for, sam, handoff)
    take_over(page, "I'll take it from here")

    chip = page.locator("#handoff-panel .chip", has_text=step["title"])
    expect(chip).to_have_class(re.compile(r"\bchip-in-lane\b"))
    chip.locator("summary").click()
    chip.get_by_role("link", name="Show in Tasks panel").click()

    lane_task = page.locator(f"#task-{queued.pk}")
    expect(lane_task).to_be_in_viewport()
    expect(lane_task).to_have_class(re.compile(r"\btask-flash\b"))
    assert Task.objects.filter(session=handoff.session, title=step["title"]).count() == 1
    assert page.rf_errors == []


def test_the_copy_button_says_copied_once_with_a_checkmark(page_for, sam, handoff):
    page = open_handoff(page_for, sam, handoff)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    chip = page.locator("#assessment-card .chip", has=page.locator(".chip-command")).first
    chip.locator("summary").click()
    copy = chip.locator(".copy-btn")
    expect(copy.locator(".icon-check")).to_be_hidden()

    copy.click()

    expect(copy).to_have_class(re.compile(r"\bcopied\b"))
    expect(copy.locator(".icon-check")).to_be_visible()
    expect(copy.locator(".icon-copy")).to_be_hidden()
    # One message: the button says it (and a status region for screen readers), no toast.
    expect(page.locator("#rf-status")).to_have_text("Copied")
    expect(page.locator("#toasts .toast", has_text="Copied")).to_have_count(0)
    command = chip.locator(".chip-code").inner_text()
    assert page.evaluate("navigator.clipboard.readText()") == command
    assert page.rf_errors == []


def test_a_handoff_claimed_by_someone_else_offers_nothing_to_claim(page_for, sam, sky, handoff):
    handoffs.claim_handoff(handoff_id=handoff.pk, user=sky)
    page = open_handoff(page_for, sam, handoff)
    expect(page.locator("#claim-box")).to_contain_text("Sky Lindqvist has it")
    expect(page.get_by_role("button", name="I'll take it from here")).to_have_count(0)
    expect(page.get_by_role("button", name="Get AI analysis")).to_have_count(0)
    expect(page.locator("#assessment-card")).to_be_visible()
    assert page.rf_errors == []


def test_an_open_screen_learns_live_that_someone_else_claimed_it(page_for, sam, sky, handoff):
    page = open_handoff(page_for, sky, handoff)
    expect(page.get_by_role("button", name="I'll take it from here")).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('.handoff-stream')['htmx-internal-data']"
        "?.sseEventSource?.readyState === 1"
    )

    handoffs.claim_handoff(handoff_id=handoff.pk, user=sam)

    claim_box = page.locator("#claim-box")
    expect(claim_box).to_contain_text("Sam Okafor has it", timeout=3000)
    expect(page.get_by_role("button", name="I'll take it from here")).to_have_count(0)
    expect(page.get_by_role("button", name="Get AI analysis")).to_have_count(0)

    handoffs.resolve_handoff(handoff_id=handoff.pk, user=sam, note="Cleared the corrupt job")
    expect(claim_box).to_contain_text("Resolved", timeout=3000)
    expect(claim_box).to_contain_text("Cleared the corrupt job")
    expect(claim_box).to_contain_text("Claimed by Sam Okafor")
    assert page.rf_errors == []


def test_releasing_asks_first_and_a_no_changes_nothing(page_for, sam, handoff):
    handoffs.claim_handoff(handoff_id=handoff.pk, user=sam)
    page = page_for(sam)
    page.goto(f"/handoffs/{handoff.pk}/")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.get_by_role("button", name="Release back to the queue").click()
    page.wait_for_timeout(300)
    assert asked and asked[0].startswith("Release this handoff back to the queue?")
    handoff.refresh_from_db()
    assert handoff.state == "claimed"

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.get_by_role("button", name="Release back to the queue").click()
    expect(page).to_have_url(re.compile(r"/escalations/"))
    handoff.refresh_from_db()
    assert handoff.state == "released"
    assert page.rf_errors == []
