"""The senior who took a session over talks to the technician; FlowPilot answers when asked."""

import pytest
from django.urls import reverse

from escalations import actions as handoffs
from flowpilot.models import Message, MessageRole
from tests.escalations.conftest import HTMX, JSON, escalate, make_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def taken(tess, sam):
    """tess's escalated session, taken over by sam."""
    handoff = escalate(make_session(tess))
    handoffs.claim_handoff(handoff_id=handoff.pk, user=sam)
    return handoff.session


def post(client, session, body, **extra):
    url = reverse("flowpilot:post_message", args=[session.pk])
    return client.post(url, {"body": body, **extra}, **HTMX)


def replies(session):
    return Message.objects.filter(session=session, role=MessageRole.ASSISTANT).count()


def test_the_claimers_message_goes_to_the_people_without_a_flowpilot_reply(client_for, sam, taken):
    before = replies(taken)
    response = post(client_for(sam), taken, "Tess, I'm checking the firewall")
    assert response.status_code == 200
    assert "Tess, I&#x27;m checking the firewall" in response.content.decode()
    assert replies(taken) == before
    note = Message.objects.filter(session=taken, author=sam).get()
    assert note.role == MessageRole.USER


def test_ask_flowpilot_gets_its_answer(client_for, sam, taken):
    before = replies(taken)
    post(client_for(sam), taken, "What should I check next?", ask="flowpilot")
    assert replies(taken) == before + 1


def test_once_claimed_the_technician_writes_to_the_senior_and_asks_flowpilot_by_choice(
    client_for, tess, taken
):
    before, lane = replies(taken), taken.tasks.count()
    response = post(client_for(tess), taken, "Exported the key to the desktop. Waiting for you.")
    assert response.status_code == 200
    # Sam is on it: no FlowPilot answer, no new steps in the lane he works from.
    assert (replies(taken), taken.tasks.count()) == (before, lane)
    post(client_for(tess), taken, "What else could I check meanwhile?", ask="flowpilot")
    assert replies(taken) == before + 1


def test_while_waiting_in_the_queue_flowpilot_still_answers_the_technician(client_for, tess):
    waiting = escalate(make_session(tess)).session
    before = replies(waiting)
    post(client_for(tess), waiting, "The printer is a HP 4250")
    assert replies(waiting) == before + 1


def test_the_api_keeps_its_contract_for_the_claimer(client_for, sam, taken):
    url = reverse("flowpilot:post_message", args=[taken.pk])
    response = client_for(sam).post(
        url, {"body": "Checking"}, content_type="application/json", **JSON
    )
    assert response.status_code == 201
    assert "reply" in response.json()


def test_both_composers_offer_the_other_person_and_flowpilot(client_for, sam, tess, taken):
    page = client_for(sam).get(reverse("flowpilot:session", args=[taken.pk])).content.decode()
    assert "Send to Tess Tran" in page and 'value="flowpilot"' in page
    own = client_for(tess).get(reverse("flowpilot:session", args=[taken.pk])).content.decode()
    assert "Send to Sam Okafor" in own and 'value="flowpilot"' in own
    assert "Write to Sam Okafor… (FlowPilot answers only when you ask it)" in own


def test_the_live_update_brings_the_composers_new_buttons(client_for, tess, sam):
    handoff = escalate(make_session(tess))
    client = client_for(tess)
    url = reverse("flowpilot:session", args=[handoff.session_id])
    assert "Send to" not in client.get(url).content.decode()
    handoffs.claim_handoff(handoff_id=handoff.pk, user=sam)
    live = client.get(url + "?live=1&after=0", **HTMX).content.decode()
    assert 'id="composer-buttons" hx-swap-oob="true"' in live
    assert "Send to Sam Okafor" in live
    placeholder = "Write to Sam Okafor… (FlowPilot answers only when you ask it)"
    assert f'data-placeholder="{placeholder}"' in live
