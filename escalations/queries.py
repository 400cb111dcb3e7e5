"""Reads of escalation data: the queue, the handoff screen, and the access getters.

Getters that check access raise Http404 for anything outside the user's account, so a
foreign id and an unknown id look the same. Lists make a fixed number of queries however
many handoffs they show (annotations, select_related); tests pin the counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThanOrEqual
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from escalations.models import (
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    HandoffState,
    HandoffView,
)
from flowpilot.models import Message, MessageRole, Task, TaskStatus, tried_condition
from resolutionflow.models import User

RECENTLY_CLAIMED_LIMIT = 6
LAST_MESSAGES = 6
# The waiting queue shows this many cards at first and per "Show more".
QUEUE_PAGE_SIZE = 50
# A live refresh re-renders what is shown, but never more than this many cards.
QUEUE_WINDOW_MAX = 500
# The queue's order: high urgency first, then the longest waiting; the id breaks ties
# (two escalations in the same microsecond), so every card has one place.
QUEUE_ORDER = ("urgency_rank", "created_at", "id")


def handoffs_visible_to(user: User):
    """Engineers and admins see their account's handoffs; a technician sees those they
    escalated; people without an account see none."""
    if user.account_id is None:
        return Handoff.objects.none()
    handoffs = Handoff.objects.filter(account_id=user.account_id)
    return handoffs if user.is_senior else handoffs.filter(escalated_by=user)


def get_handoff_for_user(user: User, handoff_id: uuid.UUID | str) -> Handoff:
    """The handoff if ``user`` may see it, with its session and people; else Http404.

    Only the relations its pages read: every join costs PostgreSQL planning time (the
    session's owner, never shown on a handoff page, doubled it).
    """
    try:
        return (
            handoffs_visible_to(user)
            .select_related("session", "escalated_by", "claimed_by", "account")
            .get(pk=handoff_id)
        )
    except (Handoff.DoesNotExist, ValueError, TypeError):
        raise Http404("No such handoff") from None


def _with_card_annotations(handoffs, user: User):
    """What a queue card shows, in the same query: steps tried, unread.

    Per-row subqueries, not a join with GROUP BY: with a LIMIT, the database computes them
    for the shown rows only, whatever the number waiting.
    """
    # Cards never show the JSON snapshots; decoding them costs more than the rest of a row.
    handoffs = handoffs.defer("escalation_package", "assessment")
    # A skipped step was not tried: the card counts doing, done and failed ones (the
    # handoff screen lists the skipped ones too, marked so).
    tried = (
        Task.objects.filter(tried_condition(""), session_id=OuterRef("session_id"))
        .exclude(status=TaskStatus.SKIPPED)
        .order_by()
        .values("session_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return handoffs.select_related("session", "escalated_by", "claimed_by").annotate(
        steps_tried=Coalesce(Subquery(tried), 0),
        seen=Exists(HandoffView.objects.filter(handoff=OuterRef("pk"), user=user)),
    )


class InvalidCursor(ValueError):
    """A "Show more" position that this queue never handed out."""


@dataclass(frozen=True)
class QueueCursor:
    """A place in the waiting queue: the sort key of the last card shown.

    Keyset pagination: the next page is "after this key", one index range scan however
    deep, where OFFSET would read and drop every row before it. The key is total (the id
    breaks ties), so no card is shown twice or skipped when many share a time or urgency.
    """

    urgency_rank: int
    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, handoff: Handoff) -> QueueCursor:
        return cls(handoff.urgency_rank, handoff.created_at, handoff.pk)

    def encode(self) -> str:
        micros = int(self.created_at.timestamp()) * 1_000_000 + self.created_at.microsecond
        return f"{self.urgency_rank}.{micros}.{self.id.hex}"

    @classmethod
    def decode(cls, text: str) -> QueueCursor:
        try:
            rank, micros, hex_id = text.split(".")
            rank_value, micros_value = int(rank), int(micros)
            if rank_value not in (0, 1, 2) or not 0 <= micros_value < 10**17:
                raise ValueError(text)
            seconds, micro = divmod(micros_value, 1_000_000)
            created_at = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micro)
            return cls(rank_value, created_at, uuid.UUID(hex=hex_id))
        except (ValueError, TypeError, OverflowError):
            raise InvalidCursor(text) from None

    def as_tuple(self) -> tuple:
        return (self.urgency_rank, self.created_at, self.id)


# Row-value comparison, "(urgency_rank, created_at, id) > (…)": PostgreSQL reads it as one
# index range. Django's Tuple lookups are not public API; tests/escalations/test_queue.py
# pages through ties on both backends and fails if they change.
def _after(cursor: QueueCursor):
    return TupleGreaterThan(Tuple(*(F(name) for name in QUEUE_ORDER)), cursor.as_tuple())


def _through(cursor: QueueCursor):
    return TupleLessThanOrEqual(Tuple(*(F(name) for name in QUEUE_ORDER)), cursor.as_tuple())


@dataclass(frozen=True)
class QueueFilters:
    """What a senior narrowed the queue to; empty fields do not filter."""

    urgency: str = ""
    customer: str = ""
    escalated_by: int | None = None
    search: str = ""

    @property
    def active(self) -> bool:
        return bool(self.urgency or self.customer or self.escalated_by or self.search)

    def apply(self, handoffs):
        if self.urgency:
            handoffs = handoffs.filter(urgency=self.urgency)
        if self.customer:
            handoffs = handoffs.filter(session__customer__icontains=self.customer)
        if self.escalated_by:
            handoffs = handoffs.filter(escalated_by_id=self.escalated_by)
        if self.search:
            handoffs = handoffs.filter(
                Q(session__problem__icontains=self.search) | Q(reason__icontains=self.search)
            )
        return handoffs


@dataclass
class QueuePage:
    """Cards of the waiting queue in order, and where "Show more" continues."""

    handoffs: list[Handoff]
    has_more: bool
    total: int | None = None
    filters: QueueFilters = field(default_factory=QueueFilters)
    # Cards that were just picked up, shown once more by a live refresh (just_picked_up).
    leaving: list[Handoff] = field(default_factory=list)

    @property
    def cards(self) -> list[Handoff]:
        """The cards to render, in queue order: the waiting ones and the ones leaving."""
        if not self.leaving:
            return self.handoffs
        return sorted(
            [*self.handoffs, *self.leaving],
            key=lambda handoff: QueueCursor.of(handoff).as_tuple(),
        )

    @property
    def next_cursor(self) -> str | None:
        """Where "Show more" continues (after the last card), or None at the end."""
        if not self.has_more or not self.handoffs:
            return None
        return QueueCursor.of(self.handoffs[-1]).encode()

    @property
    def through_cursor(self) -> str | None:
        """The last card shown: a live refresh re-renders up to and including it."""
        return QueueCursor.of(self.handoffs[-1]).encode() if self.handoffs else None


def waiting_handoffs(user: User, filters: QueueFilters | None = None):
    """The account's open handoffs ``user`` may pick up, filtered, unordered and unsliced.

    Never the handoffs ``user`` escalated (nobody picks up their own).
    """
    handoffs = Handoff.objects.open().filter(account_id=user.account_id)
    handoffs = handoffs.exclude(escalated_by=user)
    return (filters or QueueFilters()).apply(handoffs)


def waiting_page(
    user: User,
    filters: QueueFilters | None = None,
    *,
    after: QueueCursor | None = None,
    through: QueueCursor | None = None,
    size: int | None = None,
    count: bool = True,
) -> QueuePage:
    """One window of the waiting queue, high urgency first, then oldest first.

    ``after``: the page that follows a card ("Show more"). ``through``: every card up to
    and including one, as a live refresh re-renders what the senior has in view (bounded
    by ``QUEUE_WINDOW_MAX``); a card that arrives beyond it changes the total only.
    ``size``: at most this many cards otherwise (``QUEUE_PAGE_SIZE`` by default).
    ``count``: also count all that match (the first page says how many wait; "Show more"
    does not need it again). When the window holds every match (no cursor and nothing
    beyond it), the total is the number of cards, with no second query.
    """
    filters = filters or QueueFilters()
    matching = waiting_handoffs(user, filters)
    rows = _with_card_annotations(matching, user).order_by(*QUEUE_ORDER)
    if after is not None:
        rows = rows.filter(_after(after))
    limit = max(1, min(size or QUEUE_PAGE_SIZE, QUEUE_WINDOW_MAX))
    if through is not None:
        rows = rows.filter(_through(through))
        limit = QUEUE_WINDOW_MAX
    handoffs = list(rows[: limit + 1])
    has_more = len(handoffs) > limit
    handoffs = handoffs[:limit]
    if through is not None and not has_more:
        has_more = matching.filter(_after(through)).exists()
    if not count:
        total = None
    elif after is None and not has_more:
        total = len(handoffs)
    else:
        total = matching.count()
    return QueuePage(handoffs=handoffs, has_more=has_more, total=total, filters=filters)


def waiting_queue(user: User) -> list[Handoff]:
    """The first page of the waiting queue, unfiltered."""
    return waiting_page(user, count=False).handoffs


# A card picked up by someone else stays this long in a live refresh, saying who took it.
JUST_PICKED_UP_SECONDS = 4


def just_picked_up(user: User, filters: QueueFilters, page: QueuePage) -> list[Handoff]:
    """Handoffs claimed in the last seconds that had their place among the shown cards.

    A live refresh shows them once more, "Picked up by …", before they fade out (CSS), so a
    card does not vanish without a word. One indexed query (account, claimed_at).
    """
    since = timezone.now() - timedelta(seconds=JUST_PICKED_UP_SECONDS)
    handoffs = Handoff.objects.filter(account_id=user.account_id, claimed_at__gte=since)
    handoffs = filters.apply(handoffs.exclude(escalated_by=user))
    if page.has_more and page.handoffs:
        handoffs = handoffs.filter(_through(QueueCursor.of(page.handoffs[-1])))
    return list(_with_card_annotations(handoffs, user).order_by(*QUEUE_ORDER)[:QUEUE_PAGE_SIZE])


def queue_escalators(user: User) -> list[User]:
    """The people of the account who may escalate, for the queue's "Escalated by" filter."""
    return list(
        User.objects.filter(account_id=user.account_id, is_active=True)
        .exclude(pk=user.pk)
        .only("pk", "display_name", "first_name", "last_name", "username")
        .order_by("display_name", "first_name", "last_name", "username")
    )


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


MY_CLAIMS_LIMIT = 20


def my_claims_of(user: User):
    """The handoffs ``user`` holds now (claimed, not yet released or resolved)."""
    if user.account_id is None:
        return Handoff.objects.none()
    return Handoff.objects.filter(
        account_id=user.account_id, claimed_by=user, state=HandoffState.CLAIMED
    )


def my_claims(user: User, *, limit: int = MY_CLAIMS_LIMIT) -> list[Handoff]:
    """The handoffs ``user`` holds, latest claim first: the top of their queue."""
    handoffs = (
        my_claims_of(user)
        .select_related("session", "escalated_by")
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


def lane_tasks(handoff: Handoff) -> list[Task]:
    """The session's whole task lane, in lane order (the handoff screen's "full lane")."""
    return list(Task.objects.filter(session_id=handoff.session_id).order_by("position", "id"))


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
    # Each event comes with when its handoff closed, read in the same query, not from
    # ``handoff``: the caller's copy may predate its release. This one's end is on its own
    # events (every handoff has its "escalated"). Choosing the rows here rather than in SQL
    # halves the cost of the read, most of which was building the query.
    events = list(
        HandoffEvent.objects.filter(handoff__session_id=handoff.session_id)
        .exclude(kind=HandoffEventKind.CLAIM_LOST)
        .annotate(handoff_end=Coalesce("handoff__released_at", "handoff__resolved_at"))
        .select_related("actor")
        .order_by("created_at", "id")
    )
    own = [event for event in events if event.handoff_id == handoff.pk]
    end = (own[0].handoff_end if own else handoff.released_at or handoff.resolved_at) or _NEVER
    return [event for event in events if event.handoff_id == handoff.pk or event.created_at < end]


def waiting_seconds(handoff: Handoff, *, now=None) -> int:
    """How long it has waited for a senior: until claimed, or until now."""
    end = handoff.claimed_at or now or timezone.now()
    return max(0, int((end - handoff.created_at).total_seconds()))
