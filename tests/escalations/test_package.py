"""The escalation package says when it cut a message, and where the whole of it is."""

import pytest
from django.urls import reverse

from escalations.actions import PACKAGE_MESSAGE_CHARS
from flowpilot.models import Message, MessageRole
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.django_db


def test_a_long_message_is_cut_with_an_ellipsis_and_a_link_to_the_whole(client_for, tess, sam):
    session = make_session(tess)
    long_body = "Event 7031 " * 400  # 4,400 characters
    long_message = Message.objects.create(
        session=session, role=MessageRole.USER, author=tess, body=long_body
    )
    handoff = escalate(session)

    last = handoff.escalation_package["last_messages"][-1]
    assert last["id"] == long_message.pk
    assert last["truncated"] is True
    assert len(last["body"]) <= PACKAGE_MESSAGE_CHARS
    assert last["body"].endswith("…")
    assert long_body.startswith(last["body"][:-1])
    assert last["url"] == reverse("flowpilot:session", args=[session.pk]) + (
        f"#message-{long_message.pk}"
    )
    # The whole text is where the link points.
    chat = client_for(sam).get(last["url"].split("#")[0])
    assert long_body.strip() in chat.content.decode()


def test_a_short_message_is_whole_and_says_so(tess):
    handoff = escalate(make_session(tess))
    first = handoff.escalation_package["last_messages"][0]
    assert first["truncated"] is False
    assert not first["body"].endswith("…")
