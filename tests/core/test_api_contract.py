"""The JSON API's contract, error by error: every status code and body docs/API.md promises.

Pinned before the JSON branches left the views for ``<app>/api.py``: a body may gain the
``message`` every error now carries (one error shape), never lose or change a key.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from escalations import actions as escalation_actions
from escalations.models import Notification
from flowpilot import actions as flowpilot_actions
from flowpilot.models import Session, SessionStatus
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}
# Today's bodies lack the ``message`` of the one error shape; the move to api.py adds it.
ONE_ERROR_SHAPE = True


@pytest.fixture(autouse=True)
def offline_engine(settings):
    settings.ANTHROPIC_API_KEY = ""


def get(client: Client, path: str, **params):
    return client.get(path, params, headers=JSON)


def post(client: Client, path: str, payload: dict | None = None):
    return client.post(
        path, json.dumps(payload or {}), content_type="application/json", headers=JSON
    )


def assert_error(response, code: int, **expected) -> dict:
    """``code`` with a JSON body holding ``expected``; besides it only a ``message``."""
    assert response.status_code == code, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    for key, value in expected.items():
        assert body[key] == value, (key, body)
    allowed = {"message"}
    if code == 400:
        assert isinstance(body["errors"], dict) and body["errors"], body
        allowed |= {"errors", "error"}
    assert set(body) - set(expected) <= allowed, body
    if ONE_ERROR_SHAPE and "error" in body:
        # One error shape: a code for programs and a sentence for people.
        assert isinstance(body.get("message"), str) and body["message"], body
    return body


def assert_not_allowed(response, allowed: str) -> None:
    assert response.status_code == 405
    assert response["Allow"] == allowed


def flowpilot_url(name: str, *args) -> str:
    return reverse(f"flowpilot:{name}", args=args)


def handoff_url(name: str, handoff) -> str:
    return reverse(f"escalations:{name}", args=[handoff.pk])


# --------------------------------------------------------------------------- FlowPilot


@pytest.fixture
def chat(tess) -> Session:
    session = flowpilot_actions.start_session(user=tess, problem="Outlook keeps prompting")
    flowpilot_actions.answer(session=session)
    return session


def test_session_list_refuses_post_with_405(client_for, tess):
    assert_not_allowed(post(client_for(tess), flowpilot_url("sessions")), "GET")


def test_start_session_field_errors_are_400(client_for, tess):
    response = post(client_for(tess), flowpilot_url("start_session"), {"customer": "Acme"})
    assert_error(response, 400, errors={"problem": ["The problem is required."]})


def test_start_session_refuses_get_with_405(client_for, tess):
    assert_not_allowed(get(client_for(tess), flowpilot_url("start_session")), "POST")


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ("[1, 2]", {"__all__": ["Send a JSON object."]}),
        ("{not json", {"__all__": ["The body is not valid JSON."]}),
        ('{"problem": ["x"]}', {"problem": ["Must be a string."]}),
    ],
)
def test_unreadable_bodies_are_400(client_for, tess, raw, errors):
    response = client_for(tess).post(
        flowpilot_url("start_session"), raw, content_type="application/json", headers=JSON
    )
    assert_error(response, 400, errors=errors)


@pytest.mark.parametrize(
    "path",
    [
        lambda chat: flowpilot_url("session", chat.pk),
        lambda chat: flowpilot_url("tasks", chat.pk),
    ],
)
def test_another_accounts_session_is_404_not_found(client_for, chat, gwen, path):
    assert_error(get(client_for(gwen), path(chat)), 404, error="not_found")


def test_unknown_task_is_404_not_found(client_for, chat, tess):
    response = post(client_for(tess), flowpilot_url("task", chat.pk, 999999), {"status": "done"})
    assert_error(response, 404, error="not_found")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (lambda chat: flowpilot_url("post_message", chat.pk), {"body": "hi"}),
        (lambda chat: flowpilot_url("tasks", chat.pk), {"title": "A step"}),
        (lambda chat: flowpilot_url("resolve", chat.pk), {}),
    ],
)
def test_a_reader_gets_403_read_only(client_for, chat, sam, path, payload):
    body = assert_error(post(client_for(sam), path(chat), payload), 403, error="read_only")
    assert body["message"] == "Only the technician working this session can change it."


def test_message_field_errors_are_400(client_for, chat, tess):
    response = post(client_for(tess), flowpilot_url("post_message", chat.pk), {"body": ""})
    assert_error(response, 400, errors={"body": ["Type a message first."]})


def test_message_endpoint_refuses_get_with_405(client_for, chat, tess):
    assert_not_allowed(get(client_for(tess), flowpilot_url("post_message", chat.pk)), "POST")


def test_task_endpoint_refuses_put_with_405(client_for, chat, tess):
    response = client_for(tess).put(flowpilot_url("tasks", chat.pk), headers=JSON)
    assert_not_allowed(response, "GET, POST")


def test_task_field_errors_are_400(client_for, chat, tess):
    response = post(client_for(tess), flowpilot_url("tasks", chat.pk), {"shell": "zsh"})
    body = assert_error(response, 400)
    assert set(body["errors"]) == {"title", "shell"}


def test_bad_move_direction_is_400(client_for, chat, tess):
    task = chat.tasks.first()
    response = post(
        client_for(tess), flowpilot_url("move_task", chat.pk, task.pk), {"direction": "left"}
    )
    body = assert_error(response, 400)
    assert list(body["errors"]) == ["direction"]


def test_resolving_an_escalated_session_is_409_not_resolvable(client_for, chat, tess):
    escalate(chat)
    response = post(client_for(tess), flowpilot_url("resolve", chat.pk))
    assert_error(response, 409, error="not_resolvable", status=SessionStatus.ESCALATED)


def test_resolve_note_errors_are_400(client_for, chat, tess):
    response = post(client_for(tess), flowpilot_url("resolve", chat.pk), {"note": "x" * 2001})
    body = assert_error(response, 400)
    assert list(body["errors"]) == ["note"]


# ------------------------------------------------------------------------- escalations


def test_escalate_field_errors_are_400(client_for, tess):
    session = make_session(tess)
    response = post(client_for(tess), reverse("escalate", args=[session.pk]), {"urgency": "now"})
    assert_error(
        response,
        400,
        errors={
            "reason": ["Say why you are stuck: the senior reads this first."],
            "urgency": ["Choose low, normal or high."],
        },
    )


def test_escalate_twice_is_409_already_escalated(client_for, tess):
    session = make_session(tess)
    handoff = escalate(session)
    response = post(client_for(tess), reverse("escalate", args=[session.pk]), {"reason": "x"})
    assert_error(
        response,
        409,
        error="already_escalated",
        handoff=str(handoff.pk),
        url=handoff_url("handoff", handoff),
    )


def test_escalating_a_resolved_session_is_409_session_resolved(client_for, tess):
    session = make_session(tess)
    flowpilot_actions.resolve_session(session=session, user=tess, note="")
    response = post(client_for(tess), reverse("escalate", args=[session.pk]), {"reason": "x"})
    assert_error(response, 409, error="session_resolved")


def test_escalating_someone_elses_session_is_403_not_owner(client_for, tess, sam):
    session = make_session(tess)
    response = post(client_for(sam), reverse("escalate", args=[session.pk]), {"reason": "x"})
    assert_error(response, 403, error="not_owner")


def test_escalating_another_accounts_session_is_404(client_for, tess, gwen):
    session = make_session(tess)
    response = post(client_for(gwen), reverse("escalate", args=[session.pk]), {"reason": "x"})
    assert_error(response, 404, error="not_found")


def test_escalate_refuses_get_with_405(client_for, tess):
    session = make_session(tess)
    assert_not_allowed(get(client_for(tess), reverse("escalate", args=[session.pk])), "POST")


def test_the_queue_is_403_role_for_technicians(client_for, tess):
    assert_error(get(client_for(tess), reverse("escalations:queue")), 403, error="role")


def test_another_accounts_handoff_is_404(client_for, tess, gwen):
    handoff = escalate(make_session(tess))
    assert_error(get(client_for(gwen), handoff_url("handoff", handoff)), 404, error="not_found")


def test_claiming_as_a_technician_is_403_role(client_for, tess, personas):
    handoff = escalate(make_session(personas["sam"]))
    assert_error(post(client_for(tess), handoff_url("claim", handoff)), 403, error="role")


def test_claiming_your_own_escalation_is_403_own_handoff(client_for, sam):
    handoff = escalate(make_session(sam))
    assert_error(post(client_for(sam), handoff_url("claim", handoff)), 403, error="own_handoff")


def test_a_second_claim_is_409_naming_the_winner(client_for, tess, sam, sky):
    handoff = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    response = post(client_for(sky), handoff_url("claim", handoff))
    body = assert_error(
        response,
        409,
        error="already_claimed",
        handoff=str(handoff.pk),
        claimed_by=response.json()["claimed_by"],
    )
    assert body["claimed_by"]["username"] == "sam"
    assert body["claimed_by"]["name"] == sam.name


def test_claiming_a_released_handoff_is_409_not_open(client_for, tess, sam, sky):
    handoff = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    escalation_actions.release_handoff(handoff_id=handoff.pk, user=sam)
    response = post(client_for(sky), handoff_url("claim", handoff))
    assert_error(response, 409, error="not_open", handoff=str(handoff.pk), state="released")


def test_releasing_an_open_handoff_is_409_not_claimed(client_for, tess, ada):
    handoff = escalate(make_session(tess))
    response = post(client_for(ada), handoff_url("release", handoff))
    assert_error(response, 409, error="not_claimed", handoff=str(handoff.pk), state="open")


def test_releasing_someone_elses_claim_is_403_not_claimer(client_for, tess, sam, sky):
    handoff = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    response = post(client_for(sky), handoff_url("release", handoff))
    assert_error(response, 403, error="not_claimer")


def test_resolving_a_released_handoff_is_409_closed(client_for, tess, sam, ada):
    handoff = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    escalation_actions.release_handoff(handoff_id=handoff.pk, user=sam)
    response = post(client_for(ada), handoff_url("resolve", handoff))
    assert_error(response, 409, error="closed", handoff=str(handoff.pk), state="released")


def test_resolve_note_errors_of_a_handoff_are_400(client_for, tess, sam):
    handoff = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    response = post(client_for(sam), handoff_url("resolve", handoff), {"note": "a\x00b"})
    body = assert_error(response, 400)
    assert list(body["errors"]) == ["note"]


@pytest.mark.parametrize("name", ["claim", "release", "resolve"])
def test_handoff_changes_refuse_get_with_405(client_for, tess, sam, name):
    handoff = escalate(make_session(tess))
    assert_not_allowed(get(client_for(sam), handoff_url(name, handoff)), "POST")


# --------------------------------------------------------------------------- analytics


def test_analytics_is_403_forbidden_for_technicians(client_for, tess):
    response = get(client_for(tess), reverse("analytics:flowpilot_escalations"))
    assert_error(
        response,
        403,
        error="forbidden",
        reason="Only engineers and admins see analytics.",
    )


def test_analytics_window_errors_are_400(client_for, sam):
    response = get(
        client_for(sam),
        reverse("analytics:flowpilot_escalations"),
        **{"from": "2026-03-15", "to": "2026-03-02"},
    )
    body = assert_error(response, 400)
    assert list(body["errors"]) == ["from"]


def test_analytics_refuses_post_with_405(client_for, sam):
    assert_not_allowed(post(client_for(sam), reverse("analytics:flowpilot_escalations")), "GET")


# ------------------------------------------------------------------------------ the bell


def test_someone_elses_notification_is_404(client_for, tess, sam, sky):
    escalate(make_session(tess))
    notification = Notification.objects.filter(recipient=sam).first()
    response = post(
        client_for(sky), reverse("escalations:notification_read", args=[notification.pk])
    )
    assert_error(response, 404, error="not_found")


def test_the_bell_refuses_post_and_marking_refuses_get_with_405(client_for, sam):
    assert_not_allowed(post(client_for(sam), reverse("escalations:bell")), "GET")
    response = get(client_for(sam), reverse("escalations:notifications_read_all"))
    assert_not_allowed(response, "POST")
