"""Analytics: the manually timed baseline that in-product numbers are compared with."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from resolutionflow.models import Account

BASELINE_MAX_MINUTES = 240


class BaselineMeasurement(models.Model):
    """A stopwatch timing of one manual "tell me what you tried" handoff."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="baselines")
    minutes = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(0.1), MaxValueValidator(BASELINE_MAX_MINUTES)],
    )
    measured_on = models.DateField()
    note = models.CharField(max_length=300, blank=True)
    timed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-measured_on", "-id"]
        indexes = [models.Index(fields=["account", "measured_on"])]

    def __str__(self) -> str:
        return f"{self.minutes} min on {self.measured_on}"


class WeeklyRollup(models.Model):
    """One account's handoffs escalated in one past Monday-to-Sunday week, added up.

    ``data`` is an ``analytics.tally.Tally`` as JSON (counts and the duration sketches the
    window figures merge, their bins packed: ``analytics.sketch``) and the week's figures
    for the weekly series (``analytics.rollups.stored``). Derived, never edited: the
    worker (inline in embedded mode) rebuilds a week when a handoff of it changes
    (``stale``, with ``version`` so a rebuild that raced a change does not mark itself
    fresh). The current week is never rolled up.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    week = models.DateField(help_text="The Monday, in the site's time zone.")
    data = models.JSONField(default=dict)
    stale = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "week"], name="one_rollup_per_week")
        ]
        indexes = [
            models.Index(fields=["stale"], condition=models.Q(stale=True), name="stale_rollups")
        ]

    def __str__(self) -> str:
        return f"week of {self.week} ({'stale' if self.stale else 'fresh'})"
