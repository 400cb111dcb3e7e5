"""FlowPilot: troubleshooting sessions, their chat messages and their task lane."""

from django.conf import settings
from django.db import models

from flowpilot.steps import COMMAND_MAX, DETAIL_MAX, OUTCOME_MAX, TITLE_MAX, UNTRIED, is_tried
from resolutionflow.models import Account

PROBLEM_MAX_LENGTH = 2000
MESSAGE_MAX_LENGTH = 8000


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ESCALATED = "escalated", "Escalated"
    RESOLVED = "resolved", "Resolved"


class SessionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SessionQuerySet":
        """Technicians see their own sessions; engineers and admins see their account's."""
        if user.account_id is None:
            return self.none()
        mine = self.filter(account_id=user.account_id)
        return mine if user.is_senior else mine.filter(owner=user)


class Session(models.Model):
    """One customer problem being worked in FlowPilot.

    ``status`` and ``escalated_to`` are set by the handoff manager (escalations), which
    flowpilot never imports: the session carries its own escalation state.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sessions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flowpilot_sessions"
    )
    problem = models.TextField(max_length=PROBLEM_MAX_LENGTH)
    customer = models.CharField("customer / site", max_length=200, blank=True)
    device = models.CharField("device / asset", max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The senior who claimed the open escalation, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["account", "owner", "-updated_at"]),
            models.Index(fields=["account", "-updated_at"]),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        """The first line of the problem, short enough for a list."""
        first_line = self.problem.strip().splitlines()[0] if self.problem.strip() else ""
        if len(first_line) <= 90:
            return first_line
        # Cut at a word where there is one, and never leave "word.…" or "word,…".
        cut = first_line[:89]
        if " " in cut[40:]:
            cut = cut[: cut.rindex(" ")]
        return cut.rstrip(" .,;:!?-–—") + "…"


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"


class Message(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=20, choices=MessageRole.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField()
    engine = models.CharField(max_length=30, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["session", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.body[:40]}"

    @property
    def speaker(self) -> str:
        """Who a reader sees as the author: FlowPilot, ResolutionFlow itself, or a person."""
        if self.role == MessageRole.ASSISTANT:
            return "FlowPilot"
        if self.role == MessageRole.SYSTEM:
            return "ResolutionFlow"
        return self.author.name if self.author else "Someone"


class TaskStatus(models.TextChoices):
    TODO = "todo", "To do"
    DOING = "doing", "Doing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class TaskSource(models.TextChoices):
    ASSISTANT = "assistant", "Assistant"
    MANUAL = "manual", "Added by hand"


def tried_condition(prefix: str = "") -> models.Q:
    """The rows of a task lane that were tried (``flowpilot.steps.is_tried`` in SQL): anything
    but "to do" (doing, done, failed, skipped), the handoff's "What was tried". ``prefix``
    reaches tasks through a relation (``"session__tasks__"``), for an aggregate's filter."""
    return ~models.Q(**{f"{prefix}status": UNTRIED})


class TaskQuerySet(models.QuerySet):
    def tried(self) -> "TaskQuerySet":
        """Tasks that were tried (see ``tried_condition``)."""
        return self.filter(tried_condition())


class Task(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=TITLE_MAX)
    detail = models.TextField(max_length=DETAIL_MAX, blank=True)
    command = models.TextField(max_length=COMMAND_MAX, blank=True)
    shell = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.TODO)
    outcome = models.TextField(max_length=OUTCOME_MAX, blank=True)
    source = models.CharField(max_length=20, choices=TaskSource.choices, default=TaskSource.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["session", "position"])]

    def __str__(self) -> str:
        return self.title

    @property
    def was_tried(self) -> bool:
        """The row-level ``tried_condition``: the lane shows a tried step as finished."""
        return is_tried(self.status)
