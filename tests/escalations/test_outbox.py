"""The outbox: events recorded in the transaction, stored once after commit, announced on
Redis (or in-process), and never lost or waited on when Redis is down or paused."""

import json
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_eventstream.models import Event as StoredEvent

from escalations.channels import queue_channel
from resolutionflow import events, eventstore, eventstream_redis
from resolutionflow.events import (
    RESYNC,
    breaker,
    enqueue_task,
    publish_outbox_events,
    send_event_on_commit,
    send_events_on_commit,
)
from resolutionflow.models import OutboxEvent
from resolutionflow.tasks import drain_outbox
from tests.services import RedisServer, celery_broker


@pytest.fixture(autouse=True)
def closed_breaker():
    breaker.reset()
    yield
    eventstream_redis.stop_probe()  # a probe left running would close a later test's breaker
    breaker.reset()


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def stored(channel: str) -> list[dict]:
    rows = StoredEvent.objects.filter(channel=channel, eid__gt=0).order_by("eid")
    return [json.loads(json.loads(row.data)) | {"_type": row.type} for row in rows]


@pytest.mark.django_db
def test_an_escalations_event_must_name_its_handoff():
    from escalations import streams

    with pytest.raises(ValueError, match="handoff"):
        streams.send_event_on_commit("queue-1", "handoff-escalated", {"session": 3})
    with pytest.raises(ValueError, match="handoff"):
        streams.send_events_on_commit([("queue-1", "x", {"handoff": "a"}), ("queue-1", "y", {})])
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_the_core_outbox_knows_no_feature_rule(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        send_event_on_commit("other-1", "tick", {"n": 1})
    assert stored("other-1") == [{"n": 1, "_type": "tick"}]


@pytest.mark.django_db
def test_an_event_is_stored_after_commit_exactly_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event = send_event_on_commit("queue-1", "handoff-escalated", {"handoff": "h1"})
        event.refresh_from_db()
        assert event.published_at is None
        assert stored("queue-1") == []

    event.refresh_from_db()
    assert event.published_at is not None
    assert stored("queue-1") == [{"handoff": "h1", "_type": "handoff-escalated"}]
    # A drain, or the same callback run twice: nothing is stored again.
    assert publish_outbox_events() == 0
    assert publish_outbox_events([event.pk]) == 0
    assert len(stored("queue-1")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_sends_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        send_event_on_commit("queue-1", "handoff-escalated", {"handoff": "h1"})
        raise RuntimeError("the escalation failed")
    assert not OutboxEvent.objects.exists()
    assert stored("queue-1") == []


@pytest.mark.django_db(transaction=True)
def test_several_events_are_one_insert_and_one_callback(django_assert_num_queries):
    with transaction.atomic(), django_assert_num_queries(1):
        send_events_on_commit(
            [(f"user-{n}", "notification", {"handoff": "h1", "n": n}) for n in range(5)]
        )
    assert OutboxEvent.objects.filter(published_at__isnull=False).count() == 5


@pytest.mark.django_db
def test_the_drain_publishes_what_was_left_behind_in_order():
    channel = queue_channel(1)
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(channel=channel, event_type="e", data={"handoff": str(n)}) for n in range(3)]
    )
    assert drain_outbox() == 3
    assert [item["handoff"] for item in stored(channel)] == ["0", "1", "2"]
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    eids = list(
        StoredEvent.objects.filter(channel=channel, eid__gt=0).values_list("eid", flat=True)
    )
    assert eids == [1, 2, 3]


@pytest.mark.django_db
@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "portable"])
def test_both_ways_of_storing_write_what_the_library_replays(one_statement, monkeypatch, request):
    # PostgreSQL stores a batch in one statement; elsewhere the ORM does it in several.
    # Either way django-eventstream's own reader must replay exactly what was announced.
    if one_statement:
        request.getfixturevalue("postgres_only")
    monkeypatch.setattr(eventstore, "one_statement_store", lambda: one_statement)
    announced = []
    monkeypatch.setattr(eventstream_redis, "announce", announced.extend)
    from django_eventstream.storage import DjangoModelStorage

    earlier = OutboxEvent.objects.create(channel="queue-1", event_type="e", data={"handoff": "0"})
    assert publish_outbox_events([earlier.pk]) == 1
    rows = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(channel="queue-1", event_type="handoff-claimed", data={"handoff": "1"}),
            OutboxEvent(
                channel="handoff-a",
                event_type="handoff-claimed",
                data={"handoff": "1", "by": "Zoë ✓"},
            ),
            OutboxEvent(channel="queue-1", event_type="handoff-released", data={"handoff": "2"}),
            OutboxEvent(channel="user-7", event_type="notification", data={"handoff": "2", "n": 3}),
        ]
    )
    resync = OutboxEvent.objects.create(channel="*", event_type=RESYNC, data={})

    ids = [row.pk for row in rows] + [earlier.pk, resync.pk]
    assert publish_outbox_events(ids) == 4

    # Announced in outbox order, each with its channel's next id.
    assert [(e.channel, e.type, e.id) for e in announced] == [
        ("queue-1", "e", 1),
        ("queue-1", "handoff-claimed", 2),
        ("handoff-a", "handoff-claimed", 1),
        ("queue-1", "handoff-released", 3),
        ("user-7", "notification", 1),
    ]
    replayed = {
        channel: DjangoModelStorage().get_events(channel, 0)
        for channel in ["queue-1", "handoff-a", "user-7"]
    }
    for event in announced:
        (match,) = [e for e in replayed[event.channel] if e.id == event.id]
        assert match.type == event.type
        assert json.loads(match.data) == json.loads(event.data)
    assert json.loads(replayed["handoff-a"][0].data) == {"handoff": "1", "by": "Zoë ✓"}
    assert DjangoModelStorage().get_current_id("queue-1") == 3
    # Marked published once; the resync control row is never stored as an event.
    assert set(OutboxEvent.objects.filter(pk__in=ids).values_list("pk", "attempts")) == {
        (row.pk, 1) for row in [earlier, *rows]
    } | {(resync.pk, 0)}
    assert not StoredEvent.objects.filter(channel="*").exists()
    assert publish_outbox_events(ids) == 0


@pytest.mark.django_db
def test_ids_of_rolled_back_transactions_never_crowd_out_a_fresh_event():
    # A thread's rolled-back transactions leave their ids pending until its next commit.
    event = OutboxEvent.objects.create(channel="queue-1", event_type="e", data={"handoff": "h"})
    gone = list(range(event.pk + 1, event.pk + 1201))
    assert publish_outbox_events(gone + [event.pk]) == 1
    assert stored("queue-1") == [{"handoff": "h", "_type": "e"}]


@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_store_each_event_once(postgres_only):
    # A new channel: its counter is created by whichever drain gets there first.
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(channel="queue-9", event_type="e", data={"handoff": str(n)})
            for n in range(40)
        ]
    )
    barrier = threading.Barrier(4)
    counts, errors = [], []

    def drain():
        try:
            barrier.wait()
            counts.append(publish_outbox_events())
        except Exception as error:  # a broken transaction, a duplicate id...
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(counts) == 40
    handoffs = [item["handoff"] for item in stored("queue-9")]
    assert sorted(handoffs, key=int) == [str(n) for n in range(40)]


@pytest.mark.django_db(transaction=True)
def test_a_paused_redis_costs_one_short_timeout_and_loses_nothing(private_redis):
    listener = redis.Redis.from_url(private_redis.url)
    with override_settings(EVENTSTREAM_REDIS=private_redis.settings()):
        subscriber = listener.pubsub()
        subscriber.subscribe(eventstream_redis.pubsub_channel())
        subscriber.get_message(timeout=1)  # the subscribe confirmation

        private_redis.pause()
        started = time.monotonic()
        with transaction.atomic():
            send_events_on_commit(
                [(f"user-{n}", "notification", {"handoff": "h1", "n": n}) for n in range(5)]
            )
        elapsed = time.monotonic() - started

        assert elapsed < 2, f"publishing waited {elapsed:.1f} s on a paused Redis"
        assert breaker.is_open()
        # Stored (replayable) and marked: only the announcement is owed.
        assert OutboxEvent.objects.exclude(event_type=RESYNC).filter(published_at=None).count() == 0
        assert StoredEvent.objects.filter(channel__startswith="user-", eid__gt=0).count() == 5
        assert OutboxEvent.objects.filter(event_type=RESYNC, published_at=None).count() == 1

        private_redis.resume()
        # The resumed server may deliver the publish that timed out; skip anything but resync.
        drain_outbox()
        deadline = time.monotonic() + 5
        control = None
        while time.monotonic() < deadline and control is None:
            message = subscriber.get_message(timeout=0.5)
            if message and message["type"] == "message":
                data = json.loads(message["data"])
                control = data if "control" in data else None
        assert control == {"control": "resync"}
        assert not OutboxEvent.objects.filter(published_at=None).exists()
    listener.close()


@pytest.mark.django_db(transaction=True)
def test_a_dead_redis_is_skipped_by_the_breaker(private_redis):
    private_redis.stop()
    with override_settings(EVENTSTREAM_REDIS=private_redis.settings()):
        started = time.monotonic()
        for n in range(20):
            with transaction.atomic():
                send_event_on_commit("queue-1", "e", {"handoff": str(n)})
        assert time.monotonic() - started < 2
        assert len(stored("queue-1")) == 20
        # One resync owed, however many events: the probe cannot send it to a dead Redis.
        assert OutboxEvent.objects.filter(event_type=RESYNC, published_at=None).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_celery_enqueue_on_a_paused_broker_fails_fast_and_says_so(private_redis):
    from escalations.tasks import send_escalation_email

    failures = []
    with celery_broker(private_redis.url):
        private_redis.pause()
        started = time.monotonic()
        first = enqueue_task(send_escalation_email, 1, on_failure=lambda: failures.append(1))
        second = enqueue_task(send_escalation_email, 2, on_failure=lambda: failures.append(2))
        elapsed = time.monotonic() - started
        private_redis.resume()
    assert (first, second) == (False, False)
    assert failures == [1, 2]
    assert elapsed < 2, f"the enqueue waited {elapsed:.1f} s"
    assert breaker.is_open()


@pytest.mark.django_db(transaction=True)
def test_a_celery_enqueue_reaches_a_live_broker(private_redis):
    from escalations.tasks import send_escalation_email

    with celery_broker(private_redis.url):
        assert enqueue_task(send_escalation_email, 7) is True
    # Emails have a queue of their own: a slow mail server never holds up the drain.
    queued = redis.Redis.from_url(private_redis.url).lrange("email", 0, -1)
    assert len(queued) == 1
    assert json.loads(queued[0])["headers"]["task"] == "escalations.tasks.send_escalation_email"


@pytest.mark.django_db(transaction=True)
def test_in_a_request_events_then_inline_tasks_run_after_the_response(monkeypatch, request):
    # Embedded mode runs Celery tasks inline: an escalation's emails must neither hold the
    # response nor the live events (300 engineers: a second of SMTP).
    from celery import shared_task

    from resolutionflow.celery import app

    previously_eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    request.addfinalizer(lambda: setattr(app.conf, "task_always_eager", previously_eager))
    happened = []

    @shared_task(name="tests.outbox.mail")
    def mail(n):
        happened.append(f"mail {n}")

    real_publish = events.publish_committed
    monkeypatch.setattr(
        events, "publish_committed", lambda ids: happened.append("events") or real_publish(ids)
    )

    with events.publishing_after_response() as committed:
        with transaction.atomic():
            send_event_on_commit("queue-1", "handoff-escalated", {"handoff": "h1"})
            transaction.on_commit(lambda: enqueue_task(mail, 1))
        assert happened == []  # committed, but nothing has left yet: the response goes first
    committed.run()

    assert happened == ["events", "mail 1"]
    assert stored("queue-1") == [{"handoff": "h1", "_type": "handoff-escalated"}]
    # Outside a request both happen at commit, as before.
    with transaction.atomic():
        transaction.on_commit(lambda: enqueue_task(mail, 2))
    assert happened[-1] == "mail 2"


@pytest.mark.django_db
def test_the_drain_trims_what_replay_no_longer_needs():
    channel = queue_channel(1)
    OutboxEvent.objects.bulk_create(
        OutboxEvent(channel=channel, event_type="e", data={"handoff": str(n)}) for n in range(3)
    )
    drain_outbox()
    two_days_ago = timezone.now() - timedelta(days=2)
    StoredEvent.objects.filter(channel=channel, eid__in=[0, 1, 2]).update(created=two_days_ago)
    oldest = OutboxEvent.objects.order_by("id")[:2]
    OutboxEvent.objects.filter(pk__in=[row.pk for row in oldest]).update(published_at=two_days_ago)

    drain_outbox()

    # The placeholder 0 stays (replay from id 0 needs it), event 3 is recent.
    assert list(
        StoredEvent.objects.filter(channel=channel).order_by("eid").values_list("eid", flat=True)
    ) == [0, 3]
    assert OutboxEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_events_are_published_when_the_response_is_closed(tess, sam):
    # Over a real ASGI server: the middleware hands the committed events to
    # request_finished, which Django sends from response.close() in the request's thread.
    # If that ever changes, the events wait for a drain that never comes here.
    from tests.asgi import AsgiServer, wait_until
    from tests.services import Escalator

    server = AsgiServer()
    server.start()
    escalator = Escalator(server, tess)
    try:
        response, _ = escalator.escalate("Printers: every job stays queued")
        assert response.status_code == 201, response.text
        handoff = response.json()["handoff"]
        wait_until(
            lambda: not OutboxEvent.objects.filter(published_at=None).exists(),
            5,
            "the events of the request were not published after its response",
        )
        assert any(item["handoff"] == handoff for item in stored(queue_channel(tess.account_id)))
    finally:
        escalator.client.close()
        server.stop()
