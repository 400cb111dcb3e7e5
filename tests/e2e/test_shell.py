"""The application shell in a real browser."""

import re

from playwright.sync_api import expect

from resolutionflow.demo import DEMO_PASSWORD


def test_tess_signs_in_and_sees_the_shell(page_for, tess):
    page = page_for()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "tess")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")

    expect(page).to_have_url(re.compile(r"/flowpilot/$"))
    topbar = page.locator(".topbar")
    expect(topbar).to_contain_text("Acme IT")
    expect(topbar).to_contain_text("Tess Tran")
    expect(topbar).to_contain_text("Technician")
    expect(page.locator(".mainnav")).to_have_text(re.compile("FlowPilot"))
    # Technicians get no queue or analytics in their navigation.
    expect(page.locator(".mainnav a", has_text="Escalations")).to_have_count(0)
    expect(page.locator(".mainnav a", has_text="Analytics")).to_have_count(0)
    # htmx is served from our own static files and ran under the CSP (no inline script).
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.rf_errors == []


def test_wrong_password_says_so_in_the_form(page_for, tess):
    page = page_for()
    page.goto("/accounts/login/")
    page.fill("#id_username", "tess")
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".alert-error")).to_contain_text("correct username and password")
    expect(page.locator("#id_username")).to_have_value("tess")


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_no_page_is_wider_than_the_screen(page_for, tess, sam, ada):
    from tests.analytics.factories import record_timings
    from tests.escalations.conftest import escalate, make_session

    handoff = escalate(make_session(tess, problem="Outlook keeps asking for a password"))
    for timing in record_timings(ada, ["17.25", "21"]):  # a table with notes to squeeze
        timing.note = "BitLocker recovery loop: two calls before the first real step"
        timing.save(update_fields=["note"])
    for user, path in [
        (sam, "/escalations/"),
        (sam, f"/handoffs/{handoff.pk}/"),
        (tess, "/"),
        (tess, f"/flowpilot/sessions/{handoff.session_id}/"),
        (ada, "/analytics/"),
        (ada, "/analytics/baseline/"),
    ]:
        page = page_for(user, viewport=PHONE)
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
        if path == "/escalations/":
            expect(page.get_by_role("button", name="I'll take it from here")).to_be_in_viewport()
        if path == "/analytics/baseline/":  # the row's buttons are within the screen's width
            box = page.get_by_role("button", name="Delete").first.bounding_box()
            assert box["x"] + box["width"] <= PHONE["width"], box
