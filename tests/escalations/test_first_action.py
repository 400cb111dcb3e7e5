"""Time to first action: the claimer's own first work after the claim (issue 15).

A message they write, a step whose status or outcome they record, a step they add by hand.
Never "Get AI analysis", "Open in Tasks panel", views, copies, FlowPilot, or anyone else.
"""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from escalations import actions
from escalations.models import Handoff, HandoffEvent
from flowpilot import actions as flowpilot_actions
from flowpilot.models import Message, MessageRole, Session, Task, TaskSource, TaskStatus
from flowpilot.signals import session_activity
from resolutionflow.models import OutboxEvent
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.django_db


def act(session, user, kind="message"):
    session_activity.send(sender=Session, session=session, user=user, kind=kind)


def test_the_claimers_first_action_is_stamped_with_its_kind(claimed, sam, session):
    act(session, sam, "task_recorded")
    claimed.refresh_from_db()
    assert claimed.first_action_at is not None
    assert claimed.first_action_at >= claimed.claimed_at
    assert claimed.first_action_kind == "task_recorded"
    event = HandoffEvent.objects.get(handoff=claimed, kind="first_action")
    assert (event.actor, event.detail) == (sam, {"kind": "task_recorded"})


def test_only_the_first_action_counts(claimed, sam, session):
    act(session, sam, "message")
    first = Handoff.objects.get(pk=claimed.pk).first_action_at
    act(session, sam, "task_recorded")
    act(session, sam, "task_added")
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
    act(session, sky, "task_added")
    reopened.refresh_from_db()
    assert reopened.first_action_kind == "task_added"
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


# -- through the real actions, on a clock --------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() under the test's control: ``clock.advance(seconds)``."""

    class Clock:
        now = timezone.now().replace(microsecond=0)

        def advance(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

    instance = Clock()
    monkeypatch.setattr(timezone, "now", lambda: instance.now)
    return instance


def seconds_to_first_action(handoff) -> float | None:
    handoff.refresh_from_db()
    if handoff.first_action_at is None:
        return None
    return (handoff.first_action_at - handoff.claimed_at).total_seconds()


def test_ai_analysis_then_a_message_90_s_later_records_90_s_kind_message(clock, handoff, sam):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    clock.advance(0.1)
    actions.post_analysis_briefing(handoff=Handoff.objects.get(pk=handoff.pk), user=sam)
    assert seconds_to_first_action(handoff) is None
    assert handoff.takeover_mode == "analysis"

    clock.advance(89.9)
    flowpilot_actions.post_message(session=handoff.session, user=sam, body="Port 25 is shut")

    assert seconds_to_first_action(handoff) == 90.0
    assert handoff.first_action_kind == "message"


def test_a_step_outcome_recorded_by_the_claimer_counts(clock, claimed, sam, session):
    task = Task.objects.get(session=session, title="Not tried yet")
    clock.advance(42)
    flowpilot_actions.update_task(task=task, user=sam, status="failed", outcome="Same prompt")
    assert seconds_to_first_action(claimed) == 42.0
    assert claimed.first_action_kind == "task_recorded"


def test_an_outcome_alone_is_recorded_work(claimed, sam, session):
    task = Task.objects.get(session=session, title="Not tried yet")
    flowpilot_actions.update_task(task=task, user=sam, status="todo", outcome="Will try at 3pm")
    claimed.refresh_from_db()
    assert claimed.first_action_kind == "task_recorded"


def test_a_step_added_by_hand_counts(clock, claimed, sam, session):
    clock.advance(7)
    flowpilot_actions.add_task(session=session, user=sam, title="Check the SMTP relay")
    assert seconds_to_first_action(claimed) == 7.0
    assert claimed.first_action_kind == "task_added"


def test_flowpilot_views_copies_open_in_tasks_panel_and_moves_never_count(
    client_for, handoff, sam, session
):
    client = client_for(sam)
    response = client.post(
        reverse("escalations:take_over", args=[handoff.pk]), {"mode": "analysis"}
    )
    assert response.status_code == 303  # claimed, FlowPilot briefed and answered
    handoff.refresh_from_db()
    # Views: the handoff screen, the chat page, its claimer panel; copying a command is
    # the browser's clipboard and never reaches the server.
    for url in (
        reverse("escalations:handoff", args=[handoff.pk]),
        reverse("flowpilot:session", args=[session.pk]),
    ):
        assert client.get(url).status_code == 200
    actions.mark_handoff_seen(handoff=handoff, user=sam)
    # "Open in Tasks panel", twice.
    step = actions.assessment_for_display(handoff).next_steps[0]
    actions.open_suggested_step(handoff=handoff, user=sam, title=step["title"])
    actions.open_suggested_step(handoff=handoff, user=sam, title=step["title"])
    # Moving a step, and saving one unchanged.
    task = Task.objects.filter(session=session).order_by("position").last()
    flowpilot_actions.move_task(task=task, user=sam, direction="up")
    flowpilot_actions.update_task(task=task, user=sam, status=task.status)
    # FlowPilot answering the technician.
    flowpilot_actions.post_message(session=session, user=session.owner, body="Any news?")

    assert seconds_to_first_action(handoff) is None
    assert not HandoffEvent.objects.filter(handoff=handoff, kind="first_action").exists()
    assert Task.objects.filter(session=session, source=TaskSource.ASSISTANT).exists()


def test_someone_other_than_the_claimer_never_counts(claimed, tess, session):
    flowpilot_actions.post_message(session=session, user=tess, body="It started again")
    task = Task.objects.get(session=session, title="Not tried yet")
    flowpilot_actions.update_task(task=task, user=tess, status="done", outcome="Rebooted")
    flowpilot_actions.add_task(session=session, user=tess, title="Call the customer")
    assert seconds_to_first_action(claimed) is None


# -- the data migration --------------------------------------------------------------------

migration = importlib.import_module("escalations.migrations.0006_first_action_definition")


def old_style(handoff, claimer, *, kind, after: float) -> None:
    """A row as the old code stamped it: first action ``after`` seconds after the claim."""
    stamped = handoff.claimed_at + timedelta(seconds=after)
    Handoff.objects.filter(pk=handoff.pk).update(first_action_at=stamped, first_action_kind=kind)
    HandoffEvent.objects.create(
        handoff=handoff,
        kind="first_action",
        actor=claimer,
        created_at=stamped,
        detail={"kind": kind},
    )


def backdate(model, pk, **fields) -> None:
    model.objects.filter(pk=pk).update(**fields)


def test_the_migration_recomputes_old_rows(sam, sky, tess):
    # 1. "Get AI analysis" stamped at 0.1 s; the claimer wrote 90 s after the claim.
    analysed = escalate(make_session(tess))
    analysed = actions.claim_handoff(handoff_id=analysed.pk, user=sam)
    old_style(analysed, sam, kind="ai_analysis", after=0.1)
    briefing = Message.objects.create(
        session=analysed.session,
        role=MessageRole.USER,
        author=sam,
        body=migration.BRIEFING_PREFIX + " Please analyse it.",
    )
    written = Message.objects.create(
        session=analysed.session, role=MessageRole.USER, author=sam, body="Port 25 is shut"
    )
    backdate(Message, briefing.pk, created_at=analysed.claimed_at + timedelta(seconds=0.1))
    backdate(Message, written.pk, created_at=analysed.claimed_at + timedelta(seconds=90))

    # 2. "Open in Tasks panel" stamped as a task at 2.7 s; nothing else: no action yet.
    opened = escalate(make_session(tess))
    opened = actions.claim_handoff(handoff_id=opened.pk, user=sam)
    step = actions.assessment_for_display(opened).next_steps[0]
    old_style(opened, sam, kind="task", after=2.7)
    suggested = Task.objects.create(
        session=opened.session, title=step["title"], created_by=sam, position=50
    )
    at = opened.claimed_at + timedelta(seconds=2.7)
    backdate(Task, suggested.pk, created_at=at, updated_at=at)

    # 3. A step result recorded by the claimer at 30 s (the old stamp says who; the task when).
    recorded = escalate(make_session(tess))
    recorded = actions.claim_handoff(handoff_id=recorded.pk, user=sky)
    old_style(recorded, sky, kind="task", after=30)
    task = Task.objects.get(session=recorded.session, title="Not tried yet")
    backdate(
        Task,
        task.pk,
        status=TaskStatus.FAILED,
        outcome="No change",
        updated_at=recorded.claimed_at + timedelta(seconds=30),
    )

    # 4. Released and re-queued: the new handoff kept its release time as created_at.
    released = escalate(make_session(tess))
    first_escalation = released.created_at - timedelta(minutes=12)
    backdate(Handoff, released.pk, created_at=first_escalation)
    actions.claim_handoff(handoff_id=released.pk, user=sam)
    reopened = actions.release_handoff(handoff_id=released.pk, user=sam)
    backdate(Handoff, reopened.pk, created_at=timezone.now())

    migration.keep_first_escalation_time(apps, None)
    migration.recompute_first_actions(apps, None)

    analysed.refresh_from_db()
    assert (analysed.first_action_kind, analysed.takeover_mode) == ("message", "analysis")
    assert seconds_to_first_action(analysed) == 90.0
    event = HandoffEvent.objects.get(handoff=analysed, kind="first_action")
    assert (event.created_at, event.detail["kind"]) == (analysed.first_action_at, "message")

    opened.refresh_from_db()
    assert (opened.first_action_at, opened.first_action_kind) == (None, "")
    assert opened.takeover_mode == "self"
    assert not HandoffEvent.objects.filter(handoff=opened, kind="first_action").exists()

    assert seconds_to_first_action(recorded) == 30.0
    assert recorded.first_action_kind == "task_recorded"

    reopened.refresh_from_db()
    assert reopened.created_at == first_escalation
