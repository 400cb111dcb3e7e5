"""Escalating a session: the one entry point, its rows, its side effects and its refusals."""

import json
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from escalations import actions
from escalations.models import (
    Handoff,
    HandoffEvent,
    HandoffState,
    Notification,
    NotificationKind,
)
from flowpilot.models import SessionStatus
from resolutionflow.models import OutboxEvent
from tests.conftest import api_body
from tests.escalations.conftest import HTMX, JSON, escalate, make_session

pytestmark = pytest.mark.django_db


def escalate_url(session):
    return reverse("escalate", args=[session.pk])


# --- the action ------------------------------------------------------------------------------


def test_escalate_creates_an_open_handoff_whose_package_carries_its_own_id(session, tess):
    handoff = escalate(session, reason="Password prompt loops", urgency="high")

    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN
    assert handoff.account_id == tess.account_id
    assert handoff.escalated_by == tess
    assert (handoff.reason, handoff.urgency) == ("Password prompt loops", "high")
    package = handoff.escalation_package
    assert package["handoff"] == str(handoff.pk)
    assert package["session"] == session.pk
    assert package["escalated_by"]["username"] == "tess"
    assert package["reason"] == "Password prompt loops"
    assert package["urgency"] == "high"
    assert package["problem"] == session.problem
    assert [step["title"] for step in package["steps_tried"]] == ["Step 1", "Step 2"]
    assert package["steps_tried"][0] == {
        "title": "Step 1",
        "status": "failed",
        "outcome": "Still prompts after reboot",
        "command": "Get-Process outlook",
    }
    assert [m["body"] for m in package["last_messages"]] == [
        "Help",
        "Try clearing the credentials.",
    ]
    json.dumps(package)  # a JSON snapshot, nothing else


def test_escalate_marks_the_session_escalated_to_nobody_yet(session):
    escalate(session)
    session.refresh_from_db()
    assert session.status == SessionStatus.ESCALATED
    assert session.escalated_to is None


def test_escalate_records_an_escalated_event_by_the_technician(handoff, tess):
    events = list(HandoffEvent.objects.filter(handoff=handoff).values_list("kind", "actor"))
    assert events == [("escalated", tess.pk)]


def test_escalate_notifies_every_senior_of_the_account_but_nobody_else(
    session, sam, sky, ada, gwen
):
    escalation = actions.escalate(session=session, user=session.owner, reason="Stuck")
    assert escalation.notified == 3
    recipients = set(
        Notification.objects.filter(
            handoff=escalation.handoff, kind=NotificationKind.HANDOFF_ESCALATED
        ).values_list("recipient__username", flat=True)
    )
    assert recipients == {"sam", "sky", "ada"}


def test_escalate_announces_the_handoff_on_the_queue_channel_after_commit(
    session, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        handoff = escalate(session)
        event = OutboxEvent.objects.get(event_type="handoff-escalated")
        assert event.published_at is None  # nothing leaves before commit
    assert callbacks
    event.refresh_from_db()
    assert event.channel == f"queue-{session.account_id}"
    assert event.data["handoff"] == str(handoff.pk)
    assert event.data["escalated_by"] == session.owner_id
    assert event.published_at is not None


def test_a_live_session_cannot_be_escalated_twice(handoff, session):
    with pytest.raises(actions.AlreadyEscalated) as refused:
        escalate(session)
    assert refused.value.handoff.pk == handoff.pk
    assert Handoff.objects.filter(session=session).count() == 1


def test_a_claimed_session_cannot_be_escalated_again(claimed, session):
    with pytest.raises(actions.AlreadyEscalated) as refused:
        escalate(session)
    assert refused.value.handoff.pk == claimed.pk


def test_the_partial_unique_constraint_backs_the_check(handoff, session, monkeypatch):
    """If the check misses a concurrent handoff, the constraint turns it into AlreadyEscalated."""
    real = actions._live_handoff_of
    calls = []

    def blind_first(session_id):
        calls.append(session_id)
        return None if len(calls) == 1 else real(session_id)

    monkeypatch.setattr(actions, "_live_handoff_of", blind_first)
    with pytest.raises(actions.AlreadyEscalated) as refused:
        escalate(session)
    assert refused.value.handoff.pk == handoff.pk
    assert len(calls) == 2


def test_only_the_sessions_owner_can_escalate_it(session, sam):
    with pytest.raises(actions.HandoffForbidden) as refused:
        escalate(session, user=sam)
    assert refused.value.code == "not_owner"


def test_a_resolved_session_cannot_be_escalated(claimed, session, sam):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    session.refresh_from_db()
    with pytest.raises(actions.SessionResolved):
        escalate(session)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_escalate_refuses_a_missing_or_oversized_reason(session, reason):
    with pytest.raises(ValueError):
        escalate(session, reason=reason)


def test_escalate_refuses_an_unknown_urgency(session):
    with pytest.raises(ValueError):
        escalate(session, urgency="urgent")


def test_an_engineer_may_escalate_their_own_session_but_is_not_notified(sam):
    escalation = actions.escalate(session=make_session(sam), user=sam, reason="Need a second pair")
    assert escalation.notified == 2  # sky and ada


def test_escalate_starts_the_assessment_inside_its_transaction(session, monkeypatch):
    from escalations import actions

    started = []

    def record(handoff):
        # Called once the row exists, so the assessment can be stored against it.
        started.append((handoff.pk, Handoff.objects.filter(pk=handoff.pk).exists()))

    monkeypatch.setattr(actions, "start_assessment_on_commit", record)
    handoff = escalate(session)
    assert started == [(handoff.pk, True)]


# --- the view: JSON --------------------------------------------------------------------------


def test_json_escalate_answers_201_with_the_handoff_and_how_many_were_notified(
    client_for, tess, session
):
    response = client_for(tess).post(
        escalate_url(session), {"reason": "Stuck on MFA", "urgency": "high"}, **JSON
    )
    assert response.status_code == 201
    handoff = Handoff.objects.get(session=session)
    assert api_body(response.json()) == {
        "handoff": str(handoff.pk),
        "session": session.pk,
        "notified": 3,
    }


def test_json_escalate_accepts_a_json_body(client_for, tess, session):
    response = client_for(tess).post(
        escalate_url(session),
        data=json.dumps({"reason": "Stuck", "urgency": "low"}),
        content_type="application/json",
        **JSON,
    )
    assert response.status_code == 201
    assert Handoff.objects.get(session=session).urgency == "low"


def test_json_escalate_without_urgency_means_normal(client_for, tess, session):
    response = client_for(tess).post(escalate_url(session), {"reason": "Stuck"}, **JSON)
    assert response.status_code == 201
    assert Handoff.objects.get(session=session).urgency == "normal"


def test_json_escalate_without_a_reason_is_a_400_naming_the_field(client_for, tess, session):
    response = client_for(tess).post(escalate_url(session), {"urgency": "high"}, **JSON)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["reason"]
    assert not Handoff.objects.exists()


def test_json_escalate_with_an_unknown_urgency_is_a_400(client_for, tess, session):
    response = client_for(tess).post(
        escalate_url(session), {"reason": "Stuck", "urgency": "panic"}, **JSON
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["urgency"]


def test_json_escalate_with_a_malformed_body_is_a_400(client_for, tess, session):
    response = client_for(tess).post(
        escalate_url(session), data="[1, 2", content_type="application/json", **JSON
    )
    assert response.status_code == 400


@pytest.mark.parametrize("reason", [["Stuck"], 42, {"text": "Stuck"}])
def test_json_escalate_with_a_reason_that_is_not_a_string_is_a_400(
    client_for, tess, session, reason
):
    response = client_for(tess).post(
        escalate_url(session),
        data=json.dumps({"reason": reason}),
        content_type="application/json",
        **JSON,
    )
    assert (response.status_code, api_body(response.json())) == (
        400,
        {"errors": {"reason": ["Must be a string."]}},
    )
    assert not Handoff.objects.exists()


def test_a_reason_with_control_characters_is_refused(client_for, tess, session):
    response = client_for(tess).post(escalate_url(session), {"reason": "Stuck\x00"}, **JSON)
    assert response.status_code == 400
    assert "control characters" in response.json()["errors"]["reason"][0]
    assert not Handoff.objects.exists()


def test_json_escalate_while_one_is_open_is_a_409_naming_it(client_for, tess, handoff, session):
    response = client_for(tess).post(escalate_url(session), {"reason": "Again"}, **JSON)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "already_escalated"
    assert body["handoff"] == str(handoff.pk)
    assert body["url"] == reverse("escalations:handoff", args=[handoff.pk])


def test_json_escalate_of_a_resolved_session_is_a_409(client_for, tess, claimed, sam, session):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    response = client_for(tess).post(escalate_url(session), {"reason": "Again"}, **JSON)
    assert response.status_code == 409
    assert api_body(response.json()) == {"error": "session_resolved"}


# --- the view: pages and htmx ----------------------------------------------------------------


def test_htmx_escalate_goes_back_to_the_chat_with_a_toast(client_for, tess, session):
    client = client_for(tess)
    response = client.post(escalate_url(session), {"reason": "Stuck", "urgency": "normal"}, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("flowpilot:session", args=[session.pk])
    toasts = [str(m) for m in get_messages(response.wsgi_request)]
    assert toasts == ["Escalated — 3 seniors notified"]


def test_plain_form_escalate_goes_back_to_the_chat(client_for, tess, session):
    response = client_for(tess).post(escalate_url(session), {"reason": "Stuck"})
    assert response.status_code == 303
    assert response["Location"] == reverse("flowpilot:session", args=[session.pk])


def test_the_toast_counts_one_senior_in_the_singular(client_for, tess, session, sky, ada):
    sky.is_active = ada.is_active = False
    sky.save(update_fields=["is_active"])
    ada.save(update_fields=["is_active"])
    response = client_for(tess).post(escalate_url(session), {"reason": "Stuck"}, follow=True)
    assert "Escalated — 1 senior notified" in response.content.decode()


def test_htmx_bad_input_rerenders_the_form_with_errors_and_the_typed_reason(
    client_for, tess, session
):
    response = client_for(tess).post(
        escalate_url(session), {"reason": "Typed <b>this</b>", "urgency": "panic"}, **HTMX
    )
    assert response.status_code == 200  # htmx 2 swaps only 2xx answers
    body = response.content.decode()
    assert "Choose low, normal or high." in body
    assert "Typed &lt;b&gt;this&lt;/b&gt;" in body
    assert "<html" not in body  # the fragment only
    assert not Handoff.objects.exists()


def test_plain_bad_input_is_a_400_page_with_the_form_and_the_typed_reason(
    client_for, tess, session
):
    response = client_for(tess).post(escalate_url(session), {"reason": "  ", "urgency": "low"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Say why you are stuck" in body
    assert 'value="low" selected' in body


def test_a_refused_multi_line_reason_comes_back_whole_in_a_textarea(client_for, tess, session):
    reason = "Printer on floor 2 is down.\r\nTried the spooler.\x07"
    response = client_for(tess).post(escalate_url(session), {"reason": reason})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Remove the control characters" in html
    assert (
        re.search(r'<textarea name="reason"[^>]*id="escalate-reason"', html)
        and f"{reason}</textarea>" in html
    )
    assert 'type="text" name="reason"' not in html


def test_escalating_an_escalated_session_leads_to_its_open_handoff(
    client_for, tess, handoff, session
):
    response = client_for(tess).post(escalate_url(session), {"reason": "Again"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("escalations:handoff", args=[handoff.pk])
    assert "already escalated" in response.content.decode()


def test_escalate_by_get_is_405(client_for, tess, session):
    assert client_for(tess).get(escalate_url(session)).status_code == 405


def test_an_engineer_cannot_escalate_a_technicians_session(client_for, sam, session):
    response = client_for(sam).post(escalate_url(session), {"reason": "Stuck"}, **JSON)
    assert response.status_code == 403
    assert api_body(response.json()) == {"error": "not_owner"}
    assert client_for(sam).post(escalate_url(session), {"reason": "x"}).status_code == 403


def test_another_accounts_session_is_a_404(client_for, gwen, gil, session):
    for user in (gwen, gil):
        response = client_for(user).post(escalate_url(session), {"reason": "Stuck"}, **JSON)
        assert response.status_code == 404
        assert api_body(response.json()) == {"error": "not_found"}
    assert not Handoff.objects.exists()


def test_the_technician_sees_the_reason_she_gave_on_her_escalated_session(
    client_for, session, tess, sam
):
    escalate(session, reason="Tried remapping <b>S:</b>, still a red X")
    page = reverse("flowpilot:session", args=[session.pk])
    html = client_for(tess).get(page).content.decode()
    assert "Reason:</span> Tried remapping &lt;b&gt;S:&lt;/b&gt;, still a red X" in html
    # Released back to the queue or resolved, the banner goes with the live handoff.
    handoff = Handoff.objects.get(session=session)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert "still a red X" in client_for(tess).get(page).content.decode()
