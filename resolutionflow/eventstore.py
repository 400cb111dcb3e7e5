"""The event store: django-eventstream's storage, written in batches, replayed, trimmed.

The library's ``DjangoModelStorage`` keeps, per channel, a counter and the events with
consecutive ids; its ``get_events`` replays them to a stream after ``Last-Event-ID``. The
outbox appends to those same tables here, many events at once in a fixed number of queries
(one statement on PostgreSQL), marking their outbox rows published in the same
transaction: each event is stored exactly once, however often publishing is retried.
Writing the library's tables ourselves is pinned by tests (tests/escalations/
test_outbox.py replays what we wrote through the library's own reader) and by the
django-eventstream version range in pyproject.toml.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from resolutionflow.models import OutboxEvent

# A control row of the outbox, never stored or shown: "web processes, re-read storage for
# your clients" (sent by ``resolutionflow.eventstream_redis``).
RESYNC = "resync"
RESYNC_CHANNEL = "*"


def batches(event_ids: list[int] | None, limit: int, size: int = 500):
    if event_ids is not None and one_statement_store():
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


def one_statement_store() -> bool:
    """PostgreSQL and django-eventstream's model storage: ``_store_postgresql`` applies."""
    from django_eventstream.storage import DjangoModelStorage
    from django_eventstream.utils import get_storage

    return connection.vendor == "postgresql" and isinstance(get_storage(), DjangoModelStorage)


def store(ids: list[int]) -> list:
    """Append these outbox rows to the event storage and mark them published, atomically.

    Rows another publisher holds or has published are skipped, so each event is stored
    exactly once. Returns the stored events (django-eventstream ``Event``s with their ids).
    """
    from django_eventstream.storage import DjangoModelStorage
    from django_eventstream.utils import get_storage

    if one_statement_store():
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


# ``store`` on PostgreSQL in one statement, so one round trip and no transaction block: it
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


def position(channels: list[str]) -> str:
    """Where these channels stand now, as a ``Last-Event-ID`` (``queue-1:41,user-7:3``).

    A page hands it to the stream it opens (``?lastEventId=``): whatever is published
    between the render and the stream's connection is replayed, not missed. One query; a
    channel with no events yet stands at 0.
    """
    from django_eventstream.models import EventCounter
    from django_eventstream.utils import make_id

    current = dict(EventCounter.objects.filter(name__in=channels).values_list("name", "value"))
    return make_id({channel: current.get(channel, 0) for channel in channels})


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
