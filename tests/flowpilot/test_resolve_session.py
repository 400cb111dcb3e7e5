"""A technician closes a session they fixed themselves: 'Fixed it' on the chat page."""

import pytest
from django.urls import reverse

from flowpilot import actions
from flowpilot.models import Message, MessageRole, SessionStatus

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def session(tess):
    return actions.start_session(user=tess, problem="Printer on floor 2 shows offline")


def resolve_url(session) -> str:
    return reverse("flowpilot:resolve", args=[session.pk])


def test_the_owner_marks_it_resolved_with_what_fixed_it(client_for, tess, session):
    client = client_for(tess)
    response = client.post(resolve_url(session), {"note": "Printer had a new IP"})

    assert response.status_code == 303
    session.refresh_from_db()
    assert session.status == SessionStatus.RESOLVED
    line = Message.objects.filter(session=session, role=MessageRole.SYSTEM).get()
    assert line.body == "Tess Tran marked this resolved. What fixed it: Printer had a new IP"
    page = client.get(response["Location"]).content.decode()
    assert "Resolved. Well done: no escalation needed." in page
    assert "This session is read-only." in page
    assert "Fixed it</summary>" not in page and "Escalate…" not in page


def test_resolving_as_json(client_for, tess, session):
    response = client_for(tess).post(resolve_url(session), {}, **JSON)
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["session"]["status"] == "resolved"


def test_a_bad_note_is_refused_and_kept(client_for, tess, session):
    response = client_for(tess).post(resolve_url(session), {"note": "ok\x00" + "x" * 10})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="resolve-note-error"' in html
    assert "x" * 10 in html  # what was typed stays in the box
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE


def test_an_escalated_session_is_resolved_through_its_handoff(client_for, tess, session):
    from escalations.actions import escalate

    escalate(session=session, user=tess, reason="Stuck")
    response = client_for(tess).post(resolve_url(session), {}, **JSON)
    assert response.status_code == 409
    assert response.json()["error"] == "not_resolvable"
    assert "the senior who has it resolves it" in response.json()["message"]
    session.refresh_from_db()
    assert session.status == SessionStatus.ESCALATED


def test_nobody_else_closes_it(client_for, sam, gwen, session):
    assert client_for(sam).post(resolve_url(session), {}, **JSON).status_code == 403
    assert client_for(gwen).post(resolve_url(session), {}, **JSON).status_code == 404
    assert client_for(sam).get(resolve_url(session)).status_code == 405
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE
