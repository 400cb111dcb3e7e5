"""A chat page following an escalated session: what is announced, and what it is sent."""

import pytest
from django.urls import reverse

from escalations import actions
from flowpilot import actions as flowpilot_actions
from flowpilot.models import Message
from resolutionflow.models import OutboxEvent
from tests.escalations.conftest import HTMX, escalate, make_session

pytestmark = pytest.mark.django_db


def announced(handoff) -> list[str]:
    events = OutboxEvent.objects.filter(
        event_type="session-activity", channel=f"handoff-{handoff.pk}"
    ).order_by("id")
    return [event.data["kind"] for event in events]


def test_writing_in_an_escalated_session_is_announced_on_its_handoff(tess, sam):
    handoff = escalate(make_session(tess))
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    flowpilot_actions.post_message(session=handoff.session, user=sam, body="Which model?")
    task = flowpilot_actions.add_task(session=handoff.session, user=sam, title="Check SMTP auth")

    assert announced(handoff) == ["message", "reply", "task_added"]
    assert task.pk
    # Whose action (or whose message FlowPilot answered): that person's page skips it.
    by = OutboxEvent.objects.filter(event_type="session-activity").values_list("data", flat=True)
    assert {data["by"] for data in by} == {sam.pk}


def test_flowpilot_answering_is_not_the_claimers_first_action(tess, sam):
    handoff = escalate(make_session(tess))
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    flowpilot_actions.post_message(session=handoff.session, user=tess, body="Any news?")
    handoff.refresh_from_db()
    assert handoff.first_action_at is None  # tess wrote and FlowPilot answered tess


def test_an_active_session_announces_nothing(tess):
    session = flowpilot_actions.start_session(user=tess, problem="Printer offline")
    flowpilot_actions.post_message(session=session, user=tess, body="It is the HP on floor 2")
    assert not OutboxEvent.objects.filter(event_type="session-activity").exists()


def live_url(session, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in {"live": "1", **params}.items())
    return f"{reverse('flowpilot:session', args=[session.pk])}?{query}"


def test_the_live_update_sends_the_header_the_new_messages_and_the_lane(client_for, tess, sam):
    handoff = escalate(make_session(tess))
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    session = handoff.session
    seen = Message.objects.filter(session=session).order_by("id").last()
    flowpilot_actions.post_message(session=session, user=sam, body="Which scanner model?")

    body = client_for(tess).get(live_url(session, after=seen.pk), **HTMX).content.decode()

    assert '<div id="fp-chat-top" hx-swap-oob="true">' in body
    assert "Sam Okafor has it." in body
    assert '<div hx-swap-oob="beforeend:#chat-log">' in body
    assert "Which scanner model?" in body
    assert f'data-message-id="{seen.pk}"' not in body  # already on the page
    assert 'id="task-lane"' in body and 'hx-swap-oob="outerHTML"' in body


def test_the_live_update_reads_no_more_than_it_sends(
    client_for, tess, sam, django_assert_num_queries
):
    handoff = escalate(make_session(tess))
    client = client_for(tess)
    client.get(live_url(handoff.session), **HTMX)  # session and user cached as on a live page
    # The session and user, the chat session, the messages, the tasks, the live handoff's
    # reason for the escalated banner; no sidebar.
    with django_assert_num_queries(6):
        client.get(live_url(handoff.session, lane="0"), **HTMX)


def test_a_viewer_typing_in_the_lane_keeps_it(client_for, tess, sam):
    handoff = escalate(make_session(tess))
    body = client_for(tess).get(live_url(handoff.session, lane="0"), **HTMX).content.decode()
    assert 'id="task-lane"' not in body
    assert 'id="fp-chat-top"' in body


@pytest.mark.parametrize("after", ["x", "-5", "", "99999999999999999999"])
def test_a_bad_after_sends_everything_never_an_error(client_for, tess, after):
    handoff = escalate(make_session(tess))
    response = client_for(tess).get(live_url(handoff.session, after=after), **HTMX)
    assert response.status_code == 200
    first = Message.objects.filter(session=handoff.session).order_by("id").first()
    if after in ("x", "-5", ""):
        assert f'data-message-id="{first.pk}"' in response.content.decode()


def test_the_live_update_is_only_for_those_who_may_read_the_session(client_for, tess, gwen):
    handoff = escalate(make_session(tess))
    assert client_for(gwen).get(live_url(handoff.session), **HTMX).status_code == 404
