"""Time to first action: the claimer's first message or task change after the claim."""

import pytest

from escalations import actions
from escalations.models import Handoff, HandoffEvent
from flowpilot.models import Session
from flowpilot.signals import session_activity
from resolutionflow.models import OutboxEvent

pytestmark = pytest.mark.django_db


def act(session, user, kind="message"):
    session_activity.send(sender=Session, session=session, user=user, kind=kind)


def test_the_claimers_first_action_is_stamped_with_its_kind(claimed, sam, session):
    act(session, sam, "task")
    claimed.refresh_from_db()
    assert claimed.first_action_at is not None
    assert claimed.first_action_at >= claimed.claimed_at
    assert claimed.first_action_kind == "task"
    event = HandoffEvent.objects.get(handoff=claimed, kind="first_action")
    assert (event.actor, event.detail) == (sam, {"kind": "task"})


def test_only_the_first_action_counts(claimed, sam, session):
    act(session, sam, "message")
    first = Handoff.objects.get(pk=claimed.pk).first_action_at
    act(session, sam, "task")
    act(session, sam, "ai_analysis")
    claimed.refresh_from_db()
    assert (claimed.first_action_at, claimed.first_action_kind) == (first, "message")
    assert HandoffEvent.objects.filter(handoff=claimed, kind="first_action").count() == 1


def test_the_technicians_activity_is_not_the_first_action(claimed, tess, session):
    act(session, tess)
    claimed.refresh_from_db()
    assert claimed.first_action_at is None


def test_another_seniors_activity_is_not_the_first_action(claimed, sky, ada, session):
    act(session, sky)
    act(session, ada)
    claimed.refresh_from_db()
    assert claimed.first_action_at is None


def test_activity_before_anyone_claims_changes_nothing(handoff, sam, session):
    assert actions.record_first_action(session=session, user=sam, kind="message") is False
    handoff.refresh_from_db()
    assert handoff.first_action_at is None
    assert not HandoffEvent.objects.filter(kind="first_action").exists()


def test_a_session_that_was_never_escalated_is_ignored(sam, tess):
    from tests.escalations.conftest import make_session

    session = make_session(tess)
    assert actions.record_first_action(session=session, user=sam, kind="message") is False


def test_after_a_release_the_new_claimer_gets_a_fresh_first_action(claimed, sam, sky, session):
    act(session, sam)
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    actions.claim_handoff(handoff_id=reopened.pk, user=sky)
    act(session, sky, "task")
    reopened.refresh_from_db()
    assert reopened.first_action_kind == "task"
    assert reopened.first_action_at is not None


def test_the_first_action_is_announced_on_the_handoff_and_the_queue(claimed, sam, session):
    act(session, sam)
    events = OutboxEvent.objects.filter(event_type="first-action")
    assert {event.channel for event in events} == {
        f"handoff-{claimed.pk}",
        f"queue-{claimed.account_id}",
    }
    data = events.first().data
    assert data["handoff"] == str(claimed.pk)
    assert data["kind"] == "message"
    assert data["seconds"] >= 0


def test_recording_costs_one_query_when_there_is_nothing_to_record(
    claimed, tess, session, django_assert_num_queries
):
    # Every chat message passes here: the common case is one UPDATE matching nothing
    # (inside a savepoint).
    with django_assert_num_queries(3):  # SAVEPOINT, UPDATE, RELEASE SAVEPOINT
        actions.record_first_action(session=session, user=tess, kind="message")
