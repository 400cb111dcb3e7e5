"""The listener manager against django-eventstream's own stream loop.

No server and no database: the library's ``stream`` generator runs on an event loop of the
test, reading a storage kept in memory, while the test announces events the way the Redis
relay does. Each scenario follows one stream through a resync or a gap and checks that
every stored event reaches it.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from django.test import override_settings
from django_eventstream import eventstream, views
from django_eventstream.event import Event
from django_eventstream.eventresponse import EventResponse

from resolutionflow import eventstream_redis

QUEUE, BELL = "queue-1", "user-1"


class Storage:
    """Channels of consecutive event ids, read the way django-eventstream's storage is."""

    def __init__(self, manager, *channels: str) -> None:
        self.manager = manager
        self.events: dict[str, list[Event]] = {channel: [] for channel in channels}
        self.reads = 0
        self.during_read: dict[int, callable] = {}  # read number → what happens meanwhile

    def store(self, channel: str) -> Event:
        events = self.events[channel]
        event = Event(channel, "ping", json.dumps({"n": f"{channel}:{len(events) + 1}"}))
        event.id = len(events) + 1
        events.append(event)
        return event

    def store_and_announce(self, channel: str) -> None:
        self.manager.add_to_queues(channel, self.store(channel))

    def get_events(self, request) -> EventResponse:
        self.reads += 1
        meanwhile = self.during_read.pop(self.reads, None)
        if meanwhile is not None:
            meanwhile()
        response = EventResponse()
        for channel in request.channels:
            after = request.channel_last_ids.get(channel, 0)
            items = [event for event in self.events[channel] if event.id > after]
            response.channel_items[channel] = items
            response.channel_last_ids[channel] = items[-1].id if items else after
        return response


def received(bodies: list[str]) -> list[str]:
    return [
        json.loads(line.removeprefix("data: "))["n"]
        for body in bodies
        for line in body.splitlines()
        if line.startswith("data: {")
    ]


async def until(condition, timeout: float = 2.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.fixture
def manager(monkeypatch):
    manager = eventstream_redis.ResilientListenerManager()
    monkeypatch.setattr(views, "listener_manager", manager)
    with override_settings(EVENTSTREAM_REDIS=None):  # the manager alone, no relay to start
        yield manager


def run_stream(manager, storage: Storage, monkeypatch, scenario) -> list[str]:
    """Run one stream on ``storage``'s channels through ``scenario``; what it sent."""
    monkeypatch.setattr(eventstream, "get_events", storage.get_events)
    request = SimpleNamespace(
        channels=set(storage.events),
        channel_last_ids={channel: len(events) for channel, events in storage.events.items()},
    )
    listener = views.Listener()
    listener.channels = set(storage.events)

    async def main() -> list[str]:
        bodies: list[str] = []

        async def consume() -> None:
            async for body in views.stream(request, listener):
                bodies.append(body)

        task = asyncio.create_task(consume())
        try:
            await scenario(storage, bodies)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return received(bodies)

    return asyncio.run(main())


def test_a_gap_during_the_reread_after_a_resync_does_not_leave_the_stream_deaf(
    manager, monkeypatch
):
    # The bell stream listens on two channels. After a resync it re-reads storage; while it
    # reads, the next queue event is announced (queued for it), then a bell event whose
    # predecessor this process never relayed (stored by another process while Redis was
    # paused): a gap, so it must re-read again. The library tosses the queued event and
    # re-reads; the stream must then still hear every event that follows.
    storage = Storage(manager, QUEUE, BELL)
    for channel in (QUEUE, QUEUE, BELL):
        storage.store_and_announce(channel)  # relayed before the stream opened

    def during_the_reread() -> None:
        storage.store_and_announce(QUEUE)
        storage.store(BELL)  # the other process's, never announced here
        storage.store_and_announce(BELL)

    async def scenario(storage: Storage, bodies: list[str]) -> None:
        assert await until(lambda: storage.reads == 1)
        storage.during_read[2] = during_the_reread
        manager.resync()
        assert await until(lambda: storage.reads >= 3)
        await asyncio.sleep(0.05)  # caught up and waiting
        storage.store_and_announce(QUEUE)
        storage.store_and_announce(BELL)
        await until(lambda: {"queue-1:4", "user-1:4"} <= set(received(bodies)))

    got = run_stream(manager, storage, monkeypatch, scenario)

    assert set(got) == {"queue-1:3", "queue-1:4", "user-1:2", "user-1:3", "user-1:4"}, got


def test_a_full_queue_makes_the_stream_reread_and_miss_nothing(manager, monkeypatch):
    # More announcements than a stream may hold queued: the rest wait in storage.
    storage = Storage(manager, QUEUE)

    async def scenario(storage: Storage, bodies: list[str]) -> None:
        assert await until(lambda: storage.reads == 1)
        for _ in range(views.MAX_PENDING * 3):
            storage.store_and_announce(QUEUE)
        await until(lambda: len(received(bodies)) >= views.MAX_PENDING * 3)

    got = run_stream(manager, storage, monkeypatch, scenario)

    assert sorted(set(got), key=lambda n: int(n.split(":")[1])) == [
        f"queue-1:{n}" for n in range(1, views.MAX_PENDING * 3 + 1)
    ]
