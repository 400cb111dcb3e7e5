"""FlowPilot's actions and access rules: who may read, who may write, what gets stored."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from flowpilot import actions
from flowpilot.assistants import Conversation, ProposedStep, Reply
from flowpilot.models import Message, Session, SessionStatus, Task, TaskSource
from flowpilot.queries import can_write, conversation_for, get_session_for_user
from flowpilot.signals import session_activity
from resolutionflow.models import Role, User

pytestmark = pytest.mark.django_db

OUTLOOK = "Outlook keeps asking for a password after the Microsoft 365 migration"


class ScriptedAssistant:
    """Answers with the replies it was given, in order, and remembers what it was shown."""

    name = "scripted"

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.seen: list[Conversation] = []

    def reply(self, conversation: Conversation) -> Reply:
        self.seen.append(conversation)
        return self.replies.pop(0)

    def assess(self, conversation, *, timeout=None):  # pragma: no cover - not used here
        raise AssertionError("these tests never ask for an assessment")


class BrokenAssistant:
    name = "broken"

    def reply(self, conversation: Conversation) -> Reply:
        raise RuntimeError("engine exploded")


def steps(*titles: str) -> tuple[ProposedStep, ...]:
    return tuple(ProposedStep(title=title, detail=f"Why: {title}") for title in titles)


@pytest.fixture
def activity():
    """Every session_activity signal sent during the test, with whether it was in a transaction."""
    sent: list[dict] = []

    def receiver(sender, *, session, user, kind, **kwargs):
        sent.append(
            {
                "session": session,
                "user": user,
                "kind": kind,
                "in_transaction": transaction.get_connection().in_atomic_block,
            }
        )

    session_activity.connect(receiver, dispatch_uid="test-activity")
    yield sent
    session_activity.disconnect(dispatch_uid="test-activity")


@pytest.fixture
def tom(personas):
    """A second Acme technician."""
    return User.objects.create_user(
        username="tom", account=personas["tess"].account, role=Role.TECHNICIAN
    )


@pytest.fixture
def session(tess):
    return actions.start_session(user=tess, problem=OUTLOOK, customer="Acme HQ", device="PC-7")


def set_status(session: Session, status: str, escalated_to=None) -> Session:
    # The handoff manager owns these columns; tests put the session in the state they need.
    Session.objects.filter(pk=session.pk).update(status=status, escalated_to=escalated_to)
    session.refresh_from_db()
    return session


# ---------------------------------------------------------------------------- sessions


def test_start_session_belongs_to_the_owner_and_their_account(tess, activity):
    session = actions.start_session(user=tess, problem=OUTLOOK, customer="Acme HQ", device="PC-7")

    assert session.owner == tess
    assert session.account_id == tess.account_id
    assert (session.problem, session.customer, session.device) == (OUTLOOK, "Acme HQ", "PC-7")
    assert session.status == SessionStatus.ACTIVE
    assert [(a["kind"], a["user"]) for a in activity] == [("message", tess)]


def test_a_user_without_an_account_cannot_start_a_session(db):
    admin = User.objects.create_superuser("root", "root@example.com", "x")
    with pytest.raises(PermissionDenied):
        actions.start_session(user=admin, problem=OUTLOOK)
    assert not Session.objects.exists()


def test_the_opening_answer_fills_the_lane_in_order(session):
    engine = ScriptedAssistant(
        Reply(text="Try these.", steps=steps("One", "Two", "Three"), engine="scripted")
    )

    exchange = actions.answer(session=session, assistant=engine)

    assert exchange.message is None
    assert exchange.reply.role == "assistant"
    assert exchange.reply.engine == "scripted"
    lane = list(session.tasks.order_by("position"))
    assert [t.title for t in lane] == ["One", "Two", "Three"]
    assert [t.position for t in lane] == [1, 2, 3]
    assert {t.source for t in lane} == {TaskSource.ASSISTANT}
    assert engine.seen[0].problem == OUTLOOK
    assert engine.seen[0].customer == "Acme HQ"


def test_the_offline_engine_proposes_at_least_three_steps_for_outlook(session, settings):
    settings.ANTHROPIC_API_KEY = ""
    exchange = actions.answer(session=session)
    assert exchange.reply.engine == "offline"
    assert session.tasks.count() >= 3


# ---------------------------------------------------------------------------- messages


def test_post_message_stores_the_message_then_the_reply(session, tess, activity):
    engine = ScriptedAssistant(Reply(text="**Next**", steps=steps("Flush DNS")))

    exchange = actions.post_message(session=session, user=tess, body="OWA works", assistant=engine)

    stored = list(session.messages.order_by("created_at", "id"))
    assert stored == [exchange.message, exchange.reply]
    assert (stored[0].role, stored[0].author, stored[0].body) == ("user", tess, "OWA works")
    assert (stored[1].role, stored[1].body) == ("assistant", "**Next**")
    # The engine saw the user's message as part of the conversation.
    assert engine.seen[0].messages[-1].text == "OWA works"
    assert engine.seen[0].messages[-1].author == tess.name
    # The person's message, then FlowPilot's answer to that person.
    assert [(a["kind"], a["user"]) for a in activity] == [("message", tess), ("reply", tess)]
    assert activity[-1]["session"] == session


def test_steps_already_in_the_lane_are_not_added_twice(session, tess):
    actions.add_task(session=session, user=tess, title="Clear saved credentials")
    engine = ScriptedAssistant(
        Reply(text="a", steps=steps("clear SAVED credentials.", "New profile", "New  profile"))
    )

    exchange = actions.post_message(session=session, user=tess, body="still", assistant=engine)

    assert [t.title for t in session.tasks.order_by("position")] == [
        "Clear saved credentials",
        "New profile",
    ]
    assert [(s.task.title, s.added) for s in exchange.steps] == [
        ("Clear saved credentials", False),
        ("New profile", True),
        ("New profile", False),
    ]
    assert [t.title for t in exchange.added_tasks] == ["New profile"]


def test_the_assistant_sees_failed_steps_with_their_outcome(session, tess):
    first = ScriptedAssistant(Reply(text="a", steps=steps("Reset password")))
    actions.answer(session=session, assistant=first)
    task = session.tasks.get()
    actions.update_task(task=task, user=tess, status="failed", outcome="Still prompts")
    second = ScriptedAssistant(Reply(text="b"))

    actions.post_message(session=session, user=tess, body="no luck", assistant=second)

    tried = second.seen[0].tasks
    assert [(t.title, t.status, t.outcome) for t in tried] == [
        ("Reset password", "failed", "Still prompts")
    ]


def test_assistant_output_is_made_storable(session, tess):
    engine = ScriptedAssistant(
        Reply(
            text="hello\x00 world",
            # The Step model refuses this; a buggy engine that bypasses it is still cleaned.
            steps=(
                ProposedStep.model_construct(  # noqa: S604 - a shell name
                    title="T" * 500 + "\x07", detail="", command="ipconfig", shell="zsh"
                ),
            ),
            note="n\x00ote",
        )
    )
    exchange = actions.post_message(session=session, user=tess, body="hi", assistant=engine)

    assert exchange.reply.body == "hello world"
    assert exchange.reply.note == "note"
    task = session.tasks.get()
    assert len(task.title) == 200 and task.title.endswith("…")
    assert task.shell == ""  # not a shell we know


def test_a_failing_engine_still_answers_and_keeps_the_message(session, tess):
    exchange = actions.post_message(
        session=session, user=tess, body="help", assistant=BrokenAssistant()
    )
    assert exchange.message.body == "help"
    assert exchange.reply.body == actions.ASSISTANT_FAILED_TEXT
    assert session.messages.count() == 2


# ------------------------------------------------------------------------------- tasks


def test_add_task_goes_to_the_end_and_sends_the_signal(session, tess, activity):
    first = actions.add_task(session=session, user=tess, title="Reboot")
    second = actions.add_task(  # noqa: S604 - a task's shell, not a subprocess
        session=session, user=tess, title="Ping", command="ping 1.1.1.1", shell="cmd"
    )

    assert (first.position, second.position) == (1, 2)
    assert second.source == TaskSource.MANUAL and second.created_by == tess
    assert second.shell == "cmd"
    assert [a["kind"] for a in activity[-2:]] == ["task_added", "task_added"]


def test_update_task_sets_status_and_outcome_and_keeps_outcome_when_not_given(
    session, tess, activity
):
    task = actions.add_task(session=session, user=tess, title="Reboot")

    actions.update_task(task=task, user=tess, status="failed", outcome="No change")
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("failed", "No change")

    actions.update_task(task=task, user=tess, status="done")
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("done", "No change")
    assert activity[-1]["kind"] == "task_recorded"
    actions.update_task(task=task, user=tess, status="done")  # nothing new recorded
    assert activity[-1]["kind"] == "task_unchanged"


def test_update_task_refuses_an_unknown_status(session, tess):
    task = actions.add_task(session=session, user=tess, title="Reboot")
    with pytest.raises(ValueError):
        actions.update_task(task=task, user=tess, status="maybe")


def test_move_task_swaps_neighbours_and_renumbers(session, tess):
    a, b, c = (actions.add_task(session=session, user=tess, title=t) for t in "ABC")

    actions.move_task(task=c, user=tess, direction="up")
    assert [t.title for t in session.tasks.order_by("position")] == ["A", "C", "B"]
    actions.move_task(task=a, user=tess, direction="up")  # already first: nothing moves
    assert [t.title for t in session.tasks.order_by("position")] == ["A", "C", "B"]
    actions.move_task(task=a, user=tess, direction="down")
    lane = list(session.tasks.order_by("position"))
    assert [t.title for t in lane] == ["C", "A", "B"]
    assert [t.position for t in lane] == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_every_activity_signal_is_sent_inside_the_transaction(personas, activity):
    tess = personas["tess"]
    session = actions.start_session(user=tess, problem=OUTLOOK)
    actions.post_message(
        session=session, user=tess, body="hi", assistant=ScriptedAssistant(Reply(text="a"))
    )
    task = actions.add_task(session=session, user=tess, title="Reboot")
    actions.update_task(task=task, user=tess, status="done", outcome="ok")
    actions.move_task(task=task, user=tess, direction="down")

    # Starting the session is its owner's first message; FlowPilot answers only when asked.
    assert [a["kind"] for a in activity] == [
        "message",
        "message",
        "reply",
        "task_added",
        "task_recorded",
        "task_moved",
    ]
    assert all(a["in_transaction"] for a in activity)
    assert all(a["session"].pk == session.pk for a in activity)
    assert all(a["user"] == tess for a in activity)


# ------------------------------------------------------------------------ who may write


def test_only_the_owner_writes_to_an_active_session(session, tess, sam, ada):
    assert can_write(session, tess)
    assert not can_write(session, sam)
    assert not can_write(session, ada)
    with pytest.raises(actions.SessionReadOnly):
        actions.add_task(session=session, user=sam, title="Nope")
    with pytest.raises(actions.SessionReadOnly):
        actions.post_message(
            session=session, user=sam, body="x", assistant=ScriptedAssistant(Reply(text="a"))
        )
    assert not Message.objects.filter(session=session).exists()


def test_while_escalated_the_claimer_and_the_owner_write_and_no_one_else(session, tess, sam, sky):
    set_status(session, SessionStatus.ESCALATED, escalated_to=sam)
    engine = ScriptedAssistant(Reply(text="a"), Reply(text="b"))

    actions.post_message(session=session, user=sam, body="Senior here", assistant=engine)
    actions.post_message(session=session, user=tess, body="Thanks", assistant=engine)
    with pytest.raises(actions.SessionReadOnly):
        actions.add_task(session=session, user=sky, title="Nope")
    assert session.messages.filter(role="user").count() == 2


def test_a_resolved_session_is_read_only_for_everyone(session, tess, sam):
    set_status(session, SessionStatus.RESOLVED)
    for user in (tess, sam):
        assert not can_write(session, user)
        with pytest.raises(actions.SessionReadOnly, match="resolved"):
            actions.add_task(session=session, user=user, title="Nope")


def test_the_write_check_uses_the_current_status_not_the_loaded_copy(session, tess):
    task = actions.add_task(session=session, user=tess, title="Reboot")
    Session.objects.filter(pk=session.pk).update(status=SessionStatus.RESOLVED)
    # `session` in memory still says active: the action re-reads it under the lock.
    with pytest.raises(actions.SessionReadOnly):
        actions.update_task(task=task, user=tess, status="done")
    task.refresh_from_db()
    assert task.status == "todo"


# ------------------------------------------------------------------------ who may read


def test_the_owner_and_seniors_of_the_account_can_read(session, tess, sam, ada):
    for user in (tess, sam, ada):
        assert get_session_for_user(user, session.pk) == session


@pytest.mark.parametrize("who", ["tom", "gil", "gwen"])
def test_other_technicians_and_other_accounts_get_404(session, who, personas, tom):
    user = tom if who == "tom" else personas[who]
    with pytest.raises(Http404):
        get_session_for_user(user, session.pk)


def test_unknown_ids_are_404(tess):
    with pytest.raises(Http404):
        get_session_for_user(tess, 999_999)


def test_conversation_for_carries_the_chat_and_the_lane(session, tess):
    actions.post_message(
        session=session,
        user=tess,
        body="OWA works",
        assistant=ScriptedAssistant(Reply(text="ok", steps=steps("Flush"))),
    )
    conversation = conversation_for(session)
    assert conversation.problem == OUTLOOK
    assert [(line.role, line.text) for line in conversation.messages] == [
        ("user", "OWA works"),
        ("assistant", "ok"),
    ]
    assert [t.title for t in conversation.tasks] == ["Flush"]
    assert Task.objects.filter(session=session).count() == 1


def test_a_reply_landing_after_the_session_was_resolved_adds_no_steps(session, tess):
    class ResolvesWhileThinking:
        name = "slow"

        def reply(self, conversation):
            Session.objects.filter(pk=session.pk).update(status=SessionStatus.RESOLVED)
            return Reply(text="Try this", steps=steps("Late step"))

    exchange = actions.post_message(
        session=session, user=tess, body="hi", assistant=ResolvesWhileThinking()
    )
    assert exchange.reply.body == "Try this"
    assert exchange.steps == ()
    assert not session.tasks.exists()
