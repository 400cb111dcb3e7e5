"""The outbox: events recorded in the transaction, published after commit, drained.

``send_event_on_commit`` records an OutboxEvent in the caller's transaction. After commit
(in a web request: once the response has been sent) ``publish_outbox_events`` hands them to
the event store (``resolutionflow.eventstore``: django-eventstream's storage, the table
Last-Event-ID replays from, written once per event) and then announces them
(``resolutionflow.eventstream_redis``: Redis pub/sub to every web process's relay; and
``resolutionflow.grip``: Pushpin's control port, when Pushpin holds the streams). A
failure anywhere leaves the rows unpublished; the ``drain_outbox`` task
(``resolutionflow.tasks``, every 5 s) publishes them later. Celery enqueues go through the
breaker in ``resolutionflow.broker``.

Delivery is at least once; what an event's data must carry for clients to apply it
idempotently is the feature's rule (escalations: ``escalations.streams``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import request_finished
from django.db import transaction
from django.dispatch import receiver

from resolutionflow import eventstore, eventstream_redis, grip
from resolutionflow.broker import breaker, enqueue_task  # noqa: F401 - features import these here
from resolutionflow.eventstore import RESYNC, trim_event_storage  # noqa: F401 - the drain's
from resolutionflow.models import OutboxEvent

logger = logging.getLogger(__name__)


def send_event_on_commit(channel: str, event_type: str, data: dict) -> OutboxEvent:
    """Record an event for ``channel`` now; store and announce it once the transaction commits.

    What ``data`` must carry is the feature's rule (escalations: the handoff it is about,
    ``escalations.streams``); the core stores and relays whatever JSON it is given.
    """
    (event,) = send_events_on_commit([(channel, event_type, data)])
    return event


def send_events_on_commit(events: list[tuple[str, str, dict]]) -> list[OutboxEvent]:
    """``send_event_on_commit`` for several (channel, event_type, data), in one INSERT.

    Every event recorded in one transaction is published by the first of its after-commit
    callbacks, as one batch (a fixed number of queries however many events, one Redis round
    trip), before the transaction's other callbacks (Celery enqueues) run.
    """
    rows = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(channel=channel, event_type=event_type, data=data)
            for channel, event_type, data in events
        ]
    )
    if rows:
        _pending.ids.extend(row.pk for row in rows)
        transaction.on_commit(_publish_pending)
    return rows


class _Pending(threading.local):
    """Ids recorded in this thread's transaction, waiting for its commit.

    Ids of a transaction that rolled back may linger here: their rows do not exist, so the
    next publish simply does not find them.
    """

    def __init__(self) -> None:
        self.ids: list[int] = []


_pending = _Pending()


def _publish_pending() -> None:
    ids, _pending.ids = _pending.ids, []
    if not ids:
        return
    deferred = getattr(_after_response, "ids", None)
    if deferred is not None:
        deferred.extend(ids)  # published once the response has left (see the middleware)
        return
    publish_committed(ids)


def publish_committed(ids: list[int]) -> None:
    """Publish events whose transaction committed; a failure leaves them for the drain."""
    try:
        publish_outbox_events(ids)
    except Exception:
        # The change is committed and the rows wait in the outbox: the drain publishes
        # them. Whoever made the change must not fail for it.
        logger.exception("Publishing %d committed events failed; left for the drain", len(ids))


class _AfterResponse(threading.local):
    ids: list[int] | None = None
    tasks: list[Callable[[], Any]] | None = None


_after_response = _AfterResponse()


@dataclass
class Collected:
    """What a request committed for after its response: events, then inline tasks."""

    ids: list[int] = field(default_factory=list)
    tasks: list[Callable[[], Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ids or self.tasks)

    def run(self) -> None:
        """Publish the events first (people are waiting for them), then run the tasks."""
        ids, tasks = list(self.ids), list(self.tasks)
        self.ids.clear()
        self.tasks.clear()
        if ids:
            publish_committed(ids)
        for task in tasks:
            task()


def tasks_deferred_after_response() -> list[Callable[[], Any]] | None:
    """Where inline Celery tasks wait for this request's response (``broker.enqueue_task``)."""
    return getattr(_after_response, "tasks", None)


@contextmanager
def publishing_after_response() -> Iterator[Collected]:
    """Within this block, events committed in this thread are collected, not published,
    and so are Celery tasks that would run inline (no broker: embedded mode).

    The request middleware hands them to ``run_when_response_closes``: they are published
    once the response has been sent, then the tasks run: the person who claimed or
    escalated does not wait for the event storage, the Redis round trip or (embedded) the
    emails, and the streams do not wait for the emails either. Code outside a request
    (tasks, commands) does it at commit.
    """
    collected = Collected()
    _after_response.ids, _after_response.tasks = collected.ids, collected.tasks
    try:
        yield collected
    finally:
        _after_response.ids = _after_response.tasks = None


def publish_collected_now() -> None:
    """Publish what this request has committed so far, without waiting for its response.

    For a view that commits a change others must see at once and then does something slow
    (asks an AI engine for seconds): the claim reaches every queue before that is done.
    """
    collected = getattr(_after_response, "ids", None)
    if collected:
        ids = list(collected)
        collected.clear()
        publish_committed(ids)


def run_when_response_closes(collected: Collected) -> None:
    """Run ``collected`` when this thread's response is closed, after its body was sent.

    Django closes every response once the server has sent it and sends ``request_finished``
    from ``close()``; under ASGI ``close()`` runs in the request's own thread (the same
    thread-sensitive executor as the middleware and the view: ``resolutionflow.handler``),
    so a thread-local hand-over finds it there. Pinned by tests/escalations/test_outbox.py
    (``test_events_are_published_when_the_response_is_closed``) over a real uvicorn.
    """
    waiting = getattr(_closing, "collected", None)
    if waiting is not None:  # a response of this thread was never closed: publish it now
        waiting.run()
    _closing.collected = collected


class _Closing(threading.local):
    collected: Collected | None = None


_closing = _Closing()


@receiver(request_finished, dispatch_uid="resolutionflow.events.publish_after_response")
def _publish_after_response(**kwargs) -> None:
    collected, _closing.collected = _closing.collected, None
    if collected is not None:
        collected.run()


def publish_outbox_events(event_ids: list[int] | None = None, *, limit: int = 500) -> int:
    """Store and announce unpublished outbox events (these ids, or the oldest ``limit``).

    Called after commit for fresh events and by the drain task for leftovers; returns how
    many this call published. The drain (``event_ids=None``) also sends pending resyncs.
    """
    if event_ids is not None and not event_ids:
        return 0
    published = 0
    for batch in eventstore.batches(event_ids, limit):
        stored = eventstore.store(batch)  # committed: from here on, replayable
        eventstream_redis.announce(stored)  # streams held by web processes
        grip.publish(stored)  # streams held by Pushpin (GRIP_URL set)
        published += len(stored)
    if event_ids is None:
        eventstream_redis.send_pending_resyncs()
    return published
