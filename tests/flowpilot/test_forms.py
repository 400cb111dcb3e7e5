"""Refused forms come back bound: their errors beside what was typed, on the right row."""

import re

import pytest
from django.urls import reverse

from flowpilot import actions

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def offline_engine(settings):
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def session(tess):
    session = actions.start_session(user=tess, problem="The VPN drops every hour")
    for title in ("Check the client version", "Renew the certificate"):
        actions.add_task(session=session, user=tess, title=title)
    return session


def outcome_input(html: str, task) -> str:
    return re.search(rf'<input[^>]*id="outcome-{task.pk}"[^>]*>', html).group(0)


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_a_refused_status_change_keeps_the_typed_outcome_on_its_own_task(
    client_for, session, tess, headers
):
    refused, other = session.tasks.order_by("position")[:2]
    actions.update_task(task=other, user=tess, status="failed", outcome="Stored note")
    typed = "Tried it <twice>"
    response = client_for(tess).post(
        reverse("flowpilot:task", args=[session.pk, refused.pk]),
        {"status": "maybe", "outcome": typed},
        headers=headers,
    )
    assert response.status_code == 400
    html = response.content.decode()
    mine = outcome_input(html, refused)
    assert 'value="Tried it &lt;twice&gt;"' in mine and 'aria-invalid="true"' in mine
    theirs = outcome_input(html, other)
    assert 'value="Stored note"' in theirs and "aria-invalid" not in theirs
    assert html.count('class="errorlist"') == 1


def test_a_refused_new_session_keeps_every_field(client_for, tess):
    response = client_for(tess).post(
        reverse("flowpilot:start_session"),
        {"problem": "p" * 2001, "customer": "Brightwater <Dental>", "device": "FD-PC-02"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "at most 2,000 characters" in html
    assert "p" * 2001 + "</textarea>" in html
    assert 'value="Brightwater &lt;Dental&gt;"' in html
    assert 'value="FD-PC-02"' in html


def test_a_refused_resolve_note_comes_back_in_its_open_panel(client_for, session, tess):
    response = client_for(tess).post(
        reverse("flowpilot:resolve", args=[session.pk]), {"note": "Fixed\x00 it"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert '<details class="fp-resolve" name="fp-session-actions" open>' in html
    assert "Fixed\x00 it</textarea>" in html  # as typed, to be corrected
    assert "control characters" in html


def test_a_refused_message_comes_back_in_the_composer(client_for, session, tess):
    response = client_for(tess).post(
        reverse("flowpilot:post_message", args=[session.pk]), {"body": "b" * 8001}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "b" * 8001 + "</textarea>" in html
    assert "at most 8,000 characters" in html
