"""Server-sent events through an outbox.

``send_event_on_commit`` records an OutboxEvent in the caller's transaction and publishes it
after commit. If publishing fails (Redis down or paused), the row stays unpublished and the
``drain_outbox`` task publishes it later: nothing is lost and no request waits long on a dead
broker (one short timeout, then a breaker skips further attempts for a while).

Delivery is at least once: every event's data names its handoff id so that clients can
apply it idempotently (replace the card with that id, refetch a count).
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import transaction
from django.utils import timezone

from resolutionflow.models import OutboxEvent

logger = logging.getLogger(__name__)

# After a failed publish, skip immediate publishing for this long; the drain catches up.
BREAKER_SECONDS = 10.0


class _Breaker:
    """Process-wide memory of a recent broker failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until = 0.0

    def is_open(self) -> bool:
        with self._lock:
            return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + BREAKER_SECONDS

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


breaker = _Breaker()


def send_event_on_commit(channel: str, event_type: str, data: dict) -> OutboxEvent:
    """Record an event for ``channel`` now; publish it once the transaction commits."""
    event = OutboxEvent.objects.create(channel=channel, event_type=event_type, data=data)
    transaction.on_commit(lambda: publish_outbox_events([event.pk]))
    return event


def publish_outbox_events(event_ids: list[int] | None = None, *, limit: int = 500) -> int:
    """Publish unpublished outbox events (these ids, or the oldest ``limit``); return count.

    Called after commit for fresh events and by the drain task for leftovers. Stops at the
    first failure: the rest wait for the next drain.
    """
    if event_ids is not None and breaker.is_open():
        return 0
    pending = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
    if event_ids is not None:
        pending = pending.filter(id__in=event_ids)
    published = 0
    for event in pending[:limit]:
        try:
            _publish(event)
        except Exception:
            breaker.trip()
            OutboxEvent.objects.filter(pk=event.pk).update(attempts=event.attempts + 1)
            logger.warning("Publishing event %s failed; the outbox drain will retry", event.pk)
            break
        # Conditional: a concurrent drain may have published it already.
        OutboxEvent.objects.filter(pk=event.pk, published_at__isnull=True).update(
            published_at=timezone.now(), attempts=event.attempts + 1
        )
        published += 1
    if published and event_ids is None:
        breaker.reset()
    return published


def _publish(event: OutboxEvent) -> None:
    from django_eventstream import send_event

    send_event(event.channel, event.event_type, event.data)
