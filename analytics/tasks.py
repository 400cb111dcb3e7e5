"""Analytics work for the Celery worker: keeping the weekly rollups current.

Tasks take ids and are safe to run twice (``analytics.rollups``).
"""

import logging

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from analytics import rollups
from resolutionflow.events import enqueue_task
from resolutionflow.tasks import outbox_drain

logger = logging.getLogger(__name__)


@shared_task(name="analytics.tasks.refresh_rollups", acks_late=True, ignore_result=True)
def refresh_rollups(account_id: int) -> int:
    """Rebuild the account's stale weeks and build those that just ended."""
    with transaction.atomic():
        return rollups.refresh_account(account_id, now=timezone.now())


def enqueue_refresh(account_id: int) -> None:
    """After commit: a lost task costs nothing, the drain finds the stale rows anyway."""
    enqueue_task(refresh_rollups, account_id)


@receiver(outbox_drain, dispatch_uid="analytics.refresh_rollups")
def refresh_on_drain(sender, **kwargs) -> int:
    """On every outbox drain: stale weeks and weeks that just ended, for every account."""
    written = rollups.refresh_all(now=timezone.now())
    if written:
        logger.info("Analytics rollups: %d weeks written", written)
    return written
