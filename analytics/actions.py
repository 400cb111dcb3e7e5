"""Writes of the analytics app: the manual baseline timings."""

from datetime import date
from decimal import Decimal

from django.db import transaction

from analytics.models import BASELINE_MAX_MINUTES, BaselineMeasurement
from resolutionflow.models import Account, User


def _check_minutes(minutes: Decimal) -> None:
    # The form says it politely; this keeps scripts and the shell from storing nonsense.
    if not 0 < minutes <= BASELINE_MAX_MINUTES:
        raise ValueError(f"baseline minutes must be in (0, {BASELINE_MAX_MINUTES}], got {minutes}")


def _check_timer(account: Account | int, timed_by: User | None) -> None:
    account_id = account if isinstance(account, int) else account.pk
    if timed_by is not None and timed_by.account_id != account_id:
        raise ValueError("the person who timed a baseline must belong to its account")


@transaction.atomic
def record_baseline(
    *,
    account: Account,
    minutes: Decimal,
    measured_on: date,
    timed_by: User | None,
    note: str = "",
) -> BaselineMeasurement:
    """Record one stopwatch timing of a manual handoff for the account."""
    _check_minutes(minutes)
    _check_timer(account, timed_by)
    return BaselineMeasurement.objects.create(
        account=account, minutes=minutes, measured_on=measured_on, timed_by=timed_by, note=note
    )


@transaction.atomic
def update_baseline(
    *,
    baseline: BaselineMeasurement,
    minutes: Decimal,
    measured_on: date,
    timed_by: User | None,
    note: str = "",
) -> BaselineMeasurement:
    """Correct a timing: its minutes, date, note or who timed it."""
    _check_minutes(minutes)
    _check_timer(baseline.account_id, timed_by)
    baseline.minutes = minutes
    baseline.measured_on = measured_on
    baseline.timed_by = timed_by
    baseline.note = note
    baseline.save(update_fields=["minutes", "measured_on", "timed_by", "note"])
    return baseline


@transaction.atomic
def delete_baseline(*, baseline: BaselineMeasurement) -> None:
    """Remove a timing that should not count (a mistimed or duplicate reading)."""
    baseline.delete()
