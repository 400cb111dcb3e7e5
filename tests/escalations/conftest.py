"""Escalation fixtures: sessions with a task lane and a chat, and handoffs in each state."""

import itertools

import pytest

from escalations import actions
from escalations.models import Handoff
from flowpilot.models import Message, MessageRole, Session, Task, TaskStatus

_numbers = itertools.count(1)


def make_session(owner, *, problem=None, customer="Northwind HQ", device="LAPTOP-042", tried=2):
    """A session of ``owner`` with ``tried`` tried tasks, one untried task and a short chat."""
    number = next(_numbers)
    session = Session.objects.create(
        account_id=owner.account_id,
        owner=owner,
        problem=problem or f"Outlook keeps asking for a password #{number}\nSince this morning.",
        customer=customer,
        device=device,
    )
    outcomes = [
        (TaskStatus.FAILED, "Still prompts after reboot"),
        (TaskStatus.DONE, "Credential Manager cleared"),
        (TaskStatus.SKIPPED, ""),
    ]
    for position in range(tried):
        status, outcome = outcomes[position % len(outcomes)]
        Task.objects.create(
            session=session,
            position=position,
            title=f"Step {position + 1}",
            status=status,
            outcome=outcome,
            command="Get-Process outlook" if position == 0 else "",
            created_by=owner,
        )
    Task.objects.create(session=session, position=tried, title="Not tried yet", created_by=owner)
    Message.objects.create(session=session, role=MessageRole.USER, author=owner, body="Help")
    Message.objects.create(
        session=session, role=MessageRole.ASSISTANT, body="Try clearing the credentials."
    )
    return session


def escalate(session, *, user=None, reason="Tried everything in the lane", urgency="normal"):
    return actions.escalate(
        session=session, user=user or session.owner, reason=reason, urgency=urgency
    ).handoff


@pytest.fixture
def session(tess):
    return make_session(tess)


@pytest.fixture
def handoff(session) -> Handoff:
    """An open handoff escalated by tess."""
    return escalate(session)


@pytest.fixture
def claimed(handoff, sam) -> Handoff:
    """tess's handoff, claimed by sam."""
    return actions.claim_handoff(handoff_id=handoff.pk, user=sam)


@pytest.fixture
def globex_handoff(gil) -> Handoff:
    return escalate(make_session(gil))


JSON = {"HTTP_ACCEPT": "application/json"}
HTMX = {"HTTP_HX_REQUEST": "true"}
