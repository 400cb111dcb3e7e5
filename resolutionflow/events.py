"""Server-sent events through an outbox, and Celery tasks that never hold a request.

``send_event_on_commit`` records an OutboxEvent in the caller's transaction. After commit the
transaction's events are written to django-eventstream's storage (the table Last-Event-ID
replays from) and their rows marked published, in one transaction and a fixed number of
queries, so an event is stored exactly once however often publishing is retried. Then
they are announced: on Redis pub/sub when REDIS_URL is set (one round trip; every web
process relays them to its connected clients), else to this process's listeners.

If Redis is down or paused, the announcement fails after one short timeout and a breaker
skips Redis for a while. The event is already stored: this process's own clients get it at
once, and a ``resync`` control row asks the ``drain_outbox`` task to tell every web process,
once Redis is back, to re-read storage for its clients. Web processes also re-read after
their own reconnect (``resolutionflow.eventstream_redis``). Nothing is lost, and no request
waits more than about a second on a dead broker.

The same breaker guards Celery enqueues (``enqueue_task``): the broker is the same Redis.

Delivery is at least once: every event's data names its handoff id so that clients apply it
idempotently (replace the card with that id, refetch a count).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from resolutionflow.models import OutboxEvent

logger = logging.getLogger(__name__)

# After a broker failure, skip Redis for this long; the drain and the sweep catch up.
BREAKER_SECONDS = 10.0

# A control row, never stored or shown: "web processes, re-read storage for your clients".
RESYNC = "resync"
RESYNC_CHANNEL = "*"


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
    """Record an event for ``channel`` now; store and announce it once the transaction commits.

    ``data`` must name the handoff (``data["handoff"]``): clients apply events idempotently
    by that id.
    """
    (event,) = send_events_on_commit([(channel, event_type, data)])
    return event


def send_events_on_commit(events: list[tuple[str, str, dict]]) -> list[OutboxEvent]:
    """``send_event_on_commit`` for several (channel, event_type, data), in one INSERT.

    Every event recorded in one transaction is published by the first of its after-commit
    callbacks, as one batch (a fixed number of queries however many events, one Redis round
    trip), before the transaction's other callbacks (Celery enqueues) run.
    """
    for _channel, _event_type, data in events:
        if "handoff" not in data:
            raise ValueError("every event's data names its handoff: data['handoff'] is missing")
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


@contextmanager
def publishing_after_response() -> Iterator[Collected]:
    """Within this block, events committed in this thread are collected, not published,
    and so are Celery tasks that would run inline (no broker: embedded mode).

    The request middleware publishes the events when the response is closed, after its body
    was sent, then runs the tasks: the person who claimed or escalated does not wait for the
    event storage, the Redis round trip or (embedded) the emails, and the streams do not
    wait for the emails either. Code outside a request (tasks, commands) does it at commit.
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


def publish_outbox_events(event_ids: list[int] | None = None, *, limit: int = 500) -> int:
    """Store and announce unpublished outbox events (these ids, or the oldest ``limit``).

    Called after commit for fresh events and by the drain task for leftovers; returns how
    many this call published. The drain (``event_ids=None``) also sends pending resyncs.
    """
    if event_ids is not None and not event_ids:
        return 0
    published = 0
    for batch in _batches(event_ids, limit):
        stored = _store(batch)  # committed: from here on, replayable by Last-Event-ID
        _announce(stored)
        published += len(stored)
    if event_ids is None:
        _send_pending_resyncs()
    return published


def _batches(event_ids: list[int] | None, limit: int, size: int = 500):
    if event_ids is not None and _one_statement_store():
        # ``_store_postgresql`` skips published, rolled-back and resync ids itself: no need
        # to look first. ``limit`` is the drain's; named ids are all tried.
        for start in range(0, len(event_ids), size):
            yield event_ids[start : start + size]
        return
    pending = (
        OutboxEvent.objects.filter(published_at__isnull=True)
        .exclude(event_type=RESYNC)
        .order_by("id")
    )
    if event_ids is not None:
        pending = pending.filter(id__in=event_ids)
    ids = list(pending.values_list("id", flat=True)[:limit])
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _one_statement_store() -> bool:
    """PostgreSQL and django-eventstream's model storage: ``_store_postgresql`` applies."""
    from django_eventstream.storage import DjangoModelStorage
    from django_eventstream.utils import get_storage

    return connection.vendor == "postgresql" and isinstance(get_storage(), DjangoModelStorage)


def _store(ids: list[int]) -> list:
    """Append these outbox rows to the event storage and mark them published, atomically.

    Rows another publisher holds or has published are skipped, so each event is stored
    exactly once. Returns the stored events (django-eventstream ``Event``s with their ids).
    """
    from django_eventstream.storage import DjangoModelStorage
    from django_eventstream.utils import get_storage

    if _one_statement_store():
        return _store_postgresql(ids)
    storage = get_storage()
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, published_at__isnull=True)
            .order_by("id")
        )
        if not rows:
            return []
        if isinstance(storage, DjangoModelStorage):
            stored = _append_to_model_storage(rows)
        else:
            stored = [storage.append_event(*_as_stored(row)) for row in rows]
        OutboxEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
            published_at=timezone.now(), attempts=F("attempts") + 1
        )
    return stored


# ``_store`` on PostgreSQL in one statement, so one round trip and no transaction block: it
# claims the unpublished rows (skipping rows another publisher holds), bumps each channel's
# counter (creating it, and its placeholder event 0, on first use) and appends the events
# with consecutive ids, as ``_append_to_model_storage`` does in six. The counters stay
# locked until the statement commits, so a channel's ids are committed in order.
_STORE_SQL = """
WITH picked AS (
    UPDATE resolutionflow_outboxevent AS outbox
    SET published_at = %(now)s, attempts = outbox.attempts + 1
    WHERE outbox.id IN (
        SELECT id FROM resolutionflow_outboxevent
        WHERE id = ANY(%(ids)s) AND published_at IS NULL AND event_type <> %(resync)s
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    )
    RETURNING outbox.id, outbox.channel, outbox.event_type, outbox.data::text AS text
),
numbered AS (
    SELECT picked.*,
        row_number() OVER (PARTITION BY channel ORDER BY id) AS position,
        count(*) OVER (PARTITION BY channel) AS added
    FROM picked
),
per_channel AS (
    SELECT channel, max(added) AS added FROM numbered GROUP BY channel
),
counted AS (
    INSERT INTO django_eventstream_eventcounter AS counter (name, value, updated)
    SELECT channel, added, %(now)s FROM per_channel ORDER BY channel
    ON CONFLICT (name) DO UPDATE
        SET value = counter.value + excluded.value, updated = excluded.updated
    RETURNING counter.name, counter.value
),
assigned AS (
    SELECT numbered.id, numbered.channel, numbered.event_type, numbered.text,
        counted.value - numbered.added + numbered.position AS eid
    FROM numbered JOIN counted ON counted.name = numbered.channel
),
appended AS (
    INSERT INTO django_eventstream_event (channel, type, data, eid, created)
    SELECT counted.name, '', '', 0, %(now)s
    FROM counted JOIN per_channel ON per_channel.channel = counted.name
    WHERE counted.value = per_channel.added
    UNION ALL
    SELECT channel, event_type, to_json(text)::text, eid, %(now)s FROM assigned
)
SELECT channel, event_type, text, eid FROM assigned ORDER BY id
"""


def _store_postgresql(ids: list[int]) -> list:
    from django_eventstream.event import Event

    with connection.cursor() as cursor:
        cursor.execute(_STORE_SQL, {"ids": ids, "now": timezone.now(), "resync": RESYNC})
        rows = cursor.fetchall()
    return [Event(channel, event_type, text, id=eid) for channel, event_type, text, eid in rows]


def _as_stored(row: OutboxEvent) -> tuple[str, str, str]:
    # django-eventstream stores and relays the JSON text, as its own send_event does.
    return row.channel, row.event_type, json.dumps(row.data, cls=DjangoJSONEncoder)


def _append_to_model_storage(rows: list[OutboxEvent]) -> list:
    """DjangoModelStorage.append_event for many events: a fixed number of queries.

    The same rows the library writes (its ``get_events`` reads them for replay): per
    channel a counter, a placeholder event 0, then consecutive ids. The counters are locked
    until commit, so a channel's ids are handed out and committed in order.
    """
    from django_eventstream.event import Event
    from django_eventstream.models import Event as StoredEvent
    from django_eventstream.models import EventCounter

    channels = sorted({row.channel for row in rows})
    EventCounter.objects.bulk_create(
        [EventCounter(name=channel) for channel in channels], ignore_conflicts=True
    )
    counters = {
        counter.name: counter
        for counter in EventCounter.objects.select_for_update()
        .filter(name__in=channels)
        .order_by("name")
    }
    inserts = [StoredEvent(channel=name, eid=0) for name in channels if counters[name].value == 0]
    stored = []
    for row in rows:
        channel, event_type, text = _as_stored(row)
        counter = counters[channel]
        counter.value += 1
        inserts.append(
            StoredEvent(channel=channel, type=event_type, data=json.dumps(text), eid=counter.value)
        )
        stored.append(Event(channel, event_type, text, id=counter.value))
    StoredEvent.objects.bulk_create(inserts)
    now = timezone.now()
    for counter in counters.values():
        counter.updated = now
    EventCounter.objects.bulk_update(counters.values(), ["value", "updated"])
    return stored


def trim_event_storage() -> int:
    """Delete stored events older than django-eventstream keeps them (a day), and outbox
    rows published before then; return how many stored events went.

    Replaying from a trimmed id gives the client ``stream-reset``. The drain calls this.
    Each channel keeps its placeholder event 0, which replay from id 0 needs.
    """
    from django_eventstream.models import Event as StoredEvent
    from django_eventstream.storage import EVENT_TIMEOUT

    cutoff = timezone.now() - timedelta(minutes=EVENT_TIMEOUT)
    deleted, _ = StoredEvent.objects.filter(created__lt=cutoff).exclude(eid=0).delete()
    OutboxEvent.objects.filter(published_at__lt=cutoff).delete()
    return deleted


def _announce(stored: list) -> None:
    """Tell the connected clients about stored events: Redis, or this process only."""
    from resolutionflow import eventstream_redis

    if not stored:
        return
    if eventstream_redis.redis_config() is None:
        for event in stored:
            eventstream_redis.deliver_locally(event)
        return
    messages = [
        {
            "channel": event.channel,
            "event_type": event.type,
            "data": event.data,
            "pub_id": str(event.id),
        }
        for event in stored
    ]
    if not _publish_to_redis(messages):
        # Stored already: our own clients get them now, the others after the resync.
        for event in stored:
            eventstream_redis.deliver_locally(event)
        request_resync()
    _publish_to_grip(stored)


def _publish_to_redis(messages: list[dict[str, Any]]) -> bool:
    from resolutionflow import eventstream_redis

    if breaker.is_open():
        return False
    try:
        eventstream_redis.publish(*messages)
    except Exception as error:
        breaker.trip()
        logger.warning("Redis publish failed (%s); resyncing once Redis answers", error)
        _probe_until_redis_answers()
        return False
    return True


# While the breaker is open, one background thread per process asks Redis every half
# second whether it is back (a resync control: it costs nothing if delivered twice). The
# first answer closes the breaker and makes every web process re-read storage, so streams
# are consistent a second or so after Redis returns, not after the breaker's 10 s plus the
# next drain. The resync row stays the durable fallback: the drain sends it if we die.
PROBE_EVERY = 0.5
PROBE_FOR = 300.0
_probe_lock = threading.Lock()
_probe: threading.Thread | None = None


def _probe_until_redis_answers() -> None:
    global _probe
    with _probe_lock:
        if _probe is not None and _probe.is_alive():
            return
        _probe = threading.Thread(target=_probe_loop, name="redis-probe", daemon=True)
        _probe.start()


def _probe_loop() -> None:
    from resolutionflow import eventstream_redis

    give_up_at = time.monotonic() + PROBE_FOR
    while time.monotonic() < give_up_at:
        time.sleep(PROBE_EVERY)
        if eventstream_redis.redis_config() is None:
            return
        pending = _pending_resync_ids()
        try:
            eventstream_redis.publish({"control": RESYNC})
        except Exception as error:
            logger.debug("Redis still does not answer: %s", error)
            continue
        breaker.reset()
        _mark_resyncs_sent(pending)
        logger.info("Redis answers again: every web process re-reads its streams")
        return


def _pending_resync_ids() -> list[int]:
    try:
        return list(
            OutboxEvent.objects.filter(event_type=RESYNC, published_at__isnull=True).values_list(
                "id", flat=True
            )
        )
    except Exception:  # the database is out too: the drain sends the row later
        return []
    finally:
        connection.close()


def _mark_resyncs_sent(ids: list[int]) -> None:
    if not ids:
        return
    try:
        OutboxEvent.objects.filter(id__in=ids).update(published_at=timezone.now())
    except Exception:
        logger.warning("Could not mark resync rows sent; the drain will send them again")
    finally:
        connection.close()


def _publish_to_grip(stored: list) -> None:
    """Pushpin in front (GRIP_URL set): it holds the connections, we publish to it too."""
    if not (getattr(settings, "GRIP_URL", None) or getattr(settings, "GRIP_PROXIES", None)):
        return
    from django_eventstream.utils import publish_event

    for event in stored:
        try:
            publish_event(event.channel, event.type, event.data, str(event.id), str(event.id - 1))
        except Exception:
            logger.warning("Publishing event %s to the GRIP proxy failed", event.id, exc_info=True)


def request_resync() -> None:
    """Ask the drain to tell every web process to re-read storage (once Redis answers)."""
    try:
        if not OutboxEvent.objects.filter(event_type=RESYNC, published_at__isnull=True).exists():
            OutboxEvent.objects.create(channel=RESYNC_CHANNEL, event_type=RESYNC, data={})
    except Exception:
        logger.exception("Could not record a resync request")


def _send_pending_resyncs() -> None:
    from resolutionflow import eventstream_redis

    pending = list(
        OutboxEvent.objects.filter(event_type=RESYNC, published_at__isnull=True).values_list(
            "id", flat=True
        )
    )
    if not pending:
        return
    if eventstream_redis.redis_config() is None:
        eventstream_redis.resync_locally()
    else:
        try:
            eventstream_redis.publish({"control": RESYNC})
        except Exception as error:
            breaker.trip()
            logger.warning("Redis resync failed (%s); the next drain will retry", error)
            return
    OutboxEvent.objects.filter(id__in=pending).update(published_at=timezone.now())


def enqueue_task(task, *args: Any, on_failure: Callable[[], None] | None = None) -> bool:
    """Send a Celery task now; on a broker failure log it, call ``on_failure`` and return False.

    The work itself must already be recorded in the database (a status column or an outbox
    row) so that a sweep finds it later: a dead or paused broker costs one short timeout,
    then the breaker skips the broker for a while.
    """
    from resolutionflow.celery import app

    eager = app.conf.task_always_eager
    deferred = getattr(_after_response, "tasks", None)
    if eager and deferred is not None:
        # Inline tasks (embedded mode) run after the response and its events: see above.
        deferred.append(lambda: _apply(task, args, on_failure, eager=True))
        return True
    return _apply(task, args, on_failure, eager=eager)


def _apply(task, args: tuple, on_failure: Callable[[], None] | None, *, eager: bool) -> bool:
    if not eager and breaker.is_open():
        if on_failure is not None:
            on_failure()
        return False
    try:
        task.apply_async(args=args)
    except Exception as error:
        if not eager:
            breaker.trip()
        logger.warning("Enqueueing %s failed (%s); the sweep will retry", task.name, error)
        if on_failure is not None:
            on_failure()
        return False
    return True
