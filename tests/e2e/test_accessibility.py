"""An accessibility scan of every page with axe-core (vendored: tests/e2e/vendor/axe.min.js,
axe-core 4.14.1 from the npm registry, MPL-2.0), injected by Playwright: no serious or
critical violation anywhere; and the keyboard's way in (skip links, a visible focus)."""

import pprint
from pathlib import Path

import pytest
from playwright.sync_api import expect

from escalations import actions
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()


def scan(page) -> list[dict]:
    """Serious and critical violations on the page as it is now."""
    # Evaluated through the DevTools protocol, not a <script>: the page's CSP stays on.
    page.evaluate(AXE)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def pages_to_scan(tess, sam, ada):
    handoff = escalate(make_session(tess, problem="Outlook keeps asking for a password"))
    claimed = escalate(make_session(tess, problem="VPN drops every hour"))
    actions.claim_handoff(handoff_id=claimed.pk, user=sam)
    return [
        (None, "/accounts/login/"),
        (tess, "/flowpilot/"),
        (tess, f"/flowpilot/sessions/{handoff.session_id}/"),
        (sam, "/escalations/"),
        (sam, f"/handoffs/{handoff.pk}/"),
        (sam, f"/handoffs/{claimed.pk}/"),
        (sam, f"/flowpilot/sessions/{claimed.session_id}/"),
        (ada, "/escalations/re-alerts/"),
        (ada, "/analytics/"),
        (ada, "/analytics/baseline/"),
        (tess, f"/handoffs/{handoff.pk}/"),
    ]


@pytest.mark.parametrize("viewport", [None, {"width": 390, "height": 844}], ids=["desk", "phone"])
def test_no_page_has_a_serious_or_critical_accessibility_violation(
    page_for, tess, sam, ada, viewport
):
    found = {}
    for user, path in pages_to_scan(tess, sam, ada):
        page = page_for(user, viewport=viewport)
        page.goto(path)
        page.wait_for_load_state("networkidle")
        violations = scan(page)
        if user is not None:
            page.locator("#bell-button").click()  # the bell's menu, open
            violations += scan(page)
        if violations:
            found[path] = violations
    assert not found, "\n" + pprint.pformat(found, width=110)


def test_a_skip_link_leads_the_keyboard_to_the_main_action(page_for, tess, sam):
    handoff = escalate(make_session(tess))
    page = page_for(sam)
    page.goto(f"/handoffs/{handoff.pk}/")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link").first
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="I'll take it from here")).to_be_focused()


def test_the_focus_is_visible_on_every_control(page_for, sam):
    page = page_for(sam)
    page.goto("/escalations/")
    page.keyboard.press("Tab")
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); "
        "return [s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline[0] != "none" and outline[1] != "0px"
