"""The senior's workspace in Chromium: my handoffs, both ways to take over from the bell,
the queue's filters, search and "Show more", and arrivals beyond the shown window."""

import re

import pytest
from playwright.sync_api import expect

from escalations import actions, queries
from escalations.models import Handoff
from tests.asgi import wait_until
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.browser


def open_queue(page_for, user, path="/escalations/"):
    page = page_for(user)
    page.goto(path)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    return page


def test_after_three_claims_sam_finds_them_in_the_queue_the_top_bar_and_the_sidebar(
    page_for, tess, sam
):
    handoffs = [
        escalate(make_session(tess, problem=f"Handoff number {n}: VPN drops")) for n in range(3)
    ]
    page = open_queue(page_for, sam)
    expect(page.locator("#my-handoffs")).to_be_hidden()
    for handoff in handoffs:
        actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    # Live: the section fills in and the top bar counts them.
    mine = page.locator("#my-handoffs")
    expect(mine.locator(".mine-item")).to_have_count(3, timeout=3000)
    expect(page.locator("#nav-claims")).to_contain_text("3", timeout=3000)
    for n in range(3):
        expect(mine).to_contain_text(f"Handoff number {n}: VPN drops")

    mine.get_by_role("link", name="Handoff number 1: VPN drops", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{handoffs[1].session_id}/$"))
    sidebar = page.locator(".fp-claims-nav")
    expect(sidebar.locator(".fp-session-link")).to_have_count(3)
    expect(sidebar.locator(".pill-escalated")).to_have_count(3)
    expect(sidebar.locator("[aria-current=page]")).to_contain_text("Handoff number 1")
    expect(page.locator("#nav-claims")).to_contain_text("3")
    assert page.rf_errors == []


@pytest.mark.parametrize("mode", ["takeover", "analysis"])
def test_both_ways_to_take_over_from_a_bell_item(page_for, tess, sam, mode):
    handoff = escalate(make_session(tess, problem="Shared mailbox vanished"))
    page = page_for(sam)
    page.goto("/flowpilot/")
    expect(page.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")
    page.locator("#bell-button").click()
    row = page.locator("#bell-menu .bell-row").first
    expect(row).to_contain_text("Shared mailbox vanished")
    name = "I'll take it from here" if mode == "takeover" else "Get AI analysis"
    row.get_by_role("button", name=name).click()

    expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{handoff.session_id}/"))
    expect(page.locator("#toasts")).to_contain_text("It's yours.")
    handoff.refresh_from_db()
    assert handoff.claimed_by == sam
    if mode == "analysis":
        assert handoff.takeover_mode == "analysis"
        assert handoff.first_action_at is None  # the briefing is not the claimer's own work
    assert page.rf_errors == []


def test_filters_and_search_narrow_the_queue_and_survive_a_reload(page_for, tess, sam):
    printer = escalate(make_session(tess, problem="Printer jams", customer="Contoso"))
    vpn = escalate(make_session(tess, problem="VPN drops", customer="Northwind"), urgency="high")
    page = open_queue(page_for, sam)
    expect(page.locator(".handoff-card")).to_have_count(2)

    page.fill("#id_q", "printer")
    expect(page.locator(".handoff-card")).to_have_count(1)
    expect(page.locator(f"#handoff-{printer.pk}")).to_be_visible()
    expect(page.locator("#waiting-count")).to_have_text("1")
    expect(page).to_have_url(re.compile(r"q=printer"))

    page.fill("#id_q", "")
    page.select_option("#id_urgency", "high")
    expect(page.locator(".handoff-card")).to_have_count(1)
    expect(page.locator(f"#handoff-{vpn.pk}")).to_be_visible()

    page.reload()
    expect(page.locator("#id_urgency")).to_have_value("high")
    expect(page.locator(".handoff-card")).to_have_count(1)
    assert page.rf_errors == []


def test_show_more_and_an_arrival_beyond_the_window(page_for, tess, sam, monkeypatch):
    monkeypatch.setattr(queries, "QUEUE_PAGE_SIZE", 2)  # the server runs in this process
    first, second, third = (escalate(make_session(tess)) for _ in range(3))
    page = open_queue(page_for, sam)
    expect(page.locator(".handoff-card")).to_have_count(2)
    expect(page.locator("#waiting-count")).to_have_text("3")

    late = escalate(make_session(tess, problem="Arrived late, at the end"))
    expect(page.locator("#waiting-count")).to_have_text("4", timeout=3000)
    expect(page.locator(f"#handoff-{late.pk}")).to_have_count(0)  # beyond the window

    urgent = escalate(make_session(tess, problem="Urgent: first in line"), urgency="high")
    expect(page.locator(f"#handoff-{urgent.pk}")).to_be_visible(timeout=3000)
    expect(page.locator("#waiting-count")).to_have_text("5")

    page.get_by_role("link", name="Show more").click()  # the next two: the rest
    expect(page.locator(f"#handoff-{third.pk}")).to_be_visible()
    expect(page.locator(f"#handoff-{late.pk}")).to_be_visible()
    ids = page.locator(".handoff-card").evaluate_all("cards => cards.map(c => c.dataset.handoff)")
    assert ids == [str(h.pk) for h in (urgent, first, second, third, late)]
    expect(page.get_by_role("link", name="Show more")).to_have_count(0)
    assert page.rf_errors == []


def test_a_realert_rings_the_bell_and_marks_the_card_overdue_at_the_threshold(page_for, tess, sam):
    from datetime import timedelta

    handoff = escalate(make_session(tess, problem="Door badge readers offline"), urgency="high")
    page = open_queue(page_for, sam)
    expect(page.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")
    expect(page.locator("#bell-button .bell-count")).to_have_text("1")  # the escalation
    card = page.locator(f"#handoff-{handoff.pk}")
    expect(card.locator(".pill-overdue")).to_have_count(0)

    # The beat's check, on a controlled clock: a second early, then at the threshold.
    early = actions.realert_overdue_handoffs(now=handoff.created_at + timedelta(seconds=299))
    assert early.seniors == []
    told = actions.realert_overdue_handoffs(now=handoff.created_at + timedelta(minutes=5))
    assert told.seniors == [handoff.pk]

    expect(page.locator("#bell-button .bell-count")).to_have_text("2", timeout=3000)
    expect(page.locator("#toasts")).to_contain_text("Still unclaimed after 5")
    expect(card.locator(".pill-overdue")).to_have_text("Overdue", timeout=3000)
    page.locator("#bell-button").click()
    row = page.locator("#bell-menu .bell-row").first
    expect(row).to_contain_text("Still unclaimed after 5\xa0minutes: Door badge readers offline")
    expect(row.get_by_role("button", name="I'll take it from here")).to_be_visible()
    assert page.rf_errors == []


def test_on_a_phone_the_takeover_box_follows_the_header(page_for, tess, sam):
    handoff = escalate(make_session(tess, tried=3))
    page = page_for(sam, viewport={"width": 390, "height": 844})
    page.goto(f"/handoffs/{handoff.pk}/")
    header = page.locator("#handoff-header").bounding_box()
    takeover = page.locator("#claim-box").bounding_box()
    tried = page.get_by_role("heading", name="What was tried").bounding_box()
    assert header["y"] < takeover["y"] < tried["y"]
    # Reachable without scrolling past the story: on the first two screens.
    assert takeover["y"] < 2 * 844
    expect(page.get_by_role("button", name="I'll take it from here")).to_be_visible()


def test_the_claimers_note_reaches_tess_live_without_a_flowpilot_reply(page_for, tess, sam):
    handoff = escalate(make_session(tess, problem="Scanner to email stopped working"))
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    tess_page = page_for(tess)
    tess_page.goto(f"/flowpilot/sessions/{handoff.session_id}/")
    expect(tess_page.locator(".fp-banner-escalated")).to_contain_text("Sam Okafor has it.")
    sams = page_for(sam)
    sams.goto(f"/flowpilot/sessions/{handoff.session_id}/")
    replies_before = sams.locator("#chat-log .msg-assistant").count()

    sams.fill("#composer-body", "Tess, I'm checking the firewall")
    sams.keyboard.press("Enter")  # Enter sends to the people
    expect(sams.locator("#chat-log")).to_contain_text("Tess, I'm checking the firewall")
    expect(tess_page.locator("#chat-log")).to_contain_text(
        "Tess, I'm checking the firewall", timeout=3000
    )
    sams.wait_for_timeout(500)  # an answer would have come with the note
    expect(sams.locator("#chat-log .msg-assistant")).to_have_count(replies_before)
    expect(sams.locator("#thinking")).to_be_hidden()

    sams.fill("#composer-body", "What should I check next?")
    sams.get_by_role("button", name="Ask FlowPilot").click()
    expect(sams.locator("#chat-log .msg-assistant")).to_have_count(replies_before + 1)
    assert sams.rf_errors == [] and tess_page.rf_errors == []


def test_presence_appears_on_sams_card_and_screen_and_leaves_with_skys_tab(
    page_for, tess, sam, sky, monkeypatch
):
    import time

    from escalations import presence
    from resolutionflow.tasks import drain_outbox

    now = {"t": time.time()}
    monkeypatch.setattr(presence, "clock", lambda: now["t"])  # the server runs in this process
    handoff = escalate(make_session(tess, problem="Plotter offline on floor 3"))
    line = f"#presence-{handoff.pk}"
    queue = open_queue(page_for, sam)
    sams_screen = page_for(sam)
    sams_screen.goto(f"/handoffs/{handoff.pk}/")
    card = queue.locator(f"#handoff-{handoff.pk}")
    expect(card.locator(".presence")).to_be_hidden()  # sam's own screen: not shown to sam

    skys = page_for(sky)
    skys.goto(f"/handoffs/{handoff.pk}/")
    expect(card.locator(".presence")).to_have_text("Sky is viewing", timeout=3000)
    expect(sams_screen.locator(line)).to_have_text("Sky is viewing", timeout=3000)
    expect(skys.locator(line)).to_have_text("Sam is viewing")  # sky sees sam, never sky

    # Sky closes the tab: the page's beacon, at once.
    skys.close()
    expect(card.locator(".presence")).to_be_hidden(timeout=3000)
    expect(sams_screen.locator(line)).to_be_hidden(timeout=3000)

    # Sky again, and the tab dies without a word (a crash, the network gone): no more beats,
    # no beacon. Gone at the first drain after the time is up.
    skys = page_for(sky)
    skys.goto(f"/handoffs/{handoff.pk}/")
    expect(card.locator(".presence")).to_have_text("Sky is viewing", timeout=3000)
    skys.evaluate("document.querySelectorAll('[data-presence-beat]').forEach(e => e.remove())")
    skys.close()
    now["t"] += presence.ttl_seconds() - 1
    drain_outbox()
    queue.wait_for_timeout(300)  # an event would have arrived by now
    expect(card.locator(".presence")).to_have_text("Sky is viewing")
    now["t"] += 1
    drain_outbox()
    expect(card.locator(".presence")).to_be_hidden(timeout=3000)
    expect(sams_screen.locator(line)).to_be_hidden(timeout=3000)
    assert queue.rf_errors == [] and sams_screen.rf_errors == []


# What a toast must never lie over.
CONTROLS = "a[href], button, input:not([type=hidden]), textarea, select, summary"
# Internal codes that must never reach the page.
INTERNAL_CODES = re.compile(
    r"\b(ai_analysis|task_recorded|task_added|first_action|claim_lost|handoff-\w+)\b"
    r"|· message\b|\(message\)"
)


def covered_controls(page) -> dict:
    """Every visible toast against every visible control, by bounding boxes (what the
    sticky top bar already hides of a scrolled control does not count)."""
    return page.evaluate(
        """(selector) => {
            const shown = el => {
                const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                return r.width > 0 && r.height > 0 && s.visibility !== "hidden";
            };
            const bar = document.querySelector(".topbar");
            const barBottom = bar ? bar.getBoundingClientRect().bottom : 0;
            const toasts = [...document.querySelectorAll(".toast")].filter(shown)
                .map(t => Object.assign(t.getBoundingClientRect().toJSON(), {text: t.textContent}));
            const hits = [];
            for (const el of document.querySelectorAll(selector)) {
                if (!shown(el) || el.closest(".toast")) continue;
                const r = el.getBoundingClientRect();
                const top = bar && !bar.contains(el) ? Math.max(r.top, barBottom) : r.top;
                for (const t of toasts) {
                    const across = r.left < t.right && t.left < r.right;
                    if (across && top < t.bottom && t.top < r.bottom) {
                        hits.push(el.outerHTML.slice(0, 90));
                    }
                }
            }
            return {toasts, hits};
        }""",
        CONTROLS,
    )


def assert_toast_covers_nothing(page, text):
    expect(page.locator("#toasts .toast:visible")).to_contain_text(text, timeout=4000)
    found = covered_controls(page)
    assert [t for t in found["toasts"] if text in t["text"]], found
    assert found["hits"] == [], found
    for toast in found["toasts"]:
        assert toast["width"] >= 140 and toast["height"] >= 14  # readable, not squeezed
    assert not INTERNAL_CODES.search(page.locator("body").inner_text())


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1366, "height": 768}, {"width": 390, "height": 844}],
    ids=["desk", "phone"],
)
def test_toasts_never_cover_a_control_on_the_queue_the_handoff_and_the_chat(
    page_for, tess, sam, viewport
):
    from datetime import timedelta

    waiting = escalate(make_session(tess, problem="Door badge readers offline"), urgency="high")
    page = page_for(sam, viewport=viewport)
    page.goto("/escalations/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")
    main_top = page.locator("#main").bounding_box()["y"]

    # The queue: a new escalation rings the bell (its toast), then a long message.
    escalate(make_session(tess, problem="Wi-Fi keeps dropping in the warehouse"))
    assert_toast_covers_nothing(page, "Wi-Fi keeps dropping")
    page.evaluate("window.rfToast('" + "A long message that goes on and on " * 4 + "', 'info')")
    assert_toast_covers_nothing(page, "A long message")
    assert page.locator("#main").bounding_box()["y"] == main_top  # a toast moves nothing

    # The handoff screen: a re-alert arrives while it is open.
    page.goto(f"/handoffs/{waiting.pk}/")
    expect(page.locator("#bell-stream")).to_have_attribute("data-stream-state", "open")
    actions.realert_overdue_handoffs(now=waiting.created_at + timedelta(minutes=5))
    assert_toast_covers_nothing(page, "Still unclaimed")

    # Taking it over: the chat, its composer, the claimer's panel and "It's yours" at once.
    page.get_by_role("button", name="I'll take it from here").click()
    expect(page).to_have_url(re.compile(rf"/flowpilot/sessions/{waiting.session_id}/"))
    assert_toast_covers_nothing(page, "It's yours.")
    expect(page.get_by_role("link", name="Release or resolve…")).to_be_visible()
    page.fill("#composer-body", "Tess, I'm on it")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-log")).to_contain_text("Tess, I'm on it")
    page.evaluate("window.rfToast('Saved. Nothing else to do here.', 'success')")
    assert_toast_covers_nothing(page, "Saved.")
    wait_until(
        lambda: Handoff.objects.filter(pk=waiting.pk, first_action_at__isnull=False).exists(), 5
    )
    page.goto(f"/handoffs/{waiting.pk}/")  # the history says what the first action was
    expect(page.locator("#handoff-timeline")).to_contain_text("wrote in the chat")
    assert not INTERNAL_CODES.search(page.locator("body").inner_text())
    assert page.rf_errors == []


def test_many_handoffs_of_mine_leave_the_waiting_list_on_the_first_screen(page_for, tess, sam):
    mine = [escalate(make_session(tess, problem=f"Mine number {n}")) for n in range(8)]
    for handoff in mine:
        actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    waiting = escalate(make_session(tess, problem="Still waiting for someone"))
    page = page_for(sam, viewport={"width": 1366, "height": 768})
    page.goto("/escalations/")
    section = page.locator("#my-handoffs")
    expect(section.locator(".mine-item:visible")).to_have_count(3)
    expect(page.locator("#mine-count")).to_have_text("8")
    card = page.locator(f"#handoff-{waiting.pk}").bounding_box()
    heading = page.locator("#waiting-title").bounding_box()
    assert heading["y"] + heading["height"] <= 768 and card["y"] + 40 <= 768  # in view

    section.get_by_text("Show all 8").click()
    expect(section.locator(".mine-item:visible")).to_have_count(8)
    actions.release_handoff(handoff_id=mine[0].pk, user=sam)  # a live refresh keeps it open
    expect(page.locator("#mine-count")).to_have_text("7", timeout=3000)
    expect(section.locator(".mine-item:visible")).to_have_count(7)
    section.get_by_text("Show fewer").click()
    expect(section.locator(".mine-item:visible")).to_have_count(3)
    assert page.rf_errors == []
