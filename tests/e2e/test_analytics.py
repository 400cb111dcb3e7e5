"""Ada proves the wedge in a real browser: five stopwatch timings turn the in-product time to
first action into minutes recovered, on the dashboard and on the queue's metric card."""

import os
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from analytics import metrics
from analytics.formatting import duration_text, number
from tests.analytics.factories import create_handoff

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(os.environ.get("RF_SCREENSHOT_DIR", "/tmp/rf-screenshots"))

# Stopwatch minutes of five manual handoffs: the median is 16.
TIMINGS = [("14", "Outlook profile"), ("18.5", "VPN on hotel Wi-Fi"), ("11.25", "Spooler")]
TIMINGS += [("22", "BitLocker loop"), ("16", "Shared mailbox permissions")]


@pytest.fixture
def eight_weeks_of_handoffs(personas):
    """Acme's last eight weeks, seniors getting faster; a few in Globex that must not show."""
    rng = random.Random(7)
    now = timezone.now()
    tess, sam, sky = personas["tess"], personas["sam"], personas["sky"]
    for days_ago in range(56, 0, -1):
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
            created = now - timedelta(days=days_ago, minutes=rng.randint(0, 600))
            weeks_ago = days_ago // 7
            typical = 140 + weeks_ago * 55  # seconds from claim to first action
            roll = rng.random()
            create_handoff(
                created,
                technician=tess,
                claimer=rng.choice([sam, sky]),
                claim=rng.randint(40, 420),
                first_action=None if roll < 0.08 else rng.randint(typical // 3, typical * 2),
                resolved=None if roll < 0.2 else rng.randint(600, 3600),
                released=rng.randint(60, 600) if 0.08 <= roll < 0.12 else None,
            )
    create_handoff(
        now - timedelta(days=3),
        technician=personas["gil"],
        claimer=personas["gwen"],
        claim=5,
        first_action=5,
    )


def record_timing(page, minutes: str, note: str, day) -> None:
    page.fill("#id_minutes", minutes)
    page.fill("#id_measured_on", day.isoformat())
    page.fill("#id_note", note)
    page.click("form.baseline-form button[type=submit]")


def test_ada_records_five_timings_and_sees_minutes_recovered(
    page_for, ada, eight_weeks_of_handoffs
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = page_for(ada)
    today = timezone.localdate()

    page.goto("/analytics/")
    expect(page.locator("[data-kpi=minutes-recovered]")).to_contain_text("0 of the 5")
    page.screenshot(path=SCREENSHOTS / "analytics-dashboard-no-baseline.png", full_page=True)

    page.goto("/analytics/baseline/")
    # An absurd reading is refused with a message, and what she typed stays.
    record_timing(page, "300", "Stopwatch left running over lunch", today)
    expect(page.locator(".field-minutes .errorlist")).to_contain_text("more than 240")
    expect(page.locator("#id_minutes")).to_have_value("300")
    expect(page.locator("#id_note")).to_have_value("Stopwatch left running over lunch")

    for index, (minutes, note) in enumerate(TIMINGS):
        record_timing(page, minutes, note, today - timedelta(days=20 - index * 4))
        expect(page.locator(".toast")).to_contain_text("Recorded")
        expect(page.locator(".baseline-table tbody tr")).to_have_count(index + 1)
        if index == 3:
            expect(page.locator(".baseline-progress")).to_have_text("4 of 5 needed")
    expect(page.locator(".baseline-progress")).to_contain_text("Median 16 min of 5 timings")
    page.screenshot(path=SCREENSHOTS / "analytics-baseline.png", full_page=True)

    summary = metrics.escalation_summary(
        ada.account_id,
        metrics.Window.last_days(30, today=today),
        now=timezone.now(),
    )
    recovered = summary.recovered.minutes_per_escalation
    assert recovered is not None and recovered > 0

    page.click(".mainnav >> text=Analytics")
    expect(page).to_have_url(re.compile(r"/analytics/$"))
    expect(page.locator("[data-kpi=minutes-recovered] .kpi-value")).to_have_text(
        f"{number(recovered)} min"
    )
    expect(page.locator("[data-kpi=hours-saved] .kpi-value")).to_have_text(
        f"{number(summary.recovered.hours_saved_per_week, 2)} h"
    )
    expect(page.locator("[data-metric=recovered]")).to_contain_text(f"{number(recovered)} min")
    expect(page.locator("[data-metric=recovered]")).to_contain_text("recovered per escalation")
    pilot = page.locator("[data-pilot]")
    verdict = "Saves more than 1 hour" if summary.pilot.passed else "Not above 1 hour"
    expect(pilot.locator(".pilot-verdict")).to_contain_text(verdict)
    weeks = number(summary.pilot.weeks_since_first_escalation)
    expect(pilot).to_contain_text(f"Since the first escalation{weeks} weeks")

    # The plots are drawn from the data: a point per week with first actions, bars, bins.
    trend = page.locator("svg#chart-trend")
    expect(trend).to_have_attribute("role", "img")
    weeks_with_data = sum(1 for p in summary.weekly if p.median_time_to_first_action is not None)
    expect(trend.locator(".chart-point")).to_have_count(weeks_with_data)
    expect(trend.locator(".chart-reference")).to_contain_text("Manual baseline 16 min (n=5)")
    expect(page.locator("svg#chart-queue-wait .chart-bar")).to_have_count(
        sum(1 for p in summary.weekly if p.median_time_to_claim is not None)
    )
    bars = page.locator("svg#chart-distribution .chart-bar title")
    counted = sum(int(re.search(r": (\d+) handoff", t).group(1)) for t in bars.all_text_contents())
    assert counted == summary.counts.first_action
    page.screenshot(path=SCREENSHOTS / "analytics-dashboard.png", full_page=True)

    # A wider window from the controls.
    page.fill("#window-from", (today - timedelta(days=55)).isoformat())
    page.click(".window-form button[type=submit]")
    expect(page.locator(".window-now")).to_contain_text("56 days")
    page.screenshot(path=SCREENSHOTS / "analytics-dashboard-8-weeks.png", full_page=True)
    # CSP violations land here as console errors; the refused form's 400 is the only one.
    assert [e for e in page.rf_errors if "status of 400" not in e] == []


def test_queue_card_shows_minutes_recovered_and_refreshes_on_first_action(
    page_for, personas, sam, ada, eight_weeks_of_handoffs
):
    from tests.analytics.factories import record_timings

    record_timings(ada, [minutes for minutes, _ in TIMINGS])
    page = page_for(sam)
    with page.expect_response(re.compile(r"/analytics/card$")):
        page.goto("/escalations/")
    card = page.locator("#metric-card .metric-card")
    expect(card).to_contain_text("Time to first action")
    expect(card.locator("[data-metric=recovered]")).to_contain_text("recovered per escalation")
    # Engineers get no link to the admin's baseline form.
    expect(card.locator("a", has_text="Record timings")).to_have_count(0)

    # The queue's stream is open before anything happens that it should hear.
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    count = card.locator("[data-metric=this-week-n]")
    before = int(count.text_content())
    # A real first action: tess escalates, sky claims and writes; the queue's event stream
    # brings "first-action" and the card refetches itself.
    from escalations import actions
    from tests.escalations.conftest import escalate, make_session

    handoff = escalate(make_session(personas["tess"]))
    actions.claim_handoff(handoff_id=handoff.pk, user=personas["sky"])
    with page.expect_response(re.compile(r"/analytics/card$")):
        actions.record_first_action(session=handoff.session, user=personas["sky"], kind="message")
    expect(count).to_have_text(str(before + 1))
    expect(card.locator("[data-metric=this-week-median]")).not_to_have_text("—")
    card.screenshot(path=SCREENSHOTS / "analytics-card.png")
    page.screenshot(path=SCREENSHOTS / "analytics-queue.png")
    assert page.rf_errors == []


def test_admin_sees_the_definition_and_the_breakdown_by_take_over_mode(
    page_for, personas, ada, eight_weeks_of_handoffs
):
    from escalations.models import Handoff

    # A third of the claimed handoffs were taken over with "Get AI analysis".
    claimed = Handoff.objects.filter(account_id=ada.account_id, claimed_at__isnull=False)
    analysed = list(claimed.order_by("created_at").values_list("pk", flat=True)[::3])
    Handoff.objects.filter(pk__in=analysed).update(takeover_mode="analysis")
    summary = metrics.escalation_summary(
        ada.account_id, metrics.Window.last_days(30, today=timezone.localdate()), now=timezone.now()
    )
    by_mode = {row.key: row for row in summary.breakdown.by_mode}
    assert by_mode["analysis"].claimed and by_mode["self"].claimed

    page = page_for(ada)
    page.goto("/analytics/")
    breakdown = page.locator("[data-breakdown=mode]")
    expect(page.locator("[data-definition]")).to_contain_text(
        "the first message they write in the chat, the first step whose status or outcome "
        "they record, or a step they add by hand"
    )
    expect(page.locator("[data-definition]")).to_contain_text('"Get AI analysis"')
    rows = breakdown.locator("tbody tr")
    expect(rows).to_have_count(2)
    for index, key in enumerate(["self", "analysis"]):
        row = by_mode[key]
        cells = rows.nth(index).locator("th, td")
        expect(cells.nth(0)).to_have_text(f"“{row.label}”")
        expect(cells.nth(1)).to_have_text(str(row.claimed))
        expect(cells.nth(2)).to_have_text(str(row.time_to_first_action.n))
        expect(cells.nth(4)).to_have_text(duration_text(row.time_to_first_action.median))
    expect(page.locator("[data-breakdown=senior] tbody tr")).to_have_count(2)  # sam and sky
    # No internal codes anywhere on the page.
    body = page.locator("main").inner_text()
    assert "ai_analysis" not in body and "(analysis)" not in body and "task_recorded" not in body

    # The card says it too, one click away.
    card = page.locator("[data-metric-card]")
    card.locator("summary", has_text="What counts as a first action").click()
    expect(card.locator("[data-metric=definition]")).to_be_visible()
    expect(card.locator("[data-metric=definition]")).to_contain_text("Open in Tasks panel")
    page.screenshot(path=SCREENSHOTS / "analytics-breakdown.png", full_page=True)
    assert page.rf_errors == []
