"""FlowPilot in a real browser: the chat, the lane, the composer's keys, and session switching."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

import flowpilot.actions
import flowpilot.views
from escalations.models import Handoff
from flowpilot import actions
from flowpilot.assistants import ProposedStep, Reply

pytestmark = pytest.mark.browser

OUTLOOK = "Outlook keeps asking for a password after the Microsoft 365 migration"
SESSION_URL = re.compile(r"/flowpilot/sessions/(\d+)/$")


@pytest.fixture(autouse=True)
def offline_engine(settings):
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def slow_assistant(monkeypatch):
    """The real engine, but every answer takes ``delay`` seconds (like Claude on a bad day)."""
    real = flowpilot.actions.get_assistant
    state = {"delay": 0.0}

    class Slow:
        name = "slow"

        def __init__(self, inner):
            self.inner = inner

        def reply(self, conversation):
            time.sleep(state["delay"])
            return self.inner.reply(conversation)

    monkeypatch.setattr(flowpilot.actions, "get_assistant", lambda: Slow(real()))
    return state


class Scripted:
    name = "scripted"

    def __init__(self, *titles: str) -> None:
        self.titles = titles

    def reply(self, conversation):
        return Reply(text="Steps:", steps=tuple(ProposedStep(title=t) for t in self.titles))


def test_tess_works_an_outlook_problem_through_the_chat(page_for, tess, slow_assistant):
    page = page_for(tess)
    page.goto("/flowpilot/")
    page.fill("#id_problem", OUTLOOK)
    page.fill("#id_customer", "Brightwater Dental")
    page.get_by_role("button", name="Start session").click()

    expect(page).to_have_url(SESSION_URL)
    lane = page.locator("#task-lane")
    session_id = SESSION_URL.search(page.url).group(1)
    expect(lane).to_have_attribute("data-session-id", session_id)
    tasks = lane.locator(".task")
    expect(tasks.first).to_be_visible()
    assert tasks.count() >= 3
    expect(page.locator(".chat-log .msg-assistant")).to_have_count(1)

    # Mark one step failed, with what happened.
    failing = tasks.nth(1)
    failed_title = failing.locator(".task-title").inner_text()
    failing.locator(".task-outcome-input").fill("Still prompts after clearing the credentials")
    failing.get_by_role("button", name="Failed").click()
    failed_task = lane.locator(".task.task-failed")
    expect(failed_task).to_have_count(1)
    expect(failed_task.locator(".task-title")).to_have_text(failed_title)
    expect(failed_task.locator(".task-outcome")).to_contain_text("Still prompts after clearing")

    # The copy button: a checkmark.
    copy = lane.locator(".task:not(.task-failed) .copy-btn").first
    expect(copy.locator(".icon-check")).to_be_hidden()
    copy.click()
    expect(copy).to_have_class(re.compile(r"\bcopied\b"))
    expect(copy.locator(".icon-check")).to_be_visible()
    expect(copy.locator(".icon-copy")).to_be_hidden()
    expect(page.locator("#rf-status")).to_have_text("Copied")  # the button says it; no toast

    # Shift+Enter is a new line and sends nothing.
    box = page.locator("#composer-body")
    box.click()
    box.press_sequentially("It still prompts.")
    box.press("Shift+Enter")
    box.press_sequentially("Only in classic Outlook.")
    expect(box).to_have_value("It still prompts.\nOnly in classic Outlook.")
    page.wait_for_timeout(300)
    expect(page.locator(".chat-log .msg-user")).to_have_count(0)

    # Enter sends: the message shows at once, FlowPilot is visibly thinking, the box waits.
    slow_assistant["delay"] = 1.0
    box.press("Enter")
    expect(page.locator(".chat-log .msg-pending")).to_contain_text("Only in classic Outlook.")
    expect(page.locator("#thinking")).to_be_visible()
    expect(box).to_be_disabled()
    expect(box).to_have_value("")

    replies = page.locator(".chat-log .msg-assistant")
    expect(replies).to_have_count(2, timeout=10_000)
    expect(page.locator("#thinking")).to_be_hidden()
    expect(page.locator(".chat-log .msg-pending")).to_have_count(0)
    expect(page.locator(".chat-log .msg-user")).to_have_count(1)
    expect(page.locator(".chat-log .msg-user")).to_contain_text("It still prompts.")
    expect(box).to_be_enabled()
    expect(box).to_be_focused()

    # The new reply does not propose the failed step again, and the lane keeps it once.
    proposed = replies.last.locator("ol li").all_inner_texts()
    assert proposed, "the second reply proposes new steps"
    assert failed_title not in proposed
    expect(lane.locator(".task-title", has_text=failed_title)).to_have_count(1)
    assert lane.locator(".task").count() > 3
    expect(lane).to_have_attribute("data-session-id", session_id)
    assert page.rf_errors == []


def test_a_message_that_cannot_be_sent_stays_in_the_box(page_for, tess):
    session = actions.start_session(user=tess, problem=OUTLOOK)
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")
    box = page.locator("#composer-body")

    # Too long: a clear error, and nothing typed is lost.
    too_long = "x" * 8001
    box.fill(too_long)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#composer-errors")).to_contain_text("at most 8,000 characters")
    expect(box).to_have_value(too_long)
    expect(page.locator(".chat-log .msg-user")).to_have_count(0)

    # The network fails: the text comes back too.
    page.route("**/messages", lambda route: route.abort())
    box.fill("Tried a new profile")
    box.press("Enter")
    expect(page.locator("#toasts .toast", has_text="Could not reach the server")).to_be_visible()
    expect(box).to_have_value("Tried a new profile")
    expect(page.locator(".chat-log .msg-pending")).to_have_count(0)

    # An empty message is not sent: Enter in an empty box does nothing, spaces or Send say why.
    page.unroute("**/messages")
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    box.fill("")
    box.press("Enter")
    expect(page.locator("#composer-errors")).to_be_empty()
    box.fill("   ")
    box.press("Enter")
    expect(page.locator("#composer-errors")).to_have_text("Type a message first.")
    box.fill("")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#composer-errors")).to_have_text("Type a message first.")
    expect(box).to_be_focused()
    assert not [url for url in requests if url.endswith("/messages")]
    assert session.messages.count() == 0
    box.fill("Half")  # typing clears the error
    expect(page.locator("#composer-errors")).to_be_empty()

    # A reload keeps the draft (this tab); once sent, it is gone.
    box.fill("Half a thought about the profile")
    page.reload()
    expect(box).to_have_value("Half a thought about the profile")
    box.press("Enter")
    expect(page.locator(".chat-log .msg-user:not(.msg-pending)")).to_contain_text("Half a thought")
    page.reload()
    expect(box).to_have_value("")


LANE_RECORDER = """
(() => {
  // Every lane this tab ever shows, with the page it was shown on (kept across page loads).
  let last = "";
  const record = () => {
    const lane = document.getElementById("task-lane");
    if (!lane) return;
    const seen = JSON.stringify({
      path: location.pathname,
      lane: lane.getAttribute("data-session-id"),
      tasks: Array.from(lane.querySelectorAll(".task")).map(t => t.getAttribute("data-session-id")),
      titles: Array.from(lane.querySelectorAll(".task-title")).map(t => t.textContent),
    });
    if (seen === last) return;
    last = seen;
    const log = JSON.parse(sessionStorage.getItem("laneLog") || "[]");
    log.push(JSON.parse(seen));
    sessionStorage.setItem("laneLog", JSON.stringify(log));
  };
  const watch = {childList: true, subtree: true, attributes: true};
  new MutationObserver(record).observe(document, watch);
})();
"""


def test_switching_sessions_quickly_never_shows_another_sessions_lane(page_for, tess, monkeypatch):
    first = actions.start_session(user=tess, problem="Printer offline on the second floor")
    actions.answer(
        session=first, assistant=Scripted("Printer step 1", "Printer step 2", "Printer step 3")
    )
    second = actions.start_session(user=tess, problem="VPN drops every hour")
    actions.answer(session=second, assistant=Scripted("VPN step 1", "VPN step 2", "VPN step 3"))
    titles = {
        str(first.pk): ["Printer step 1", "Printer step 2", "Printer step 3"],
        str(second.pk): ["VPN step 1", "VPN step 2", "VPN step 3"],
    }

    # Slow every lane response, so each switch leaves a lane request in flight.
    real_render_lane = flowpilot.views.render_lane

    def slow_render_lane(*args, **kwargs):
        time.sleep(0.4)
        return real_render_lane(*args, **kwargs)

    monkeypatch.setattr(flowpilot.views, "render_lane", slow_render_lane)

    page = page_for(tess)
    page.add_init_script(LANE_RECORDER)
    page.goto(f"/flowpilot/sessions/{first.pk}/")
    current, other = first, second
    for _ in range(6):
        lane = page.locator("#task-lane")
        # A lane change in flight (slowed), then straight to the other session.
        lane.get_by_role("button", name="Start").first.click()
        page.locator(f'.fp-sidebar a[data-session-link="{other.pk}"]').click()
        expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{other.pk}/$"))
        expect(page.locator("#task-lane")).to_have_attribute("data-session-id", str(other.pk))
        current, other = other, current
    page.wait_for_timeout(1000)  # let every slowed response land

    log = page.evaluate("JSON.parse(sessionStorage.getItem('laneLog') || '[]')")
    assert len(log) >= 7
    for entry in log:
        on_page = SESSION_URL.search(entry["path"]).group(1)
        assert entry["lane"] == on_page, entry
        assert set(entry["tasks"]) <= {on_page}, entry
        # A lane caught while the page is still being parsed may hold the first few steps
        # only, but never a step of the other session.
        assert set(entry["titles"]) <= set(titles[on_page]), entry
    expect(page.locator("#task-lane .task-title")).to_have_text(titles[str(current.pk)])
    # Leaving a page aborts its request in flight, which htmx logs; nothing else may log.
    abandoned = ("htmx:sendAbort", "htmx:sendError")
    assert [error for error in page.rf_errors if not error.startswith(abandoned)] == []


def test_a_late_response_for_another_session_is_never_swapped_in(page_for, tess):
    first = actions.start_session(user=tess, problem="Printer offline on the second floor")
    actions.answer(session=first, assistant=Scripted("Printer step 1"))
    second = actions.start_session(user=tess, problem="VPN drops every hour")
    actions.answer(session=second, assistant=Scripted("VPN step 1"))

    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{second.pk}/")
    # What a request left over from the first session's page would do if it landed here.
    page.evaluate(
        "url => htmx.ajax('GET', url, {target: '#task-lane', swap: 'outerHTML'})",
        f"/flowpilot/sessions/{first.pk}/tasks",
    )
    page.wait_for_timeout(500)
    lane = page.locator("#task-lane")
    expect(lane).to_have_attribute("data-session-id", str(second.pk))
    expect(lane.locator(".task-title")).to_have_text(["VPN step 1"])
    # The same lane request for this session does swap (the guard is not blocking everything).
    page.evaluate(
        "url => htmx.ajax('GET', url, {target: '#task-lane', swap: 'outerHTML'})",
        f"/flowpilot/sessions/{second.pk}/tasks",
    )
    actions.add_task(session=second, user=tess, title="Added meanwhile")
    page.evaluate(
        "url => htmx.ajax('GET', url, {target: '#task-lane', swap: 'outerHTML'})",
        f"/flowpilot/sessions/{second.pk}/tasks",
    )
    expect(lane.locator(".task-title")).to_have_text(["VPN step 1", "Added meanwhile"])


def test_the_chat_page_fills_the_window_and_only_its_panes_scroll(page_for, tess):
    session = actions.start_session(user=tess, problem="Mapped S: drive missing after reboot")
    for number in range(12):
        actions.add_task(session=session, user=tess, title=f"Step {number}", detail="x " * 80)
        actions.post_message(session=session, user=tess, body=f"Tried thing {number}")
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")
    page.mouse.move(1200, 500)  # over the task lane
    page.mouse.wheel(0, 5000)
    page.mouse.move(700, 400)  # over the chat
    page.mouse.wheel(0, 5000)
    assert page.evaluate("window.scrollY") == 0
    assert page.evaluate("document.documentElement.scrollHeight") <= 900
    lane_scrolled = page.evaluate("document.querySelector('#task-lane').scrollTop")
    assert lane_scrolled > 0
    expect(page.locator("#composer textarea, textarea[name=body]").first).to_be_in_viewport()


def test_enter_in_an_outcome_box_saves_the_outcome_and_keeps_the_status(page_for, tess):
    session = actions.start_session(user=tess, problem="Mapped S: drive missing after reboot")
    task = actions.add_task(session=session, user=tess, title="Check the mapping with net use")
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")

    box = page.locator(f"#outcome-{task.pk}")
    box.fill("S: is listed as Unavailable")
    box.press("Enter")

    item = page.locator(f"#task-{task.pk}")
    expect(item.locator(".task-outcome")).to_contain_text("S: is listed as Unavailable")
    expect(item.locator(".task-status")).to_have_text("To do")
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("todo", "S: is listed as Unavailable")


def test_escape_closes_the_escalate_popover_and_keeps_what_was_typed(page_for, tess):
    session = actions.start_session(user=tess, problem="Mapped S: drive missing after reboot")
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")

    page.get_by_text("Escalate…").click()
    reason = page.locator("#escalate-reason")
    reason.fill("Tried remapping, still red X")
    reason.press("Escape")

    expect(page.locator("details.fp-escalate")).not_to_have_attribute("open", "")
    page.get_by_text("Escalate…").click()
    expect(reason).to_have_value("Tried remapping, still red X")


def test_an_escalation_without_a_reason_says_so_in_the_panel(page_for, tess):
    session = actions.start_session(user=tess, problem="Mapped S: drive missing after reboot")
    page = page_for(tess)
    page.goto(f"/flowpilot/sessions/{session.pk}/")

    page.get_by_text("Escalate…").click()
    page.locator("#escalate-reason").fill("  ")
    page.get_by_role("button", name="Escalate", exact=True).click()
    panel = page.locator("#escalate-form")
    expect(panel).to_contain_text("Say why you are stuck: the senior reads this first.")
    expect(page.locator("details.fp-escalate")).to_have_attribute("open", "")
    assert not Handoff.objects.filter(session=session).exists()


def test_tess_follows_her_escalated_session_live(page_for, tess, sam):
    from escalations import actions as handoffs
    from tests.escalations.conftest import escalate, make_session

    handoff = escalate(make_session(tess, problem="Scanner to email stopped working"))
    page = page_for(tess)
    # The stream connects late (a slow network): Sam claims between the render and then.
    held = []
    page.route(re.compile(r"/handoffs/sessions/\d+/events/"), lambda route: held.append(route))
    page.goto(f"/flowpilot/sessions/{handoff.session_id}/")
    expect(page.locator(".fp-banner-escalated")).to_contain_text("Waiting in the queue")
    draft = page.locator("#composer-body")
    draft.fill("Half-typed note")  # never replaced by a live update

    handoffs.claim_handoff(handoff_id=handoff.pk, user=sam)
    for _ in range(60):  # Playwright hands us the held request while it waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the chat page never opened its stream"
    held[0].continue_()
    page.unroute(re.compile(r"/handoffs/sessions/\d+/events/"))
    expect(page.locator(".fp-banner-escalated")).to_contain_text("Sam Okafor has it.", timeout=3000)
    # Her sessions list beside the chat says so too.
    listed = page.locator(f'.fp-session-nav [data-session-link="{handoff.session_id}"]')
    expect(listed).to_contain_text("Escalated · Sam Okafor")

    actions.post_message(session=handoff.session, user=sam, body="Tess, which scanner model?")
    log = page.locator("#chat-log")
    expect(log).to_contain_text("Tess, which scanner model?", timeout=3000)
    expect(log.locator(".msg-assistant").last).to_be_visible()  # FlowPilot's answer too
    ids = log.locator("[data-message-id]").evaluate_all(
        "items => items.map(item => item.getAttribute('data-message-id'))"
    )
    assert len(ids) == len(set(ids))
    expect(draft).to_have_value("Half-typed note")

    # Sam has it: what Tess writes now goes to him, FlowPilot answers only when asked.
    expect(page.locator("#composer-buttons")).to_contain_text("Send to Sam Okafor")
    expect(draft).to_have_attribute("placeholder", re.compile(r"^Write to Sam Okafor"))
    answers = log.locator(".msg-assistant").count()
    draft.fill("HP ScanJet Pro 3500")
    draft.press("Enter")
    expect(log).to_contain_text("HP ScanJet Pro 3500")
    expect(draft).to_have_value("")
    # Sam's message sits on the other side from hers.
    expect(log.locator(".msg-other")).to_contain_text("Tess, which scanner model?")
    expect(log.locator(".msg-user:not(.msg-other)").last).to_contain_text("HP ScanJet Pro 3500")
    page.wait_for_timeout(500)  # an answer would have come with the message
    expect(log.locator(".msg-assistant")).to_have_count(answers)

    # Sam resolves it while she types: nothing more can be sent, what she typed stays.
    draft.fill("One more thing about the scanner")
    handoffs.resolve_handoff(handoff_id=handoff.pk, user=sam, note="New SMTP password set")
    expect(page.locator(".fp-banner-resolved")).to_be_visible(timeout=3000)
    expect(page.locator("#composer-buttons button")).to_have_count(0)
    expect(page.locator("#composer-hint")).to_contain_text("Resolved: this session is read-only")
    expect(draft).to_have_value("One more thing about the scanner")
    expect(draft).not_to_be_editable()
    draft.press("Enter")
    page.wait_for_timeout(300)
    expect(draft).to_have_value("One more thing about the scanner")
    expect(listed).to_contain_text("Resolved")
    assert page.rf_errors == []
