"""Reads of escalation data: the queue, the handoff screen, and the access getters.

Getters that check access raise Http404 for anything outside the user's account, so a
foreign id and an unknown id look the same. Lists make a fixed number of queries however
many handoffs they show (annotations, select_related); tests pin the counts.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from escalations.models import (
    URGENCY_RANK,
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    HandoffView,
)
from flowpilot.models import Message, MessageRole, Task, tried_condition
from resolutionflow.models import User

RECENTLY_CLAIMED_LIMIT = 6
LAST_MESSAGES = 6

URGENCY_ORDER = Case(
    *[When(urgency=urgency, then=Value(rank)) for urgency, rank in URGENCY_RANK.items()],
    default=Value(1),
    output_field=IntegerField(),
)


def handoffs_visible_to(user: User):
    """Engineers and admins see their account's handoffs; a technician sees those they
    escalated; people without an account see none."""
    if user.account_id is None:
        return Handoff.objects.none()
    handoffs = Handoff.objects.filter(account_id=user.account_id)
    return handoffs if user.is_senior else handoffs.filter(escalated_by=user)


def get_handoff_for_user(user: User, handoff_id: uuid.UUID | str) -> Handoff:
    """The handoff if ``user`` may see it, with its session and people; else Http404."""
    try:
        return (
            handoffs_visible_to(user)
            .select_related("session", "session__owner", "escalated_by", "claimed_by", "account")
            .get(pk=handoff_id)
        )
    except (Handoff.DoesNotExist, ValueError, TypeError):
        raise Http404("No such handoff") from None


def _with_card_annotations(handoffs, user: User):
    """What a queue card shows, in the same query: steps tried, unread, sort rank."""
    # Cards never show the JSON snapshots; decoding them costs more than the rest of a row.
    handoffs = handoffs.defer("escalation_package", "assessment")
    return handoffs.select_related("session", "escalated_by", "claimed_by").annotate(
        steps_tried=Count(
            "session__tasks", filter=tried_condition("session__tasks__"), distinct=True
        ),
        seen=Exists(HandoffView.objects.filter(handoff=OuterRef("pk"), user=user)),
        urgency_order=URGENCY_ORDER,
    )


def waiting_queue(user: User) -> list[Handoff]:
    """The account's open handoffs for ``user``: high urgency first, then oldest first.

    Never the handoffs ``user`` escalated (nobody picks up their own).
    """
    handoffs = Handoff.objects.open().filter(account_id=user.account_id)
    handoffs = handoffs.exclude(escalated_by=user)
    return list(_with_card_annotations(handoffs, user).order_by("urgency_order", "created_at"))


def recently_claimed(user: User, *, limit: int = RECENTLY_CLAIMED_LIMIT) -> list[Handoff]:
    """The account's latest claims (who, when), newest first, not ``user``'s own handoffs."""
    handoffs = (
        Handoff.objects.filter(account_id=user.account_id, claimed_at__isnull=False)
        .exclude(escalated_by=user)
        .select_related("session", "claimed_by", "escalated_by")
        .defer("escalation_package", "assessment")
        .order_by("-claimed_at")
    )
    return list(handoffs[:limit])


def card_for_user(user: User, handoff_id: uuid.UUID | str) -> Handoff | None:
    """One queue card (the live queue fetches new ones by id); None for its own escalator.

    Http404 outside the user's account.
    """
    handoffs = Handoff.objects.filter(account_id=user.account_id, pk=handoff_id)
    handoff = _with_card_annotations(handoffs, user).first()
    if handoff is None:
        raise Http404("No such handoff")
    if handoff.escalated_by_id == user.pk:
        return None
    return handoff


def tried_tasks(handoff: Handoff) -> list[Task]:
    """The session's task lane rows that were tried (anything but "to do"), in lane order."""
    return list(Task.objects.filter(session_id=handoff.session_id).tried())


def last_messages(handoff: Handoff, *, limit: int = LAST_MESSAGES) -> list[Message]:
    """The chat's latest messages, oldest first."""
    recent = (
        Message.objects.filter(session_id=handoff.session_id)
        .exclude(role=MessageRole.SYSTEM)
        .select_related("author")
        .order_by("-created_at", "-id")[:limit]
    )
    return list(reversed(recent))


_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def history(handoff: Handoff) -> list[HandoffEvent]:
    """Every transition of this handoff and of the handoffs its session had before it.

    A release closes a handoff and reopens the session as a new one, so after two releases
    the story (the first escalation, the first claim) is spread over three rows. A session's
    handoffs follow one another (a re-queued one keeps the first escalation time, so the
    rows cannot be ordered by it): "up to and including this one" is this handoff's events
    and the session's events before it closed. One query however long the chain, and an
    earlier handoff's screen never shows what came after it.
    """
    # Read in the query, not from ``handoff``: the caller's copy may predate its release.
    end = Handoff.objects.filter(pk=handoff.pk).values(
        end=Coalesce("released_at", "resolved_at", Value(_NEVER))
    )
    up_to_this_one = Q(handoff=handoff) | Q(created_at__lt=Subquery(end))
    return list(
        HandoffEvent.objects.filter(up_to_this_one, handoff__session_id=handoff.session_id)
        .exclude(kind=HandoffEventKind.CLAIM_LOST)
        .select_related("actor")
        .order_by("created_at", "id")
    )


def waiting_seconds(handoff: Handoff, *, now=None) -> int:
    """How long it has waited for a senior: until claimed, or until now."""
    end = handoff.claimed_at or now or timezone.now()
    return max(0, int((end - handoff.created_at).total_seconds()))
