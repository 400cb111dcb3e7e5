"""Reads of the analytics app that check access."""

from django.http import Http404

from analytics.models import BaselineMeasurement
from resolutionflow.models import User


def get_baseline_for_user(user: User, pk: int) -> BaselineMeasurement:
    """A baseline timing of the user's own account; 404 for anything else."""
    try:
        return BaselineMeasurement.objects.select_related("timed_by").get(
            pk=pk, account_id=user.account_id
        )
    except BaselineMeasurement.DoesNotExist:
        raise Http404("No such baseline timing.") from None


def baselines_for_account(account_id: int):
    """The account's timings, newest first, with who timed them (one query)."""
    return BaselineMeasurement.objects.filter(account_id=account_id).select_related("timed_by")
