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
