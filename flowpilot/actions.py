"""Every FlowPilot write: sessions, messages, the assistant's replies and the task lane.

Each action checks that the user may write to the session (owner while active or
escalated, the claimer while escalated, nobody once resolved) under a row lock, and every
action a person takes in a session sends ``flowpilot.signals.session_activity`` inside
its transaction, so the handoff manager can record a claimer's first action.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max

from flowpilot.assistants import Assistant, ProposedStep, Reply, get_assistant
from flowpilot.models import (
    Message,
    MessageRole,
    Session,
    SessionStatus,
    Task,
    TaskSource,
    TaskStatus,
)
from flowpilot.queries import can_write, conversation_for
from flowpilot.signals import session_activity
from flowpilot.steps import (
    DETAIL_MAX,
    TITLE_MAX,
    clean_text,
    is_shell,
    title_key,
    with_visible_command,
)

log = logging.getLogger(__name__)

ASSISTANT_FAILED_TEXT = (
    "FlowPilot could not answer just now. Your message is saved; send another message to try again."
)


class SessionReadOnly(PermissionDenied):
    """The user may read this session but not change it (not theirs, or resolved)."""


@dataclass(frozen=True)
class LaneStep:
    """A step the assistant proposed and the lane task it maps to."""

    step: ProposedStep
    task: Task
    added: bool  # False when a task with the same title was already in the lane


@dataclass(frozen=True)
class Exchange:
    """What one round with the assistant stored."""

    message: Message | None  # the user's message; None for a session's opening reply
    reply: Message
    steps: tuple[LaneStep, ...]

    @property
    def added_tasks(self) -> list[Task]:
        return [lane_step.task for lane_step in self.steps if lane_step.added]


def _clean(text: str, limit: int) -> str:
    """Assistant output made storable: no control characters, clipped to the column."""
    return clean_text(text, limit)


def _lock_for_writing(session: Session, user) -> Session:
    """Lock the session row, refresh its status and check ``user`` may write to it.

    The status is re-read under the lock so a session resolved or claimed a moment ago
    is judged by its current state, not by the copy the view loaded.
    """
    current = (
        Session.objects.select_for_update()
        .only("status", "escalated_to_id", "owner_id", "account_id")
        .get(pk=session.pk)
    )
    session.status = current.status
    session.escalated_to_id = current.escalated_to_id
    check_can_write(session, user)
    return session


class NotResolvable(Exception):
    """The session cannot be closed from the chat (it is escalated, or closed already)."""


@transaction.atomic
def resolve_session(*, session: Session, user, note: str = "") -> Session:
    """The technician fixed it without help: close their active session, with a note.

    Only the owner of an active session: an escalated one is resolved through its handoff
    (the senior who has it), a resolved one stays as it is. The note becomes a line in the
    chat, so whoever reads the session later sees what fixed it.
    """
    _lock_for_writing(session, user)
    if session.status != SessionStatus.ACTIVE or session.owner_id != user.pk:
        raise NotResolvable(
            "This session is escalated: the senior who has it resolves it."
            if session.status == SessionStatus.ESCALATED
            else "Only the technician working this session can mark it resolved."
        )
    session.status = SessionStatus.RESOLVED
    session.save(update_fields=["status", "updated_at"])
    text = f"{user.name} marked this resolved."
    if note.strip():
        text += f" What fixed it: {note.strip()}"
    post_system_line(session_id=session.pk, text=text)
    return session


def post_system_line(*, session_id: int, text: str) -> Message:
    """A line in the session's chat that says what happened to it (resolved, released…).

    The one writer of system lines, for both apps: no one posted it, so it is no one's
    first action and sends no activity signal. Runs inside the caller's transaction.
    """
    return Message.objects.create(
        session_id=session_id, role=MessageRole.SYSTEM, body=_clean(text, 20_000)
    )


def check_can_write(session: Session, user) -> None:
    """Raise ``SessionReadOnly`` (a 403) unless ``user`` may write to ``session``.

    Views call it before validating input, so a reader learns nothing from field errors;
    actions call it again under the row lock.
    """
    if can_write(session, user):
        return
    if session.status == SessionStatus.RESOLVED:
        raise SessionReadOnly("This session is resolved; it is read-only.")
    if session.status == SessionStatus.ESCALATED:
        raise SessionReadOnly(
            "This session is escalated; only its technician and the senior who claimed it "
            "can change it."
        )
    raise SessionReadOnly("Only the technician working this session can change it.")


def _touch(session: Session) -> None:
    """Move the session up the lists: updated_at is "last activity"."""
    session.save(update_fields=["updated_at"])


def _activity(session: Session, user, kind: str) -> None:
    """Tell the handoff manager what happened (``flowpilot.signals.ACTIVITY_KINDS``)."""
    session_activity.send(sender=Session, session=session, user=user, kind=kind)


@transaction.atomic
def start_session(*, user, problem: str, customer: str = "", device: str = "") -> Session:
    """Open a session owned by ``user`` in their account."""
    if user.account_id is None:
        raise PermissionDenied("Only members of an account can start a session.")
    session = Session.objects.create(
        account_id=user.account_id,
        owner=user,
        problem=problem,
        customer=customer,
        device=device,
    )
    _activity(session, user, "message")
    return session


def post_message(
    *,
    session: Session,
    user,
    body: str,
    assistant: Assistant | None = None,
    kind: Literal["message", "briefing"] = "message",
) -> Exchange:
    """Store the user's message, ask the assistant, store its reply and proposed steps.

    ``kind`` "briefing" marks the handoff briefing that "Get AI analysis" posts in the
    claimer's name: a button press, not something the claimer wrote.

    Deliberately not one transaction: the assistant may take seconds (Claude), and a
    write transaction held that long would block every other writer (on SQLite, the
    whole database). The user's message commits first; the reply commits on its own.
    """
    message = _store_user_message(session=session, user=user, body=body, kind=kind)
    return _answer(session=session, message=message, assistant=assistant)


def post_note(*, session: Session, user, body: str) -> Message:
    """Store a message for the people in the session, without asking the assistant.

    The senior who took an escalated session over talks to the technician this way by
    default (they ask FlowPilot explicitly); the technician's page shows it live through
    the same activity signal as any message.
    """
    return _store_user_message(session=session, user=user, body=body, kind="message")


def answer(*, session: Session, assistant: Assistant | None = None) -> Exchange:
    """Ask the assistant about the session as it stands (the opening reply of a session)."""
    return _answer(session=session, message=None, assistant=assistant)


@transaction.atomic
def _store_user_message(*, session: Session, user, body: str, kind: str) -> Message:
    _lock_for_writing(session, user)
    message = Message.objects.create(session=session, role=MessageRole.USER, author=user, body=body)
    _touch(session)
    _activity(session, user, kind)
    return message


def _answer(*, session: Session, message: Message | None, assistant: Assistant | None) -> Exchange:
    engine = assistant or get_assistant()
    try:
        reply = engine.reply(conversation_for(session))
    except Exception:
        # Both engines promise not to raise; if one does anyway, the user still gets an
        # answer (and their message is already saved) rather than an error page.
        log.exception("FlowPilot assistant %s failed on session %s", engine, session.pk)
        reply = Reply(text=ASSISTANT_FAILED_TEXT, engine="none")
    return _store_reply(session=session, message=message, reply=reply)


@transaction.atomic
def _store_reply(*, session: Session, message: Message | None, reply: Reply) -> Exchange:
    """Store the reply and add its steps to the lane, skipping titles already there."""
    # Lock the row so two replies landing at once cannot add the same step twice.
    current = Session.objects.select_for_update().only("status").get(pk=session.pk)
    # Resolved while the assistant was thinking: keep its answer, but the lane stays closed.
    proposed = () if current.status == SessionStatus.RESOLVED else reply.steps
    # FlowPilot answered (whose message, if any): whoever follows the session sees it.
    _activity(session, message.author if message else None, "reply")
    reply_message = Message.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        body=_clean(reply.text, 20_000) or "…",
        engine=_clean(reply.engine, 30),
        note=_clean(reply.note, 300),
    )
    lane = {title_key(task.title): task for task in session.tasks.all()}
    position = (session.tasks.aggregate(last=Max("position"))["last"] or 0) + 1
    steps: list[LaneStep] = []
    new_tasks: list[Task] = []
    for step in proposed:
        title = _clean(step.title, TITLE_MAX)
        key = title_key(title)
        if not key:
            continue
        if key in lane:
            steps.append(LaneStep(step=step, task=lane[key], added=False))
            continue
        # Invisible characters leave the command with a note in the detail saying so.
        visible = with_visible_command(
            {"detail": _clean(step.detail, DETAIL_MAX), "command": step.command}
        )
        command, detail = visible["command"], visible["detail"]
        task = Task(
            session=session,
            position=position,
            title=title,
            detail=detail,
            command=command,
            shell=step.shell if command and is_shell(step.shell) else "",
            source=TaskSource.ASSISTANT,
        )
        position += 1
        lane[key] = task
        new_tasks.append(task)
        steps.append(LaneStep(step=step, task=task, added=True))
    Task.objects.bulk_create(new_tasks)
    _touch(session)
    return Exchange(message=message, reply=reply_message, steps=tuple(steps))


@transaction.atomic
def add_task(
    *,
    session: Session,
    user,
    title: str,
    detail: str = "",
    command: str = "",
    shell: str = "",
    kind: Literal["task_added", "step_opened"] = "task_added",
) -> Task:
    """Add a step at the end of the lane: typed by hand, or (``kind`` "step_opened") a
    suggested step the claimer put there with "Open in Tasks panel"."""
    _lock_for_writing(session, user)
    position = (session.tasks.aggregate(last=Max("position"))["last"] or 0) + 1
    task = Task.objects.create(
        session=session,
        position=position,
        title=title,
        detail=detail,
        command=command,
        shell=shell if command and is_shell(shell) else "",
        source=TaskSource.MANUAL,
        created_by=user,
    )
    _touch(session)
    _activity(session, user, kind)
    return task


@transaction.atomic
def update_task(*, task: Task, user, status: str, outcome: str | None = None) -> Task:
    """Set a task's status and, when given, its outcome note ("" clears it)."""
    if status not in TaskStatus.values:
        raise ValueError(f"Unknown task status {status!r}")
    session = task.session
    _lock_for_writing(session, user)
    # Recorded = a result written down: a status other than "to do" set, or an outcome.
    recorded = (status != task.status and status != TaskStatus.TODO) or bool(
        outcome and outcome != task.outcome
    )
    task.status = status
    fields = ["status", "updated_at"]
    if outcome is not None:
        task.outcome = outcome
        fields.append("outcome")
    task.save(update_fields=fields)
    _touch(session)
    _activity(session, user, "task_recorded" if recorded else "task_unchanged")
    return task


@transaction.atomic
def move_task(*, task: Task, user, direction: Literal["up", "down"]) -> Task:
    """Swap a task with its neighbour above or below; the lane is renumbered 1..n."""
    session = task.session
    _lock_for_writing(session, user)
    lane = list(session.tasks.order_by("position", "id"))
    index = next(i for i, other in enumerate(lane) if other.pk == task.pk)
    target = index - 1 if direction == "up" else index + 1
    if 0 <= target < len(lane):
        lane[index], lane[target] = lane[target], lane[index]
    changed = []
    for position, other in enumerate(lane, start=1):
        if other.position != position:
            other.position = position
            changed.append(other)
    Task.objects.bulk_update(changed, ["position"])
    task.position = next(other.position for other in lane if other.pk == task.pk)
    _touch(session)
    _activity(session, user, "task_moved")
    return task
