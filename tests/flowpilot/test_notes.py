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


def test_the_technician_still_talks_to_flowpilot(client_for, tess, taken):
    before = replies(taken)
    post(client_for(tess), taken, "The printer is a HP 4250")
    assert replies(taken) == before + 1


def test_the_api_keeps_its_contract_for_the_claimer(client_for, sam, taken):
    url = reverse("flowpilot:post_message", args=[taken.pk])
    response = client_for(sam).post(
        url, {"body": "Checking"}, content_type="application/json", **JSON
    )
    assert response.status_code == 201
    assert "reply" in response.json()


def test_the_claimers_composer_offers_both(client_for, sam, tess, taken):
    page = client_for(sam).get(reverse("flowpilot:session", args=[taken.pk])).content.decode()
    assert "Send to Tess Tran" in page and 'value="flowpilot"' in page
    own = client_for(tess).get(reverse("flowpilot:session", args=[taken.pk])).content.decode()
    assert "Ask FlowPilot" not in own
