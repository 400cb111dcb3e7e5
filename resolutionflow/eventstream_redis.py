"""django-eventstream hardened: listeners that survive Redis failures, streams that do not
hold a database connection.

django-eventstream (5.3) relays events between processes through one Redis pub/sub task per
web process. That task dies on the first Redis error and is never restarted, so a Redis
restart silently stops every live update until the web process restarts. This module
replaces the library's listener manager at start-up (``install``, from the core app's
``ready``) with one that:

- runs a Redis listener that reconnects with backoff and pings a quiet connection, so a
  paused or restarted Redis is noticed and survived;
- after every (re)subscription, wakes every connected client to re-read the event storage
  from its last id (the stream loop's ``overflow`` path), so whatever was published while
  this process was not listening is delivered, in order, without a reconnect;
- on a control message (``{"control": "resync"}``, sent by the outbox drain after a failed
  publish) does the same;
- notices gaps in a channel's ids (announcements lost or out of order) and makes the
  channel's clients re-read storage instead of skipping the missing events.

``install`` also makes every stream give its database connection back to the pool after
each storage read (see ``_releasing_connection``).

The pub/sub channel is named after the database, so processes of different deployments (or
test runs) that share a Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import connection as db_connection
from django.utils import timezone
from django_eventstream.event import Event
from django_eventstream.views import MAX_PENDING, ListenerManager

from resolutionflow.broker import breaker
from resolutionflow.eventstore import RESYNC, RESYNC_CHANNEL
from resolutionflow.models import OutboxEvent

logger = logging.getLogger(__name__)

PING_EVERY = 5.0  # seconds of silence before we ask Redis whether it is still there
PONG_WITHIN = 3.0  # a ping unanswered for this long means a dead or paused Redis
SUBSCRIBE_WITHIN = 2.0
BACKOFF_FIRST = 0.25
# Short: a reconnection attempt is cheap, and streams wait for it after Redis returns.
BACKOFF_MAX = 1.0


def redis_config() -> dict | None:
    """The Redis the events travel through (settings.EVENTSTREAM_REDIS), or None."""
    return getattr(settings, "EVENTSTREAM_REDIS", None)


def pubsub_channel() -> str:
    return f"resolutionflow:events:{settings.DATABASES['default']['NAME']}"


_publisher_lock = threading.Lock()
_publisher: tuple[str, Any] | None = None


def publish(*messages: dict) -> None:
    """Publish messages on the events pub/sub channel, in one round trip (raises on errors)."""
    global _publisher
    config = redis_config()
    key = json.dumps(config, sort_keys=True, default=str)
    with _publisher_lock:
        if _publisher is None or _publisher[0] != key:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # redis-py retries a timed-out command 3 times with backoff by default: 15 s
            # on a paused Redis. One timeout is all a request may spend here.
            _publisher = (key, redis.Redis(**({"retry": Retry(NoBackoff(), 0)} | config)))
        client = _publisher[1]
    channel = pubsub_channel()
    with client.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.publish(channel, json.dumps(message))
        pipe.execute()


def deliver_locally(event: Event) -> None:
    """Hand a stored event to this process's connected clients."""
    from django_eventstream.views import get_listener_manager

    get_listener_manager().add_to_queues(event.channel, event)


def resync_locally() -> None:
    from django_eventstream.views import get_listener_manager

    manager = get_listener_manager()
    if isinstance(manager, ResilientListenerManager):
        manager.resync()


class ResilientListenerManager(ListenerManager):
    """The library's listener registry, with a self-healing Redis listener and gap checks."""

    def __init__(self) -> None:
        # Not calling super().__init__: it would build the library's fragile RedisListener.
        self.lock = threading.Lock()
        self.listeners_by_channel: dict[str, set] = {}
        self.redis_listener = None
        self.redis_listener_started = False
        # The last event id relayed per channel that has listeners: detects gaps.
        self.last_seen: dict[str, int] = {}
        # The highest id relayed per channel, listeners or not (the most recent channels):
        # where a channel's position is not known (its first listener just came, or a
        # resync forgot it), this is a safe guess, never above what any stream has read.
        self.relayed: OrderedDict[str, int] = OrderedDict()
        self.relay = RedisRelay(self)

    def add_listener(self, listener) -> None:
        if redis_config() is not None:
            self.relay.ensure_running()
        with self.lock:
            for channel in listener.channels:
                self.listeners_by_channel.setdefault(channel, set()).add(listener)

    def remove_listener(self, listener) -> None:
        with self.lock:
            for channel in listener.channels:
                listeners = self.listeners_by_channel.get(channel)
                if listeners is None:
                    continue
                listeners.discard(listener)
                if not listeners:
                    del self.listeners_by_channel[channel]
                    self.last_seen.pop(channel, None)

    def add_to_queues(self, channel: str, event: Event) -> None:
        """Queue ``event`` for the channel's listeners, unless it might skip one: then make
        them re-read storage instead.

        Ids of a stored channel are consecutive, and a stream remembers the id of the last
        event it passed on (django-eventstream re-reads storage after that id). So an event
        is passed on only when it is the very next id after the channel's known position.
        One that jumps ahead (announcements lost or late), or any event while the position
        is unknown (a channel's first, or the first after a resync or a reconnection), makes
        the listeners re-read from their own last ids instead; the re-read re-establishes
        the position: everything up to this id is committed (an id is handed out inside the
        committing transaction, in order). One at or below the position (a late or repeated
        announcement) is passed on: clients apply events idempotently. A listener already
        due to re-read gets nothing queued: its re-read includes the event.

        Where the position is unknown, the highest id this process relayed before stands in
        for it (``relayed``): that event was committed before, so every stream of the channel
        has read it or was handed it, and the event right after it skips nothing. A
        channel's first event (id 1) skips nothing either. Without these, every stream of a
        busy channel re-read storage at once on the first event after it connected.
        """
        event_id = _int_or_none(event.id)
        with self.lock:
            relayed_before = self._note_relayed(channel, event_id)
            listeners = self.listeners_by_channel.get(channel)
            if not listeners:
                return
            last = self.last_seen.get(channel)
            if last is None:
                last = _known_position(relayed_before, event_id)
            if event_id is not None and (last is None or event_id > last):
                self.last_seen[channel] = event_id
            if event_id is not None and (last is None or event_id > last + 1):
                for listener in listeners:
                    listener.overflow = True
                    _wake(listener)
                return
            for listener in listeners:
                if listener.overflow:
                    # It will re-read storage from its last id, which takes this event
                    # too. Handed over first, the event's id would become its last id and
                    # the re-read would start past the events it has yet to read. Woken
                    # all the same: the library's stream loop can clear its wake-up while
                    # the flag stays set (it tosses queued events after a read and waits
                    # again), and a listener left so hears nothing until the next gap.
                    _wake(listener)
                    continue
                items = listener.channel_items.setdefault(channel, [])
                if len(items) < MAX_PENDING:
                    items.append(event)
                else:
                    listener.overflow = True
                _wake(listener)

    def _note_relayed(self, channel: str, event_id: int | None) -> int | None:
        """Remember ``event_id`` as relayed on ``channel``; the highest id before it."""
        before = self.relayed.get(channel)
        if event_id is not None and (before is None or event_id > before):
            self.relayed[channel] = event_id
            self.relayed.move_to_end(channel)
            if len(self.relayed) > RELAYED_CHANNELS_KEPT:
                self.relayed.popitem(last=False)
        return before

    def resync(self) -> None:
        """Every connected client re-reads the storage from its own last id.

        The channels' positions are forgotten: until the next event of a channel makes its
        clients re-read again, no live event is passed on as the "next" one.
        """
        with self.lock:
            self.last_seen.clear()
            listeners = {item for group in self.listeners_by_channel.values() for item in group}
            for listener in listeners:
                listener.overflow = True
                _wake(listener)
        if listeners:
            logger.info("Resynced %d event-stream clients from storage", len(listeners))


RELAYED_CHANNELS_KEPT = 10_000


def _known_position(relayed_before: int | None, event_id: int | None) -> int | None:
    """A channel position to check ``event_id`` against when none is known, or None."""
    if relayed_before is not None:
        return relayed_before
    if event_id == 1:
        return 0  # a channel's first event: nothing before it to skip
    return None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _wake(listener) -> None:
    with contextlib.suppress(RuntimeError):  # its event loop is closed: the stream is gone
        listener.wake_threadsafe()


class RedisRelay:
    """One task per event loop that relays Redis pub/sub messages to the local listeners."""

    def __init__(self, manager: ResilientListenerManager) -> None:
        self.manager = manager
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self.connected = threading.Event()
        self.reconnects = 0

    def ensure_running(self) -> None:
        """Start the relay on the running loop unless it runs there already (or restart it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            task = self._task
            if task is not None and not task.done():
                if task.get_loop() is loop:
                    return
                # Another loop (a second server in this process) ran it: one relay only.
                _cancel_threadsafe(task)
            self._task = loop.create_task(self._run(), name="eventstream-redis-relay")

    def stop(self) -> None:
        """Stop relaying; the next stream to connect starts it again (with fresh settings)."""
        with self._lock:
            if self._task is not None:
                _cancel_threadsafe(self._task)
            self._task = None
            self.connected.clear()

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        me = asyncio.current_task()
        while True:
            try:
                await self._relay()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("Event relay lost Redis (%s); reconnecting", error or type(error))
            finally:
                if self.connected.is_set():
                    backoff = BACKOFF_FIRST  # it worked for a while: retry soon
                if self._task is me:
                    self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            self.reconnects += 1

    async def _relay(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No hidden retries: this loop does its own, and notices the failure at once.
        client = Redis(**({"retry": Retry(NoBackoff(), 0)} | redis_config()))
        pubsub = client.pubsub()
        try:
            await asyncio.wait_for(pubsub.subscribe(pubsub_channel()), SUBSCRIBE_WITHIN)
            await self._await_subscribed(pubsub)
            self.connected.set()
            # Whatever was published while we were not subscribed is in storage.
            self.manager.resync()
            await self._pump(pubsub)
        finally:
            await _close_quietly(pubsub, client)

    async def _await_subscribed(self, pubsub) -> None:
        deadline = time.monotonic() + SUBSCRIBE_WITHIN
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.5)
            if message and message["type"] == "subscribe":
                return
        raise TimeoutError("no subscribe confirmation from Redis")

    async def _pump(self, pubsub) -> None:
        heard_at = time.monotonic()
        pinged_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                heard_at, pinged_at = now, None
                if message["type"] == "message":
                    self._handle(message["data"])
                continue
            if pinged_at is not None and now - pinged_at > PONG_WITHIN:
                raise TimeoutError("Redis did not answer a ping")
            if pinged_at is None and now - heard_at > PING_EVERY:
                await asyncio.wait_for(pubsub.ping(), PONG_WITHIN)
                pinged_at = now

    def _handle(self, raw) -> None:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            logger.warning("Ignoring a malformed event-relay message")
            return
        if message.get("control") == "resync":
            self.manager.resync()
            return
        try:
            event = Event(
                message["channel"],
                message["event_type"],
                message["data"],
                id=_int_or_none(message.get("pub_id")),
            )
        except KeyError:
            logger.warning("Ignoring an event-relay message without channel or type")
            return
        self.manager.add_to_queues(event.channel, event)


def _cancel_threadsafe(task: asyncio.Task) -> None:
    with contextlib.suppress(RuntimeError):  # that loop is closed already
        task.get_loop().call_soon_threadsafe(task.cancel)


async def _close_quietly(pubsub, client) -> None:
    for close in (pubsub.aclose, client.aclose):
        with contextlib.suppress(Exception):  # the connection is being thrown away anyway
            await asyncio.wait_for(close(), 1.0)


def _releasing_connection(get_events):
    """Wrap django-eventstream's ``get_events`` to give the database connection back.

    A stream reads storage in its request's thread (when it opens, after a gap or a resync)
    and then waits, possibly for hours. Django returns a request's connection only when the
    response ends, so every open stream would hold a connection of the pool (20 by
    default) and the 21st visitor would wait for one. After each read the connection goes
    back to the pool; the next read takes one again.
    """

    @functools.wraps(get_events)
    def get_events_then_release(*args, **kwargs):
        try:
            return get_events(*args, **kwargs)
        finally:
            if not db_connection.in_atomic_block:
                db_connection.close()

    get_events_then_release.releases_connection = True
    return get_events_then_release


_installed = False


def install() -> None:
    """Harden django-eventstream in this process (idempotent): the resilient listener
    manager in place of the library's, and streams that do not hold a database connection."""
    global _installed
    if _installed:
        return
    from django_eventstream import eventstream, views

    views.listener_manager = ResilientListenerManager()
    if not getattr(eventstream.get_events, "releases_connection", False):
        eventstream.get_events = _releasing_connection(eventstream.get_events)
    _installed = True


# -- announcing stored events (the outbox calls ``announce`` after storing them) ------------
#
# On Redis when it is configured (one round trip; every web process's relay hands them to
# its clients), else to this process's listeners. If Redis fails, the breaker opens, this
# process's own clients get the events at once, a resync row is recorded, and a probe
# thread waits for Redis to answer to tell every process to re-read storage.


def announce(stored: list) -> None:
    """Tell the connected clients about stored events: Redis, or this process only."""
    if not stored:
        return
    if redis_config() is None:
        for event in stored:
            deliver_locally(event)
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
            deliver_locally(event)
        request_resync()


def _publish_to_redis(messages: list[dict[str, Any]]) -> bool:
    if breaker.is_open():
        # Opened here or by a failed Celery enqueue (``broker.enqueue_task``): either way the
        # probe closes it as soon as Redis answers, not after the breaker's full time.
        _probe_until_redis_answers()
        return False
    try:
        publish(*messages)
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
_probe_stop = threading.Event()


def _probe_until_redis_answers() -> None:
    global _probe
    with _probe_lock:
        if _probe is not None and _probe.is_alive():
            return
        _probe_stop.clear()
        _probe = threading.Thread(target=_probe_loop, name="redis-probe", daemon=True)
        _probe.start()


def stop_probe() -> None:
    """Stop a running probe (tests, between two Redis servers)."""
    global _probe
    _probe_stop.set()
    with _probe_lock:
        probe, _probe = _probe, None
    if probe is not None:
        probe.join(timeout=5)


def _probe_loop() -> None:
    give_up_at = time.monotonic() + PROBE_FOR
    while time.monotonic() < give_up_at:
        if _probe_stop.wait(PROBE_EVERY):
            return
        if redis_config() is None:
            return
        pending = _pending_resync_ids()
        try:
            publish({"control": RESYNC})
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


def request_resync() -> None:
    """Ask the drain to tell every web process to re-read storage (once Redis answers)."""
    try:
        if not OutboxEvent.objects.filter(event_type=RESYNC, published_at__isnull=True).exists():
            OutboxEvent.objects.create(channel=RESYNC_CHANNEL, event_type=RESYNC, data={})
    except Exception:
        logger.exception("Could not record a resync request")


def send_pending_resyncs() -> None:
    pending = list(
        OutboxEvent.objects.filter(event_type=RESYNC, published_at__isnull=True).values_list(
            "id", flat=True
        )
    )
    if not pending:
        return
    if redis_config() is None:
        resync_locally()
    else:
        try:
            publish({"control": RESYNC})
        except Exception as error:
            breaker.trip()
            logger.warning("Redis resync failed (%s); the next drain will retry", error)
            return
    OutboxEvent.objects.filter(id__in=pending).update(published_at=timezone.now())
