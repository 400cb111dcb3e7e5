"""The handoff manager: escalate, claim, release, resolve, record the first action, and the
claimer's work on the handoff (brief FlowPilot, open a suggested step in the lane).

Every change of a handoff goes through one function here, in one transaction that writes
the handoff, its HandoffEvent, the session's escalation state, the notifications and the
outbox events; everything that leaves the database (events, tasks) leaves after commit.

Races are settled by the database, never by reading first:
- a claim is one conditional ``UPDATE ... WHERE state = 'open' AND claimed_by IS NULL``;
  the row count says who won;
- escalate locks the session row, and the partial unique constraint
  ``one_live_handoff_per_session`` backs it up: a concurrent duplicate becomes
  ``AlreadyEscalated``, never an IntegrityError.

Refusals are typed errors (``HandoffError`` subclasses) that views map to 403 / 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from escalations import notifications
from escalations.assessment import (
    assessment_for_display,
    queue_refresh,
    start_assessment_on_commit,
    validate_assessment,
)
from escalations.channels import handoff_channel, queue_channel
from escalations.models import (
    REALERT_DEFAULT_MINUTES,
    REALERT_MAX_MINUTES,
    FirstActionKind,
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    HandoffState,
    HandoffView,
    Notification,
    RealertPolicy,
    TakeoverMode,
    Urgency,
)
from escalations.signals import handoff_changed
from escalations.streams import send_event_on_commit, send_events_on_commit
from flowpilot import actions as flowpilot_actions
from flowpilot.models import Message, MessageRole, Session, SessionStatus, Task
from flowpilot.steps import clip, title_key, with_visible_command
from resolutionflow.models import User
from resolutionflow.people import person_json

REASON_MAX_LENGTH = 2000
RESOLUTION_NOTE_MAX_LENGTH = 4000
# How much of the chat travels in the escalation package.
PACKAGE_MESSAGES = 12
PACKAGE_MESSAGE_CHARS = 2000


def _changed(*handoffs: Handoff) -> None:
    """Tell the listeners (analytics' rollups) which handoffs this transaction changed."""
    for handoff in handoffs:
        handoff_changed.send(sender=Handoff, handoff=handoff)


class HandoffError(Exception):
    """A refused handoff change. ``code`` is the machine-readable reason for API clients."""

    code = "handoff_error"
    status = 409

    def __init__(self, message: str = "", *, handoff: Handoff | None = None) -> None:
        super().__init__(message or self.code)
        self.handoff = handoff


class HandoffForbidden(HandoffError):
    """The user may not do this to this handoff (403)."""

    status = 403

    def __init__(self, code: str, message: str = "", *, handoff: Handoff | None = None) -> None:
        self.code = code
        super().__init__(message or code, handoff=handoff)


class AlreadyEscalated(HandoffError):
    """The session already has a live (open or claimed) handoff: ``handoff``."""

    code = "already_escalated"


class SessionResolved(HandoffError):
    """A resolved session is closed; a new problem gets a new session."""

    code = "session_resolved"


class AlreadyClaimed(HandoffError):
    """Someone else claimed it first: ``handoff.claimed_by``."""

    code = "already_claimed"


class NotOpen(HandoffError):
    """Only an open handoff can be claimed (this one was released or resolved)."""

    code = "not_open"


class NotClaimed(HandoffError):
    """Only a claimed handoff can be released."""

    code = "not_claimed"


class HandoffClosed(HandoffError):
    """A released or resolved handoff cannot be resolved again."""

    code = "closed"


@dataclass(frozen=True)
class Escalation:
    handoff: Handoff
    notified: int


# --- escalate ------------------------------------------------------------------------------


@transaction.atomic
def escalate(
    *, session: Session, user: User, reason: str, urgency: str = Urgency.NORMAL
) -> Escalation:
    """Put ``session`` in its account's queue: the one way to escalate, whatever the button.

    Only the session's owner escalates it. Raises AlreadyEscalated while a handoff of the
    session is live, SessionResolved for a resolved session.
    """
    reason = _clean_reason(reason)
    if urgency not in Urgency.values:
        raise ValueError(f"unknown urgency {urgency!r}")
    if user.account_id is None or session.account_id != user.account_id:
        raise HandoffForbidden("not_owner", "Only the session's owner can escalate it.")
    if session.owner_id != user.pk:
        raise HandoffForbidden("not_owner", "Only the session's owner can escalate it.")

    # Serialises escalations (and releases) of one session; SQLite's IMMEDIATE
    # transactions serialise every writer anyway.
    session = Session.objects.select_for_update().get(pk=session.pk)
    if session.status == SessionStatus.RESOLVED:
        raise SessionResolved("This session is resolved.")
    live = _live_handoff_of(session.pk)
    if live is not None:
        raise AlreadyEscalated("This session is already escalated.", handoff=live)

    now = timezone.now()
    handoff = Handoff(
        id=uuid.uuid4(),
        account_id=session.account_id,
        session=session,
        escalated_by=user,
        reason=reason,
        urgency=urgency,
        created_at=now,
    )
    handoff.escalation_package = build_escalation_package(handoff)
    _insert_live_handoff(handoff)
    HandoffEvent.objects.create(
        handoff=handoff,
        kind=HandoffEventKind.ESCALATED,
        actor=user,
        created_at=now,
        detail={"urgency": urgency},
    )
    Session.objects.filter(pk=session.pk).update(
        status=SessionStatus.ESCALATED, escalated_to=None, updated_at=now
    )
    session.status, session.escalated_to = SessionStatus.ESCALATED, None

    notified = notifications.handoff_escalated(handoff)
    _changed(handoff)
    send_event_on_commit(
        queue_channel(handoff.account_id), "handoff-escalated", _queue_event_data(handoff)
    )
    _start_assessment(handoff)
    return Escalation(handoff=handoff, notified=notified)


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    if len(reason) > REASON_MAX_LENGTH:
        raise ValueError(f"the reason is longer than {REASON_MAX_LENGTH} characters")
    return reason


def _live_handoff_of(session_id: int) -> Handoff | None:
    return (
        Handoff.objects.live()
        .filter(session_id=session_id)
        .select_related("claimed_by", "escalated_by")
        .first()
    )


def _insert_live_handoff(handoff: Handoff) -> None:
    """Insert a new open handoff; a concurrent one for the session → AlreadyEscalated."""
    try:
        with transaction.atomic():  # a savepoint: the outer transaction stays usable
            handoff.save(force_insert=True)
    except IntegrityError:
        live = _live_handoff_of(handoff.session_id)
        if live is None:
            raise
        raise AlreadyEscalated("This session is already escalated.", handoff=live) from None


def build_escalation_package(handoff: Handoff) -> dict:
    """The compatibility payload: a JSON snapshot of the session as it was escalated.

    Carries the handoff's own id, so the handoff must have its UUID before it is written.
    """
    session = handoff.session
    tried = [
        {
            "title": task.title,
            "status": task.status,
            "outcome": task.outcome,
            "command": task.command,
        }
        for task in Task.objects.filter(session=session).tried()
    ]
    recent = list(
        Message.objects.filter(session=session)
        .exclude(role=MessageRole.SYSTEM)
        .select_related("author")
        .order_by("-created_at", "-id")[:PACKAGE_MESSAGES]
    )
    chat = reverse("flowpilot:session", args=[session.pk])
    messages = [
        {
            "id": message.pk,
            "role": message.role,
            "author": message.author.name if message.author else None,
            # A long message is cut with "…", never silently; the whole of it stays in the
            # chat at ``url`` (and the session's JSON).
            "body": clip(message.body, PACKAGE_MESSAGE_CHARS),
            "truncated": len(message.body) > PACKAGE_MESSAGE_CHARS,
            "url": f"{chat}#message-{message.pk}",
            "at": message.created_at.isoformat(),
        }
        for message in reversed(recent)
    ]
    return {
        "version": 1,
        "handoff": str(handoff.pk),
        "session": session.pk,
        "reopened_from": str(handoff.reopened_from_id) if handoff.reopened_from_id else None,
        "escalated_by": person_json(handoff.escalated_by),
        "escalated_at": handoff.created_at.isoformat(),
        "reason": handoff.reason,
        "urgency": handoff.urgency,
        "problem": session.problem,
        "customer": session.customer,
        "device": session.device,
        "steps_tried": tried,
        "last_messages": messages,
    }


def _start_assessment(handoff: Handoff) -> None:
    """Store the offline assessment now and ask the AI engine after commit."""
    start_assessment_on_commit(handoff)


# --- claim ---------------------------------------------------------------------------------


def claim_handoff(*, handoff_id: uuid.UUID | str, user: User) -> Handoff:
    """Make ``user`` the one senior working ``handoff_id``: exactly one concurrent claimer wins.

    Raises HandoffForbidden ("role" for technicians, "own_handoff" for its escalator),
    AlreadyClaimed (with the winner) or NotOpen (released / resolved). Handoffs of other
    accounts raise Handoff.DoesNotExist. A lost claim is recorded (HandoffEvent claim_lost)
    even though the call raises.
    """
    if user.account_id is None or not user.is_senior:
        raise HandoffForbidden("role", "Only engineers and admins can claim escalations.")
    handoff, refusal = _claim(handoff_id, user)
    if refusal is not None:
        raise refusal
    return handoff


@transaction.atomic
def _claim(handoff_id, user: User) -> tuple[Handoff, HandoffError | None]:
    now = timezone.now()
    won = (
        Handoff.objects.filter(
            pk=handoff_id,
            account_id=user.account_id,
            state=HandoffState.OPEN,
            claimed_by__isnull=True,
        )
        .exclude(escalated_by=user)
        .update(state=HandoffState.CLAIMED, claimed_by=user, claimed_at=now)
    )
    # Read after the UPDATE, never before: a loser sees the winner's committed claim.
    handoff = (
        Handoff.objects.select_related("session", "escalated_by", "claimed_by")
        .defer("escalation_package", "assessment")
        .get(pk=handoff_id, account_id=user.account_id)
    )
    if not won:
        return handoff, _claim_refusal(handoff, user)

    HandoffEvent.objects.create(
        handoff=handoff, kind=HandoffEventKind.CLAIMED, actor=user, created_at=now
    )
    Session.objects.filter(pk=handoff.session_id).update(escalated_to=user, updated_at=now)
    handoff.session.escalated_to = user
    _changed(handoff)
    data = _queue_event_data(handoff) | {"claimed_by": person_json(user)}
    send_events_on_commit(
        [
            (queue_channel(handoff.account_id), "handoff-claimed", data),
            (handoff_channel(handoff.pk), "handoff-claimed", data),
            *notifications.handoff_claimed(handoff),
        ]
    )
    return handoff, None


def _claim_refusal(handoff: Handoff, user: User) -> HandoffError:
    if handoff.escalated_by_id == user.pk:
        return HandoffForbidden(
            "own_handoff", "You escalated this one; someone else picks it up.", handoff=handoff
        )
    if handoff.state == HandoffState.CLAIMED:
        HandoffEvent.objects.create(
            handoff=handoff,
            kind=HandoffEventKind.CLAIM_LOST,
            actor=user,
            detail={"claimed_by": handoff.claimed_by_id},
        )
        return AlreadyClaimed(f"Already picked up by {handoff.claimed_by.name}", handoff=handoff)
    return NotOpen(f"This handoff is {handoff.get_state_display().lower()}.", handoff=handoff)


# --- release and resolve -------------------------------------------------------------------


@transaction.atomic
def release_handoff(*, handoff_id: uuid.UUID | str, user: User) -> Handoff:
    """Give a claimed handoff back: it closes as released and the session goes back to the
    queue as a new open handoff (same escalator, reason, urgency and escalation time: its
    wait keeps counting from the first escalation). Returns the new one; its ESCALATED event
    says when it was re-queued.

    Allowed to the claimer and the account's admins.
    """
    handoff = _lock_for_change(handoff_id, user)
    if handoff.state != HandoffState.CLAIMED:
        raise NotClaimed(f"This handoff is {handoff.get_state_display().lower()}.", handoff=handoff)

    now = timezone.now()
    handoff.state, handoff.released_at = HandoffState.RELEASED, now
    handoff.save(update_fields=["state", "released_at"])
    HandoffEvent.objects.create(
        handoff=handoff, kind=HandoffEventKind.RELEASED, actor=user, created_at=now
    )

    session = Session.objects.select_for_update().get(pk=handoff.session_id)
    reopened = Handoff(
        id=uuid.uuid4(),
        account_id=handoff.account_id,
        session=session,
        escalated_by=handoff.escalated_by,
        reason=handoff.reason,
        urgency=handoff.urgency,
        reopened_from=handoff,
        # Waits count from the first escalation: the problem has waited since then. Its
        # re-alerts count from now: it was claimed until now, and the seniors were just
        # told it is back (``notifications.handoff_released``).
        created_at=handoff.created_at,
        queued_at=now,
    )
    reopened.escalation_package = build_escalation_package(reopened)
    _insert_live_handoff(reopened)
    HandoffEvent.objects.create(
        handoff=reopened,
        kind=HandoffEventKind.ESCALATED,
        actor=user,
        created_at=now,
        detail={"reopened_from": str(handoff.pk), "urgency": reopened.urgency},
    )
    Session.objects.filter(pk=session.pk).update(
        status=SessionStatus.ESCALATED, escalated_to=None, updated_at=now
    )

    notifications.handoff_released(reopened, released_by=user)
    _changed(handoff, reopened)
    _post_system_note(session.pk, f"{user.name} released this back to the escalation queue.")
    data = _queue_event_data(reopened) | {"released": str(handoff.pk)}
    send_events_on_commit(
        [
            (queue_channel(handoff.account_id), "handoff-released", data),
            (
                handoff_channel(handoff.pk),
                "handoff-released",
                {"handoff": str(handoff.pk), "reopened_as": str(reopened.pk)},
            ),
        ]
    )
    _start_assessment(reopened)
    return reopened


@transaction.atomic
def resolve_handoff(*, handoff_id: uuid.UUID | str, user: User, note: str = "") -> Handoff:
    """Close a live handoff as resolved and mark its session resolved.

    Allowed to the claimer and the account's admins (an admin may close an unclaimed one).
    """
    note = (note or "").strip()
    if len(note) > RESOLUTION_NOTE_MAX_LENGTH:
        raise ValueError(f"the note is longer than {RESOLUTION_NOTE_MAX_LENGTH} characters")
    handoff = _lock_for_change(handoff_id, user)
    if not handoff.is_live:
        raise HandoffClosed(
            f"This handoff is {handoff.get_state_display().lower()}.", handoff=handoff
        )

    now = timezone.now()
    handoff.state, handoff.resolved_at, handoff.resolution_note = (
        HandoffState.RESOLVED,
        now,
        note,
    )
    handoff.save(update_fields=["state", "resolved_at", "resolution_note"])
    HandoffEvent.objects.create(
        handoff=handoff,
        kind=HandoffEventKind.RESOLVED,
        actor=user,
        created_at=now,
        detail={"note": note} if note else {},
    )
    Session.objects.filter(pk=handoff.session_id).update(
        status=SessionStatus.RESOLVED, updated_at=now
    )
    _post_system_note(
        handoff.session_id,
        f"Resolved by {user.name}." + (f" Resolution: {note}" if note else ""),
    )
    notifications.handoff_resolved(handoff, resolved_by=user)
    _changed(handoff)
    data = _queue_event_data(handoff) | {"resolved_by": person_json(user)}
    send_events_on_commit(
        [
            (queue_channel(handoff.account_id), "handoff-resolved", data),
            (handoff_channel(handoff.pk), "handoff-resolved", data),
        ]
    )
    return handoff


def _post_system_note(session_id: int, text: str) -> None:
    """A line in the session's chat that says what happened to its escalation (written by
    flowpilot's one writer of system lines: it is no one's first action)."""
    flowpilot_actions.post_system_line(session_id=session_id, text=text)


def _lock_for_change(handoff_id, user: User) -> Handoff:
    """The handoff, row-locked, if ``user`` may release or resolve it."""
    if user.account_id is None or not user.is_senior:
        raise HandoffForbidden("role", "Only engineers and admins can do this.")
    handoff = (
        Handoff.objects.select_for_update(of=("self",))
        .select_related("session", "escalated_by", "claimed_by")
        .get(pk=handoff_id, account_id=user.account_id)
    )
    check_can_close(handoff, user)
    return handoff


def check_can_close(handoff: Handoff, user: User) -> None:
    """Raise HandoffForbidden ("not_claimer") unless ``user`` may release or resolve it.

    Views call it before validating input; the actions call it again under the row lock.
    """
    if not can_close(handoff, user):
        raise HandoffForbidden(
            "not_claimer", "Only whoever claimed it, or an admin, can do this.", handoff=handoff
        )


def can_close(handoff: Handoff, user: User) -> bool:
    """Release and resolve belong to the claimer and to the account's admins."""
    if user.account_id != handoff.account_id:
        return False
    return user.is_account_admin or (
        handoff.claimed_by_id is not None and handoff.claimed_by_id == user.pk
    )


# --- the claimer's work: "Get AI analysis", "Open in Tasks panel" ----------------------------


def check_claimer(handoff: Handoff, user: User, *, to: str) -> None:
    """Raise HandoffForbidden ("not_claimer") unless ``user`` holds ``handoff`` now.

    ``to`` finishes the sentence "Only the engineer who claimed this handoff can …".
    """
    if not handoff.is_claimed_by(user):
        raise HandoffForbidden(
            "not_claimer", f"Only the engineer who claimed this handoff can {to}.", handoff=handoff
        )


def post_analysis_briefing(*, handoff: Handoff, user: User) -> flowpilot_actions.Exchange:
    """ "Get AI analysis": brief FlowPilot on the handoff; its answer and steps land in the chat.

    Only the claimer of a claimed handoff. Records the take-over mode ("Get AI analysis"),
    then posts the briefing through flowpilot's ``post_message`` (kind "briefing"), which
    stores the message, asks the assistant and adds its proposed steps to the lane. None of
    it is the claimer's first action: the analysis may shorten the time to their first real
    action, which is the effect to measure, not to count. Like ``post_message`` it is
    deliberately not one transaction: the assistant may take seconds.
    """
    check_claimer(handoff, user, to="brief FlowPilot")
    session = handoff.session
    _record_analysis_request(handoff=handoff, user=user)
    # The briefing is worded with the take-over (which imports this module).
    from escalations.takeover import briefing_text

    body = briefing_text(handoff, assessment_for_display(handoff))
    return flowpilot_actions.post_message(session=session, user=user, body=body, kind="briefing")


@transaction.atomic
def _record_analysis_request(*, handoff: Handoff, user: User) -> None:
    flowpilot_actions.check_can_write(handoff.session, user)
    if Handoff.objects.filter(pk=handoff.pk, state=HandoffState.CLAIMED, claimed_by=user).update(
        takeover_mode=TakeoverMode.ANALYSIS
    ):
        handoff.takeover_mode = TakeoverMode.ANALYSIS
        _changed(handoff)


class StepNotSuggested(LookupError):
    """The step is not (or no longer) among the assessment's next steps."""


@transaction.atomic
def open_suggested_step(*, handoff: Handoff, user: User, title: str) -> tuple[Task, bool]:
    """Put a suggested step in the lane unless a task of that title is there; (task, added).

    Only the claimer of a claimed handoff; raises StepNotSuggested for a title that is not
    among the assessment's next steps. The session row is locked first, so two clicks never
    add the step twice.
    """
    check_claimer(handoff, user, to="add its steps")
    key = title_key(title)
    suggested = assessment_for_display(handoff).next_steps
    step = next((s for s in suggested if key and title_key(s["title"]) == key), None)
    if step is None:
        raise StepNotSuggested(title)
    session = Session.objects.select_for_update().get(pk=handoff.session_id)
    flowpilot_actions.check_can_write(session, user)
    lane = session.tasks.only("id", "title").order_by("position", "id")
    existing = next((task for task in lane if title_key(task.title) == key), None)
    if existing is not None:
        return existing, False
    step = with_visible_command(step)
    task = flowpilot_actions.add_task(
        session=session,
        user=user,
        title=step["title"],
        detail=step["detail"],
        command=step["command"],
        shell=step["shell"],
        kind="step_opened",  # FlowPilot's step, one click: not the claimer's first action
    )
    return task, True


# --- first action and views ------------------------------------------------------------------


def announce_session_activity(*, session: Session, kind: str, by: User | None) -> None:
    """Tell whoever follows an escalated session (its chat page) that it changed.

    Sent on the live handoff's channel, which its escalator and the account's seniors may
    read; inside the caller's transaction, so it leaves only if the change commits. ``by``
    (whose action, or whose message FlowPilot answered) lets that person's own page skip
    it: their own responses updated it already.
    """
    if session.status != SessionStatus.ESCALATED:
        return
    handoff_id = (
        Handoff.objects.live().filter(session_id=session.pk).values_list("pk", flat=True).first()
    )
    if handoff_id is not None:
        send_event_on_commit(
            handoff_channel(handoff_id),
            "session-activity",
            {
                "handoff": str(handoff_id),
                "session": session.pk,
                "kind": kind,
                "by": by.pk if by is not None else None,
            },
        )


# flowpilot's activity kinds that are the claimer's own work on the problem.
FIRST_ACTION_KINDS = frozenset(FirstActionKind.values)


def record_first_action(*, session: Session, user: User | None, kind: str) -> bool:
    """Stamp the claimer's first action in ``session``: a message they wrote, a step whose
    status or outcome they recorded, or a step they added by hand (``FirstActionKind``).

    Set exactly once, by one conditional UPDATE: any other kind of activity (the briefing
    of "Get AI analysis", "Open in Tasks panel", FlowPilot's replies, moves), activity of
    anyone but the claimer, of a session with no claimed handoff, or after the first action
    changes nothing. Returns whether it stamped. Called from flowpilot's
    ``session_activity`` signal, inside flowpilot's transaction.
    """
    if kind not in FIRST_ACTION_KINDS or user is None or not getattr(user, "pk", None):
        return False
    return _stamp_first_action(session=session, user=user, kind=kind)


@transaction.atomic
def _stamp_first_action(*, session: Session, user: User, kind: str) -> bool:
    now = timezone.now()
    stamped = Handoff.objects.filter(
        session_id=session.pk,
        state=HandoffState.CLAIMED,
        claimed_by=user,
        first_action_at__isnull=True,
    ).update(first_action_at=now, first_action_kind=kind)
    if not stamped:
        return False
    handoff = Handoff.objects.get(session_id=session.pk, state=HandoffState.CLAIMED)
    HandoffEvent.objects.create(
        handoff=handoff,
        kind=HandoffEventKind.FIRST_ACTION,
        actor=user,
        created_at=now,
        detail={"kind": kind},
    )
    _changed(handoff)
    data = {
        "handoff": str(handoff.pk),
        "session": handoff.session_id,
        "kind": kind,
        "seconds": round((now - handoff.claimed_at).total_seconds(), 1),
    }
    send_events_on_commit(
        [
            (handoff_channel(handoff.pk), "first-action", data),
            (queue_channel(handoff.account_id), "first-action", data),
        ]
    )
    return True


def mark_handoff_seen(*, handoff: Handoff, user: User) -> None:
    """Remember that ``user`` opened or previewed ``handoff`` (clears the queue's unread dot).

    Idempotent and race-free: one INSERT that ignores the existing row.
    """
    if not user.is_senior or handoff.escalated_by_id == user.pk:
        return
    HandoffView.objects.bulk_create(
        [HandoffView(handoff=handoff, user=user)], ignore_conflicts=True
    )


# --- helpers -------------------------------------------------------------------------------


def mark_notifications_read(*, user: User, notification_id: int | None = None) -> int:
    """Mark one of ``user``'s notifications read, or all of them; return how many changed.

    Only the user's own unread rows are touched, whatever id is asked for.
    """
    unread = Notification.objects.filter(
        recipient=user, account_id=user.account_id, read_at__isnull=True
    )
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())


def _queue_event_data(handoff: Handoff) -> dict:
    """What every queue event says: enough to apply it idempotently by handoff id."""
    return {
        "handoff": str(handoff.pk),
        "session": handoff.session_id,
        "state": handoff.state,
        "urgency": handoff.urgency,
        "escalated_by": handoff.escalated_by_id,
    }


# -- the AI assessment: its two writes to a Handoff ------------------------------------


@transaction.atomic
def store_assessment(
    *,
    handoff_id: Any,
    assessment: dict[str, Any],
    expected_updated_at: datetime | None,
) -> datetime | None:
    """Store ``assessment`` if the handoff's stamp is still ``expected_updated_at``.

    A compare-and-set: an answer computed from an older version (a slow first pass after a
    newer refresh, a task delivered twice) stores nothing. Returns the new stamp, or None
    when nothing was stored. Announces ``assessment`` on the handoff's channel after commit.
    """
    clean = validate_assessment(assessment)
    stamp = timezone.now()
    rows = Handoff.objects.filter(pk=handoff_id)
    if expected_updated_at is None:
        rows = rows.filter(assessment_updated_at__isnull=True)
    else:
        rows = rows.filter(assessment_updated_at=expected_updated_at)
    if not rows.update(assessment=clean, assessment_updated_at=stamp):
        return None
    send_event_on_commit(
        handoff_channel(handoff_id),
        "assessment",
        {"handoff": str(handoff_id), "engine": clean["engine"], "updated_at": stamp.isoformat()},
    )
    return stamp


@dataclass(frozen=True)
class RefreshRequest:
    accepted: bool
    retry_after: int = 0  # seconds until the next refresh is allowed, when refused


@transaction.atomic
def request_assessment_refresh(*, handoff: Handoff) -> RefreshRequest:
    """Regenerate the assessment, at most once per RF_ASSESSMENT_REFRESH_SECONDS per handoff.

    The rate limit is a conditional update of the handoff's stamp, so two clicks (or two
    engineers) at once start one regeneration between them.
    """
    interval = timedelta(seconds=settings.RF_ASSESSMENT_REFRESH_SECONDS)
    now = timezone.now()
    accepted = (
        Handoff.objects.filter(pk=handoff.pk)
        .filter(
            Q(assessment_updated_at__isnull=True) | Q(assessment_updated_at__lte=now - interval)
        )
        .update(assessment_updated_at=now)
    )
    if not accepted:
        last = (
            Handoff.objects.filter(pk=handoff.pk)
            .values_list("assessment_updated_at", flat=True)
            .first()
        )
        wait = (last + interval - now).total_seconds() if last else 1
        return RefreshRequest(accepted=False, retry_after=max(1, int(wait + 0.999)))
    handoff.assessment_updated_at = now
    handoff_id = str(handoff.pk)
    transaction.on_commit(lambda: queue_refresh(handoff_id, now))
    return RefreshRequest(accepted=True)


# --- re-alerts of unclaimed handoffs -----------------------------------------------------------

# One run handles at most this many handoffs per level; the next run (5 s later) the rest.
REALERT_BATCH = 200


@dataclass(frozen=True)
class Realerts:
    """What one re-alert check did: handoffs whose seniors, and whose admins, were told."""

    seniors: list[uuid.UUID]
    admins: list[uuid.UUID]


def realert_minutes(account_id: int) -> dict[str, int]:
    """The account's thresholds in minutes per urgency (the defaults unless admins set them)."""
    policy = RealertPolicy.objects.filter(account_id=account_id).first()
    return policy.minutes() if policy else dict(REALERT_DEFAULT_MINUTES)


@transaction.atomic
def set_realert_policy(*, user: User, high: int, normal: int, low: int) -> RealertPolicy:
    """An admin sets their account's re-alert thresholds (minutes per urgency)."""
    if not user.is_account_admin:
        raise HandoffForbidden("not_admin", "Only an admin of the account sets re-alerts.")
    for minutes in (high, normal, low):
        if not 1 <= minutes <= REALERT_MAX_MINUTES:
            raise ValueError(f"minutes out of range: {minutes}")
    policy, _ = RealertPolicy.objects.update_or_create(
        account_id=user.account_id,
        defaults={"high_minutes": high, "normal_minutes": normal, "low_minutes": low},
    )
    return policy


def _overdue_condition(now: datetime, factor: int) -> Q:
    """Open handoffs that have waited ``factor`` times their account's threshold by ``now``,
    counted from when they entered the queue (a queryset aliased with ``queue_since``)."""
    policies = list(RealertPolicy.objects.all())
    condition = Q(pk__in=[])
    for policy in policies:
        for urgency, minutes in policy.minutes().items():
            condition |= Q(
                account_id=policy.account_id,
                urgency=urgency,
                queue_since__lte=now - timedelta(minutes=factor * minutes),
            )
    defaults = Q(pk__in=[])
    for urgency, minutes in REALERT_DEFAULT_MINUTES.items():
        defaults |= Q(urgency=urgency, queue_since__lte=now - timedelta(minutes=factor * minutes))
    custom = [policy.account_id for policy in policies]
    return condition | (defaults & ~Q(account_id__in=custom))


def realert_overdue_handoffs(*, now: datetime | None = None) -> Realerts:
    """Tell people again about handoffs nobody has claimed: the seniors past the account's
    threshold (the card then says "Overdue"), the admins past twice the threshold.

    Run by the worker's beat with the outbox drain (and by the embedded beat without a
    worker). Exactly once per level per handoff, however many run it at once: each re-alert
    is one conditional UPDATE (the level's field ``IS NULL`` → now) in its own transaction,
    and only the run whose UPDATE changed the row writes the notifications. A handoff past
    both thresholds at once (the worker was down, say) records both levels in that one
    UPDATE and tells the seniors, admins among them, once. Idempotent: a second run finds
    nothing to do. ``now`` is the clock (tests pass their own).
    """
    now = now or timezone.now()
    due = {}
    for field, factor in (("overdue_at", 1), ("admins_alerted_at", 2)):
        due[field] = list(
            Handoff.objects.open()
            .alias(queue_since=Handoff.QUEUE_SINCE)
            .filter(**{f"{field}__isnull": True})
            .filter(_overdue_condition(now, factor))
            .order_by("created_at")
            .values_list("pk", flat=True)[:REALERT_BATCH]
        )
    told = Realerts(seniors=[], admins=[])
    both = set(due["overdue_at"]) & set(due["admins_alerted_at"])
    for handoff_id in due["overdue_at"]:
        fields = ["overdue_at", "admins_alerted_at"] if handoff_id in both else ["overdue_at"]
        if _realert(handoff_id, fields=fields, admins=False, now=now):
            told.seniors.append(handoff_id)
            if handoff_id in both:
                told.admins.append(handoff_id)  # told with the seniors
    for handoff_id in due["admins_alerted_at"]:
        if handoff_id in told.admins:
            continue
        # Its seniors were told before (or just now by another run that saw only their
        # level due): the admins' level is its own alert.
        if _realert(handoff_id, fields=["admins_alerted_at"], admins=True, now=now):
            told.admins.append(handoff_id)
    return told


@transaction.atomic
def _realert(handoff_id: uuid.UUID, *, fields: list[str], admins: bool, now: datetime) -> bool:
    won = Handoff.objects.filter(
        pk=handoff_id,
        state=HandoffState.OPEN,
        **{f"{field}__isnull": True for field in fields},
    ).update(**dict.fromkeys(fields, now))
    if not won:
        return False  # claimed meanwhile, or another run told them
    handoff = Handoff.objects.select_related("session", "escalated_by", "account").get(
        pk=handoff_id
    )
    from resolutionflow.templatetags.rf import waited

    notifications.handoff_overdue(
        handoff, admins=admins, waited=waited(handoff.in_queue_since, now)
    )
    # The queue's cards say "Overdue" (its live refresh hears this).
    data = _queue_event_data(handoff) | {"level": "admins" if admins else "seniors"}
    send_event_on_commit(queue_channel(handoff.account_id), "handoff-overdue", data)
    return True
