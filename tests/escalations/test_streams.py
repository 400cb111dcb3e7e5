"""The event streams through a real ASGI server (uvicorn) and a real HTTP client.

Arrival, replay by Last-Event-ID, stream-reset, every refusal, and the Redis relay that
survives a restarted or paused Redis. The server runs in a thread of the test process, so
it shares the test database: every test here is transaction=True.
"""

import html
import json
import re

import httpx2
import pytest
from django.test import override_settings
from django_eventstream.models import Event as StoredEvent
from django_eventstream.utils import get_storage
from django_eventstream.views import get_listener_manager

from escalations import actions
from escalations.channels import handoff_channel, queue_channel, user_channel
from flowpilot.models import Session
from resolutionflow import eventstream_redis
from resolutionflow.events import breaker
from resolutionflow.models import Role, User
from tests.asgi import AsgiServer, SseStream, session_cookie, wait_until
from tests.services import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = AsgiServer()
        server.start()
        yield server
        server.stop()


@pytest.fixture
def streams(server):
    """open(user, path, headers=None) → an SseStream; all are closed after the test."""
    opened = []

    def open_stream(user, path, headers=None) -> SseStream:
        cookies = session_cookie(user) if user is not None else {}
        stream = SseStream(server.url, path, cookies=cookies, headers=headers)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def escalate(user, problem="Printer queue stuck on every PC", urgency="normal"):
    session = Session.objects.create(account=user.account, owner=user, problem=problem)
    return actions.escalate(
        session=session, user=user, reason="Restarted the spooler, still stuck", urgency=urgency
    ).handoff


def get(server, user, path, **kwargs) -> httpx2.Response:
    cookies = session_cookie(user) if user is not None else {}
    with httpx2.Client(base_url=server.url, cookies=cookies, timeout=5) as client:
        return client.get(path, **kwargs)


# -- arrival --------------------------------------------------------------------------------


def test_an_escalation_arrives_on_every_seniors_queue_stream(streams, tess, sam, ada):
    sam_queue = streams(sam, "/escalations/events/").wait_open()
    ada_queue = streams(ada, "/escalations/events/").wait_open()

    handoff = escalate(tess)

    for stream in (sam_queue, ada_queue):
        event = stream.wait_for("handoff-escalated", timeout=3)
        assert event.json["handoff"] == str(handoff.pk)
        assert event.id.startswith(f"{queue_channel(tess.account_id)}:")


def test_notifications_reach_only_their_recipients(streams, tess, sam, gwen):
    sam_bell = streams(sam, "/notifications/events/").wait_open()
    tess_bell = streams(tess, "/notifications/events/").wait_open()
    gwen_bell = streams(gwen, "/notifications/events/").wait_open()

    handoff = escalate(tess)

    arrived = sam_bell.wait_for("notification", timeout=3)
    assert arrived.json["handoff"] == str(handoff.pk)
    assert arrived.json["kind"] == "handoff_escalated"
    assert "Tess Tran escalated" in arrived.json["text"]
    # The id names every channel of the stream (a senior's bell also hears the queue).
    assert any(part.startswith(f"{user_channel(sam.pk)}:") for part in arrived.id.split(","))

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    claimed = tess_bell.wait_for("notification", timeout=3)
    assert claimed.json == claimed.json | {"handoff": str(handoff.pk), "kind": "handoff_claimed"}
    # Another account hears nothing at all.
    assert [e.event for e in gwen_bell.drain(quiet=0.5)] == []


def test_a_seniors_bell_hears_claims_so_it_recounts_a_technicians_does_not(streams, tess, sam, sky):
    sky_bell = streams(sky, "/notifications/events/").wait_open()
    tess_bell = streams(tess, "/notifications/events/").wait_open()
    handoff = escalate(tess)
    sky_bell.wait_for("notification", timeout=3)

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    claimed = sky_bell.wait_for("handoff-claimed", timeout=3)
    assert claimed.json["handoff"] == str(handoff.pk)
    heard = [event.event for event in tess_bell.drain(quiet=0.5)]
    assert "notification" in heard  # who picked her escalation up
    assert not {"handoff-escalated", "handoff-claimed"} & set(heard)  # never the queue


def test_the_handoff_stream_carries_its_updates_to_the_escalator(streams, tess, sam):
    handoff = escalate(tess)
    watching = streams(tess, f"/handoffs/{handoff.pk}/events/").wait_open()

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    event = watching.wait_for("handoff-claimed", timeout=3)
    assert event.json["handoff"] == str(handoff.pk)
    assert event.id.startswith(f"{handoff_channel(handoff.pk)}:")


# -- replay ---------------------------------------------------------------------------------


def test_a_reconnect_with_last_event_id_replays_what_was_missed(streams, tess, sam):
    first_connection = streams(sam, "/escalations/events/").wait_open()
    first = escalate(tess, "VPN drops every hour")
    seen = first_connection.wait_for("handoff-escalated", timeout=3)
    assert seen.json["handoff"] == str(first.pk)
    first_connection.close()

    missed = [escalate(tess, "Outlook asks for a password"), escalate(tess, "Scanner offline")]

    by_header = streams(sam, "/escalations/events/", headers={"Last-Event-ID": seen.id})
    by_header.wait_open()
    replayed = [by_header.wait_for("handoff-escalated", timeout=3) for _ in missed]
    assert [e.json["handoff"] for e in replayed] == [str(h.pk) for h in missed]

    # EventSource polyfills send it as a query parameter: the same replay.
    by_query = streams(sam, f"/escalations/events/?lastEventId={seen.id}").wait_open()
    replayed = [by_query.wait_for("handoff-escalated", timeout=3) for _ in missed]
    assert [e.json["handoff"] for e in replayed] == [str(h.pk) for h in missed]


def stream_of(page: str, element_id: str) -> str:
    """The sse-connect URL of the element ``element_id`` in a rendered page."""
    tag = re.search(rf'<div[^>]*id="{element_id}"[^>]*>', page).group(0)
    return html.unescape(re.search(r'sse-connect="([^"]+)"', tag).group(1))


def test_a_pages_streams_resume_from_its_render_so_nothing_before_the_connection_is_lost(
    server, streams, tess, sam, sky
):
    handoff = escalate(tess)
    page = get(server, sam, f"/handoffs/{handoff.pk}/").text
    screen, bell = stream_of(page, "handoff"), stream_of(page, "bell-stream")
    assert "lastEventId=" in screen and "lastEventId=" in bell

    # Published after the render, before either stream connects (a slow network, a busy tab).
    actions.claim_handoff(handoff_id=handoff.pk, user=sky)
    late = escalate(tess, "Teams calls drop after a minute")

    claimed = streams(sam, screen).wait_open().wait_for("handoff-claimed", timeout=3)
    assert claimed.json["handoff"] == str(handoff.pk)
    rang = streams(sam, bell).wait_open().wait_for("notification", timeout=3)
    assert rang.json["handoff"] == str(late.pk)
    # Without the render's position a stream starts at its connection: nothing is replayed.
    fresh = streams(sam, "/notifications/events/").wait_open()
    assert [event.event for event in fresh.drain(quiet=0.5)] == []


def test_a_last_event_id_the_storage_no_longer_has_resets_the_stream(streams, tess, sam):
    channel = queue_channel(tess.account_id)
    connection = streams(sam, "/escalations/events/").wait_open()
    escalate(tess)
    seen = connection.wait_for("handoff-escalated", timeout=3)
    connection.close()
    escalate(tess, "Scanner offline")
    # The storage is trimmed (django-eventstream keeps a day): the id is gone.
    StoredEvent.objects.filter(channel=channel, eid__lte=int(seen.id.split(":")[1])).delete()

    expired = streams(sam, "/escalations/events/", headers={"Last-Event-ID": seen.id})
    reset = expired.wait_open().next(timeout=3)
    assert reset.event == "stream-reset"
    assert reset.json == {"channels": [channel]}

    # An id from the future (made up) is no better: a reset, never an error.
    future = streams(sam, "/escalations/events/", headers={"Last-Event-ID": f"{channel}:99999"})
    assert future.wait_open().next(timeout=3).event == "stream-reset"


def test_a_chat_page_follows_its_escalated_session_by_session_id(streams, tess, sam):
    from flowpilot import actions as flowpilot_actions

    handoff = escalate(tess)
    follows = streams(tess, f"/handoffs/sessions/{handoff.session_id}/events/").wait_open()

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert follows.wait_for("handoff-claimed", timeout=3).json["handoff"] == str(handoff.pk)

    flowpilot_actions.post_message(session=handoff.session, user=sam, body="Which model?")
    said = follows.wait_for("session-activity", timeout=3)
    answered = follows.wait_for("session-activity", timeout=3)
    assert (said.json["kind"], answered.json["kind"]) == ("message", "reply")
    assert said.json["session"] == handoff.session_id


def test_a_session_without_a_live_handoff_has_no_stream(server, tess, sam, gwen):
    handoff = escalate(tess)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    actions.resolve_handoff(handoff_id=handoff.pk, user=sam)
    # 204: a browser's EventSource stops for good; nothing about the session is told.
    assert get(server, tess, f"/handoffs/sessions/{handoff.session_id}/events/").status_code == 204
    assert get(server, None, f"/handoffs/sessions/{handoff.session_id}/events/").status_code == 403
    live = escalate(tess, problem="Another one")
    assert get(server, gwen, f"/handoffs/sessions/{live.session_id}/events/").status_code == 204


# -- refusals -------------------------------------------------------------------------------


def test_a_technician_gets_403_on_the_queue_stream(server, tess):
    response = get(server, tess, "/escalations/events/")
    assert response.status_code == 403
    assert b"event:" not in response.content


def test_anonymous_readers_get_403_not_a_sign_in_redirect(server, tess):
    handoff = escalate(tess)
    for path in (
        "/escalations/events/",
        "/notifications/events/",
        f"/handoffs/{handoff.pk}/events/",
    ):
        response = get(server, None, path)
        assert response.status_code == 403, path
        assert b"event:" not in response.content


def test_another_account_cannot_read_a_handoff_stream(server, tess, gwen, sam):
    handoff = escalate(tess)
    assert get(server, gwen, f"/handoffs/{handoff.pk}/events/").status_code == 403
    # Another technician of the same account neither: it is tess's escalation.
    other_technician = User.objects.create_user(
        "toby", "toby@acme.example", "x", account=tess.account, role=Role.TECHNICIAN
    )
    assert get(server, other_technician, f"/handoffs/{handoff.pk}/events/").status_code == 403


def test_the_escalator_and_seniors_may_read_a_handoff_stream(streams, tess, sam):
    handoff = escalate(tess)
    streams(tess, f"/handoffs/{handoff.pk}/events/").wait_open()
    streams(sam, f"/handoffs/{handoff.pk}/events/").wait_open()


def test_an_unknown_handoff_stream_is_403(server, sam):
    assert (
        get(server, sam, "/handoffs/7d0c7f0e-3f0e-4f43-9d47-4d8a0c1d2e3f/events/").status_code
        == 403
    )


GARBAGE_IDS = ["garbage", "queue-1:-5", "error", "queue-1:1:2", "queue-1:" + "9" * 30, "queue 1:3"]


def test_a_garbage_or_negative_last_event_id_is_400(server, sam):
    for last_event_id in GARBAGE_IDS:
        response = get(
            server, sam, "/escalations/events/", headers={"Last-Event-ID": last_event_id}
        )
        assert response.status_code == 400, last_event_id
        assert b"event:" not in response.content


def test_every_last_event_id_parameter_is_checked(server, sam):
    # The library would take the last non-empty one: a garbage one hidden before an empty one.
    response = get(server, sam, "/escalations/events/?lastEventId=garbage&lastEventId=")
    assert response.status_code == 400


def test_grip_parameters_are_refused(server, sam):
    # A signed channel list and Pushpin's recovery: never a way around the server's channel.
    for query in ("es-meta=eyJhbGciOiJIUzI1NiJ9.e30.x", "recover=true", "link=next"):
        assert get(server, sam, f"/escalations/events/?{query}").status_code == 400, query


def test_a_foreign_last_event_id_never_reaches_another_accounts_events(streams, tess, sam, gil):
    globex = queue_channel(gil.account_id)
    escalate(gil, "Globex: the NAS is read-only")
    # sam claims to have read Globex's queue up to its first event.
    stream = streams(sam, "/escalations/events/", headers={"Last-Event-ID": f"{globex}:0"})
    stream.wait_open()
    escalate(gil, "Globex: the wifi drops")
    mine = escalate(tess)

    events = [e for e in stream.drain(quiet=1.0) if e.event != "keep-alive"]
    assert [e.json["handoff"] for e in events] == [str(mine.pk)]
    assert all(e.id.startswith(f"{queue_channel(tess.account_id)}:") for e in events)


def test_streams_answer_only_get(server, sam):
    token = "a" * 32  # a valid CSRF secret, so the request reaches the view
    cookies = session_cookie(sam) | {"csrftoken": token}
    headers = {"X-CSRFToken": token}
    with httpx2.Client(base_url=server.url, cookies=cookies, headers=headers, timeout=5) as client:
        assert client.post("/escalations/events/").status_code == 405
        assert client.request("DELETE", "/notifications/events/").status_code == 405


# -- catching up ----------------------------------------------------------------------------


def test_a_gap_in_event_ids_makes_clients_reread_storage(streams, tess, sam):
    channel = queue_channel(tess.account_id)
    stream = streams(sam, "/escalations/events/").wait_open()
    escalate(tess)
    stream.wait_for("handoff-escalated", timeout=3)

    # Another process stored two events; only the second one's announcement got here.
    storage = get_storage()
    lost = storage.append_event(channel, "handoff-escalated", json.dumps({"handoff": "lost"}))
    late = storage.append_event(channel, "handoff-escalated", json.dumps({"handoff": "late"}))
    eventstream_redis.deliver_locally(late)

    got = [stream.wait_for("handoff-escalated", timeout=3) for _ in range(2)]
    assert [e.json["handoff"] for e in got] == ["lost", "late"]
    assert [e.id for e in got] == [f"{channel}:{lost.id}", f"{channel}:{late.id}"]


def test_an_event_right_after_a_gap_does_not_jump_the_reread(streams, tess, sam):
    # A gap makes the stream re-read storage from its last id; an event that arrives before
    # it has done so must not be handed over first: its id would become the stream's last
    # id and the re-read would start after it, past the events of the gap.
    channel = queue_channel(tess.account_id)
    stream = streams(sam, "/escalations/events/").wait_open()
    escalate(tess)
    stream.wait_for("handoff-escalated", timeout=3)

    storage = get_storage()
    events = [
        storage.append_event(channel, "handoff-escalated", json.dumps({"handoff": name}))
        for name in ("lost", "late", "next")
    ]
    eventstream_redis.deliver_locally(events[1])  # a gap: "lost" was never announced
    eventstream_redis.deliver_locally(events[2])  # the very next id, at once

    got = [stream.wait_for("handoff-escalated", timeout=3) for _ in range(3)]
    assert [e.json["handoff"] for e in got] == ["lost", "late", "next"]


def test_the_first_event_after_a_resync_is_not_passed_on_blindly(streams, tess, sam):
    # Issue 13: after a resync the relay forgot the channel's position, so the next
    # announcement was passed on without a gap check and the event before it (stored by a
    # process whose breaker was open) was skipped for good: the stream's last id was past
    # it. A stream that just opened is in the same state: no position known yet.
    channel = queue_channel(tess.account_id)
    stream = streams(sam, "/escalations/events/").wait_open()
    escalate(tess)
    stream.wait_for("handoff-escalated", timeout=3)
    get_listener_manager().resync()
    assert channel not in get_listener_manager().last_seen

    storage = get_storage()
    unannounced = storage.append_event(channel, "handoff-escalated", json.dumps({"handoff": "a"}))
    announced = storage.append_event(channel, "handoff-escalated", json.dumps({"handoff": "b"}))
    eventstream_redis.deliver_locally(announced)

    got = [stream.wait_for("handoff-escalated", timeout=3) for _ in range(2)]
    assert [e.json["handoff"] for e in got] == ["a", "b"]
    assert [e.id for e in got] == [f"{channel}:{unannounced.id}", f"{channel}:{announced.id}"]
    # The position is known again: the next event in sequence is passed on directly.
    assert get_listener_manager().last_seen[channel] == announced.id


@pytest.fixture
def private_redis(tmp_path):
    """Events relayed through a redis-server of this test's own (never the shared one)."""
    redis = RedisServer(tmp_path).start()
    relay = get_listener_manager().relay
    with override_settings(EVENTSTREAM_REDIS=redis.settings()):
        relay.stop()
        yield redis
        relay.stop()
    redis.stop()
    eventstream_redis.stop_probe()
    breaker.reset()  # this test's outages must not make later tests skip Redis


def test_the_relay_survives_a_redis_restart_and_clients_catch_up(private_redis, streams, tess, sam):
    relay = get_listener_manager().relay
    stream = streams(sam, "/escalations/events/").wait_open()
    wait_until(relay.connected.is_set, 5, "the relay never subscribed")
    handoff = escalate(tess)
    assert stream.wait_for("handoff-escalated", timeout=3).json["handoff"] == str(handoff.pk)

    private_redis.stop()
    wait_until(lambda: not relay.connected.is_set(), 5, "the relay did not notice")
    # Meanwhile a worker stored an event; its announcement went nowhere.
    channel = queue_channel(tess.account_id)
    payload = json.dumps({"handoff": "while-redis-was-down"})
    get_storage().append_event(channel, "handoff-escalated", payload)
    assert [e.event for e in stream.drain(quiet=0.5)] == []

    private_redis.start()  # same port
    event = stream.wait_for("handoff-escalated", timeout=10)
    assert event.json["handoff"] == "while-redis-was-down"
    assert relay.reconnects >= 1

    # And live relaying works again.
    after = escalate(tess, "Scanner offline")
    assert stream.wait_for("handoff-escalated", timeout=3).json["handoff"] == str(after.pk)


def test_with_redis_down_this_processs_clients_still_get_events_at_once(
    private_redis, streams, tess, sam
):
    relay = get_listener_manager().relay
    stream = streams(sam, "/escalations/events/").wait_open()
    wait_until(relay.connected.is_set, 5, "the relay never subscribed")
    private_redis.stop()

    handoff = escalate(tess)  # the publish fails; the event was stored, and is handed over

    assert stream.wait_for("handoff-escalated", timeout=3).json["handoff"] == str(handoff.pk)
    assert breaker.is_open()


def test_the_relay_notices_a_paused_redis(private_redis, streams, tess, sam, monkeypatch):
    monkeypatch.setattr(eventstream_redis, "PING_EVERY", 0.5)
    monkeypatch.setattr(eventstream_redis, "PONG_WITHIN", 0.5)
    relay = get_listener_manager().relay
    stream = streams(sam, "/escalations/events/").wait_open()
    wait_until(relay.connected.is_set, 5, "the relay never subscribed")

    private_redis.pause()
    wait_until(lambda: not relay.connected.is_set(), 5, "the relay did not notice the pause")
    channel = queue_channel(tess.account_id)
    get_storage().append_event(channel, "handoff-escalated", json.dumps({"handoff": "paused"}))
    private_redis.resume()

    assert stream.wait_for("handoff-escalated", timeout=10).json["handoff"] == "paused"


class _Listener:
    """A stream as the listener manager sees it (django-eventstream's Listener's fields)."""

    def __init__(self, *channels: str) -> None:
        self.channels = set(channels)
        self.channel_items: dict = {}
        self.overflow = False
        self.wakes = 0

    def wake_threadsafe(self) -> None:
        self.wakes += 1


def _event(channel: str, event_id: int):
    from django_eventstream.event import Event

    return Event(channel, "handoff-escalated", {"handoff": str(event_id)}, id=event_id)


@override_settings(EVENTSTREAM_REDIS=None)  # the manager alone, no relay to start
def test_a_new_stream_on_a_channel_already_relayed_gets_the_next_event_without_a_reread():
    # Issue 12's bench: with no position known, every stream of a busy channel re-read
    # storage at once on its first event (300 seniors: the pool ran dry and streams died).
    manager = eventstream_redis.ResilientListenerManager()
    manager.add_to_queues("queue-7", _event("queue-7", 41))  # relayed, nobody listening yet
    streams = [_Listener("queue-7") for _ in range(3)]
    for stream in streams:
        manager.add_listener(stream)

    manager.add_to_queues("queue-7", _event("queue-7", 42))
    assert [s.overflow for s in streams] == [False] * 3
    assert [[e.id for e in s.channel_items["queue-7"]] for s in streams] == [[42]] * 3

    # One beyond the next (43 never came here): they re-read storage instead.
    manager.add_to_queues("queue-7", _event("queue-7", 44))
    assert [s.overflow for s in streams] == [True] * 3


@override_settings(EVENTSTREAM_REDIS=None)  # the manager alone, no relay to start
def test_a_channels_first_event_is_passed_on_and_an_unknown_position_still_rereads():
    manager = eventstream_redis.ResilientListenerManager()
    fresh, older = _Listener("user-1"), _Listener("user-2")
    manager.add_listener(fresh)
    manager.add_listener(older)

    manager.add_to_queues("user-1", _event("user-1", 1))  # nothing can come before id 1
    assert not fresh.overflow and [e.id for e in fresh.channel_items["user-1"]] == [1]

    manager.add_to_queues("user-2", _event("user-2", 9))  # 1-8 never relayed here
    assert older.overflow and older.channel_items == {}
