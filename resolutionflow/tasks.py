"""Core Celery tasks: the outbox drain that beat runs every 5 seconds."""

import logging

from celery import shared_task
from django.dispatch import Signal
from django.utils.module_loading import autodiscover_modules

from resolutionflow.events import publish_outbox_events, trim_event_storage

logger = logging.getLogger(__name__)

# Sent by every drain after the events: apps re-queue their own leftovers (escalations:
# emails whose time has come). The core knows no feature; features listen.
outbox_drain = Signal()


@shared_task(name="resolutionflow.tasks.drain_outbox", acks_late=True, ignore_result=True)
def drain_outbox() -> int:
    """Publish what a dead broker left behind, trim the event storage, then let apps sweep
    theirs (escalations: emails whose time has come). Safe to run twice, or concurrently."""
    published = publish_outbox_events()
    if published:
        logger.info("Outbox drain published %d events", published)
    trim_event_storage()
    # The receivers live in the apps' tasks modules; make sure they are connected here too
    # (the worker imports them at start, a shell or a test may not have).
    autodiscover_modules("tasks")
    for receiver, result in outbox_drain.send_robust(sender=drain_outbox):
        if isinstance(result, Exception):
            logger.error("Outbox drain receiver %s failed: %r", receiver, result)
    return published
