"""Escalation Mode: handoffs from a technician to a senior, their history and notifications.

Every write goes through ``escalations.actions`` (the handoff manager).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce

from flowpilot.models import Session
from resolutionflow.models import Account


class Urgency(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"


URGENCY_RANK = {Urgency.HIGH: 0, Urgency.NORMAL: 1, Urgency.LOW: 2}
# The same ranks in SQL (normal for anything unknown, as ``URGENCY_RANK.get(..., 1)``).
URGENCY_RANK_SQL = Case(
    *[When(urgency=urgency.value, then=Value(rank)) for urgency, rank in URGENCY_RANK.items()],
    default=Value(1),
)


class HandoffState(models.TextChoices):
    OPEN = "open", "Waiting in the queue"
    CLAIMED = "claimed", "Claimed"
    RELEASED = "released", "Released"
    RESOLVED = "resolved", "Resolved"


class FirstActionKind(models.TextChoices):
    """What counts as the claimer's first action: their own work on the problem.

    Opening the handoff, "Get AI analysis", "Open in Tasks panel", copying a command and
    anything FlowPilot does are not actions of the claimer; nor is anyone else's activity.
    """

    MESSAGE = "message", "wrote in the chat"
    TASK_RECORDED = "task_recorded", "recorded a step's status or outcome"
    TASK_ADDED = "task_added", "added a step by hand"


class TakeoverMode(models.TextChoices):
    """How the claimer took the handoff over (the handoff screen's two buttons)."""

    SELF = "self", "I'll take it from here"
    ANALYSIS = "analysis", "Get AI analysis"


# A session may have at most one handoff in one of these states at a time.
LIVE_STATES = (HandoffState.OPEN, HandoffState.CLAIMED)


class HandoffQuerySet(models.QuerySet):
    def live(self) -> "HandoffQuerySet":
        """Open or claimed: not yet released or resolved."""
        return self.filter(state__in=LIVE_STATES)

    def open(self) -> "HandoffQuerySet":
        """Waiting in the queue: open handoffs are unclaimed (a check constraint says so)."""
        return self.filter(state=HandoffState.OPEN)


class Handoff(models.Model):
    """One escalation of a session, from the technician who raised it to the senior who
    claims it. Released handoffs are closed; the session goes back to the queue as a new one.

    ``created_at`` is when the problem was first escalated: a handoff re-queued by a release
    keeps its predecessor's, so its wait (card and analytics) counts from the first
    escalation; the history (HandoffEvent) keeps when each hand took and gave it back.
    """

    # Assigned before the row is written so the escalation package can carry it.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="handoffs")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="handoffs")
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="handoffs_escalated"
    )
    reason = models.TextField(max_length=2000)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.NORMAL)
    state = models.CharField(max_length=10, choices=HandoffState.choices, default=HandoffState.OPEN)
    created_at = models.DateTimeField(db_default=models.functions.Now())

    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="handoffs_claimed",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_action_at = models.DateTimeField(null=True, blank=True)
    first_action_kind = models.CharField(max_length=30, blank=True, choices=FirstActionKind)
    takeover_mode = models.CharField(
        max_length=10, choices=TakeoverMode, default=TakeoverMode.SELF, db_default="self"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(max_length=4000, blank=True)
    reopened_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Re-alerts of a handoff nobody claims (escalations.actions.realert_overdue_handoffs):
    # when the seniors were told again (past the account's threshold: the card says
    # "Overdue"), and when the admins were (past twice the threshold). Set once each, by a
    # conditional UPDATE: exactly one re-alert per level, however many workers check.
    overdue_at = models.DateTimeField(null=True, blank=True)
    admins_alerted_at = models.DateTimeField(null=True, blank=True)
    # When a released handoff came back to the queue (None: when it was escalated,
    # ``created_at``). Re-alerts count from here: the wait shown counts from the first
    # escalation, but nobody has left it unclaimed for that long.
    queued_at = models.DateTimeField(null=True, blank=True)
    # ``queued_at``, else ``created_at``: annotate a queryset with it as ``queue_since``.
    QUEUE_SINCE = Coalesce("queued_at", "created_at")

    # The compatibility payload: a JSON snapshot of the session at escalation time.
    escalation_package = models.JSONField(default=dict)
    # The queue's sort key, "high first", stored by the database: ordering by it and
    # created_at is an index scan at any queue size, where a CASE in ORDER BY sorts it all.
    urgency_rank = models.GeneratedField(
        expression=URGENCY_RANK_SQL, output_field=models.SmallIntegerField(), db_persist=True
    )
    # The latest validated assessment (flowpilot.assistants.Assessment.as_dict()).
    assessment = models.JSONField(default=dict, blank=True)
    assessment_updated_at = models.DateTimeField(null=True, blank=True)

    objects = HandoffQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(state__in=["open", "claimed"]),
                name="one_live_handoff_per_session",
            ),
            models.CheckConstraint(
                condition=~Q(claimed_by=models.F("escalated_by")),
                name="claimer_is_not_escalator",
            ),
            # The state and the claim columns never disagree, whatever writes them.
            models.CheckConstraint(
                condition=~Q(state="open") | Q(claimed_by__isnull=True, claimed_at__isnull=True),
                name="open_handoff_is_unclaimed",
            ),
            models.CheckConstraint(
                condition=~Q(state="claimed")
                | Q(claimed_by__isnull=False, claimed_at__isnull=False),
                name="claimed_handoff_has_claimer",
            ),
            models.CheckConstraint(
                condition=Q(first_action_at__isnull=True) | Q(claimed_at__isnull=False),
                name="first_action_after_claim",
            ),
            models.CheckConstraint(
                condition=Q(urgency__in=["low", "normal", "high"]), name="handoff_urgency_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["open", "claimed", "released", "resolved"]),
                name="handoff_state_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "state", "created_at"]),
            models.Index(fields=["account", "created_at"]),
            models.Index(fields=["account", "claimed_at"]),
            # The waiting queue in its order, keyset pages included (escalations/queries.py).
            models.Index(
                fields=["account", "urgency_rank", "created_at", "id"],
                condition=Q(state="open"),
                name="handoff_waiting_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Handoff {self.id} ({self.state})"

    @property
    def in_queue_since(self):
        """When it entered the queue: its release back to it, else its escalation."""
        return self.queued_at or self.created_at

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def is_open(self) -> bool:
        return self.state == HandoffState.OPEN

    @property
    def is_closed(self) -> bool:
        """Resolved or released: nobody works this handoff any more."""
        return not self.is_live

    def is_claimed_by(self, user) -> bool:
        """Whether ``user`` holds this handoff now: working its session (briefing FlowPilot,
        adding suggested steps) is the claimer's alone, an admin's override covers only
        release and resolve. A released handoff keeps its claimer but is no longer held."""
        return self.state == HandoffState.CLAIMED and self.claimed_by_id == user.pk


# Minutes a handoff may wait unclaimed before the seniors are told again (and twice that
# before the admins are), unless the account's admins set their own (RealertPolicy).
REALERT_DEFAULT_MINUTES = {Urgency.HIGH: 5, Urgency.NORMAL: 15, Urgency.LOW: 60}
REALERT_MAX_MINUTES = 7 * 24 * 60


class RealertPolicy(models.Model):
    """An account's re-alert thresholds, in minutes per urgency (set by its admins)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="+")
    high_minutes = models.PositiveIntegerField(default=REALERT_DEFAULT_MINUTES[Urgency.HIGH])
    normal_minutes = models.PositiveIntegerField(default=REALERT_DEFAULT_MINUTES[Urgency.NORMAL])
    low_minutes = models.PositiveIntegerField(default=REALERT_DEFAULT_MINUTES[Urgency.LOW])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(high_minutes__gte=1, normal_minutes__gte=1, low_minutes__gte=1),
                name="realert_minutes_positive",
            )
        ]

    def __str__(self) -> str:
        return f"Re-alert after {self.high_minutes}/{self.normal_minutes}/{self.low_minutes} min"

    def minutes(self) -> dict[str, int]:
        """Minutes per urgency value."""
        return {
            Urgency.HIGH: self.high_minutes,
            Urgency.NORMAL: self.normal_minutes,
            Urgency.LOW: self.low_minutes,
        }


class HandoffEventKind(models.TextChoices):
    ESCALATED = "escalated", "Escalated"
    CLAIMED = "claimed", "Claimed"
    CLAIM_LOST = "claim_lost", "Claim lost"
    RELEASED = "released", "Released"
    RESOLVED = "resolved", "Resolved"
    FIRST_ACTION = "first_action", "First action"


class HandoffEvent(models.Model):
    """A row for every transition of a handoff, with who did it and when."""

    handoff = models.ForeignKey(Handoff, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=HandoffEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(db_default=models.functions.Now())
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["handoff", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_id}"

    @property
    def first_action_label(self) -> str:
        """What the claimer did, in words, for a FIRST_ACTION row of the history."""
        kind = (self.detail or {}).get("kind", "")
        return FirstActionKind(kind).label if kind in FirstActionKind.values else ""


class HandoffView(models.Model):
    """When a senior first opened (or previewed) a handoff: drives the queue's unread dot."""

    handoff = models.ForeignKey(Handoff, on_delete=models.CASCADE, related_name="views")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["handoff", "user"], name="one_view_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} saw {self.handoff_id}"


class NotificationKind(models.TextChoices):
    HANDOFF_ESCALATED = "handoff_escalated", "An escalation arrived"
    HANDOFF_CLAIMED = "handoff_claimed", "Your escalation was picked up"
    HANDOFF_RELEASED = "handoff_released", "A handoff was released back"
    HANDOFF_RESOLVED = "handoff_resolved", "Your escalation was resolved"
    HANDOFF_OVERDUE = "handoff_overdue", "A handoff has waited too long"


# Bell items that ask a senior to pick a handoff up. Once someone has (the handoff is no
# longer open) they are answered: the bell stops counting them, with no write at claim time,
# whatever the number of seniors. The escalator's own items about it are news, never calls.
CALLS_TO_PICK_UP = (
    NotificationKind.HANDOFF_ESCALATED,
    NotificationKind.HANDOFF_RELEASED,
    NotificationKind.HANDOFF_OVERDUE,
)
ANSWERED = (
    Q(kind__in=CALLS_TO_PICK_UP)
    & ~Q(handoff__state=HandoffState.OPEN)
    & ~Q(handoff__escalated_by=F("recipient"))
)


class NotificationQuerySet(models.QuerySet):
    def unread(self) -> "NotificationQuerySet":
        return self.filter(read_at__isnull=True)

    def to_read(self) -> "NotificationQuerySet":
        """Unread, and not answered already (see ``Notification.answered``)."""
        return self.unread().exclude(ANSWERED)


class Notification(models.Model):
    """A bell item for one user."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    handoff = models.ForeignKey(Handoff, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=30, choices=NotificationKind.choices)
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at", "-created_at"])]

    def __str__(self) -> str:
        return self.text

    @property
    def answered(self) -> bool:
        """A call to pick a handoff up that somebody already has (``ANSWERED``, in Python)."""
        handoff = self.handoff
        return (
            self.kind in CALLS_TO_PICK_UP
            and handoff.state != HandoffState.OPEN
            and handoff.escalated_by_id != self.recipient_id
        )

    @property
    def is_unread(self) -> bool:
        return self.read_at is None and not self.answered


class EmailState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused (bad address)"


class EmailKind(models.TextChoices):
    ARRIVED = "arrived", "An escalation arrived"
    OVERDUE = "overdue", "A handoff waits too long (to the seniors)"
    ADMINS = "admins", "A handoff waits twice too long (to the admins)"


class EmailDelivery(models.Model):
    """One escalation email to one recipient: the outbox row that makes sending idempotent."""

    handoff = models.ForeignKey(Handoff, on_delete=models.CASCADE, related_name="emails")
    # At most one of each kind per recipient: the escalation, and one re-alert per level.
    kind = models.CharField(max_length=10, choices=EmailKind.choices, default=EmailKind.ARRIVED)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    address = models.CharField(max_length=320)
    state = models.CharField(max_length=10, choices=EmailState.choices, default=EmailState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["handoff", "recipient", "kind"], name="one_email_per_recipient_and_kind"
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.address} ({self.state})"
