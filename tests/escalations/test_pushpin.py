"""Streams held by a real Pushpin in front of two web processes (GRIP).

The layout of docs/OPERATIONS.md "Pushpin in front" in miniature: Debian's pushpin with its
own configuration (scripts/pushpin_config.py) on free ports, routing the queue streams to
one uvicorn process and the rest to the other, both with ``GRIP_URL`` set, on the test
database. The web processes have no Redis: an event reaches a stream held by Pushpin only
through a publish to Pushpin's control port (here from the test process, which commits the
escalations and publishes after commit as a worker would).
"""

from __future__ import annotations

import httpx2
import pytest
from django.contrib.sessions.models import Session as DjangoSession
from django.test import override_settings
from django_eventstream.models import Event as StoredEvent

from escalations import actions
from escalations.channels import queue_channel
from flowpilot.models import Session
from resolutionflow import broker, grip
from tests.asgi import SseStream, UvicornProcess, session_cookie, subprocess_env, wait_until
from tests.services import pushpin_layout

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(scope="module")
def layout(django_db_setup, django_db_blocker, tmp_path_factory):
    """Pushpin in front of two web processes: ``(pushpin, [web1, web2])``."""
    directory = tmp_path_factory.mktemp("pushpin-layout")
    with django_db_blocker.unblock(), pushpin_layout(directory) as (pushpin, webs):
        yield pushpin, webs


@pytest.fixture
def pushpin(layout, postgres_only):
    pushpin, webs = layout
    with override_settings(GRIP_URL=pushpin.grip_url):
        grip.breaker.reset()
        yield pushpin
    pushpin.routes_to([web.url.removeprefix("http://") for web in webs])


@pytest.fixture
def streams(pushpin):
    opened = []

    def open_stream(user, path="/escalations/events/", *, headers=None, base=None):
        cookies = session_cookie(user) if user is not None else {}
        stream = SseStream(base or pushpin.url, path, cookies=cookies, headers=headers)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def escalate(user, problem="Printer queue stuck on every PC"):
    session = Session.objects.create(account=user.account, owner=user, problem=problem)
    return actions.escalate(
        session=session, user=user, reason="Restarted the spooler", urgency="normal"
    ).handoff


def handoffs_of(events) -> list[str]:
    return [event.json["handoff"] for event in events if event.event == "handoff-escalated"]


def test_a_stream_held_by_pushpin_gets_events_and_resumes_by_last_event_id(
    pushpin, streams, tess, sam
):
    stream = streams(sam).wait_open()
    assert not any(name.lower().startswith("grip-") for name in stream._response.headers)

    first = escalate(tess, "Outlook asks for a password")
    event = stream.wait_for("handoff-escalated", timeout=5)
    assert event.json["handoff"] == str(first.pk)
    # Pushpin filled the id in (build-id): the stream's position, as a direct stream's.
    assert event.id == f"{queue_channel(tess.account_id)}:1"
    stream.close()

    missed = [escalate(tess, f"Missed while away {n}") for n in range(2)]
    resumed = streams(sam, headers={"Last-Event-ID": event.id}).wait_open()
    replayed = [resumed.wait_for("handoff-escalated", timeout=5) for _ in missed]
    assert handoffs_of(replayed) == [str(handoff.pk) for handoff in missed]
    assert replayed[-1].id == f"{queue_channel(tess.account_id)}:3"
    live = escalate(tess, "After the replay")
    assert resumed.wait_for("handoff-escalated", timeout=5).json["handoff"] == str(live.pk)


def test_a_lost_publish_is_recovered_from_storage_at_the_next_event(
    pushpin, streams, tess, sam, monkeypatch
):
    stream = streams(sam).wait_open()
    real_publish = grip.publish
    monkeypatch.setattr(grip, "publish", lambda stored: True)  # lost on the way to Pushpin
    lost = escalate(tess, "Published nowhere")
    monkeypatch.setattr(grip, "publish", real_publish)
    assert StoredEvent.objects.filter(channel=queue_channel(tess.account_id), eid=1).exists()

    after = escalate(tess, "Published after the gap")
    # Pushpin sees a previous id it never had and re-reads storage through the next link.
    got = [stream.wait_for("handoff-escalated", timeout=8) for _ in range(2)]
    assert handoffs_of(got) == [str(lost.pk), str(after.pk)]


def test_a_paused_pushpin_costs_a_publish_one_timeout_and_its_streams_miss_nothing(
    pushpin, streams, tess, sam, monkeypatch
):
    monkeypatch.setattr(broker, "BREAKER_SECONDS", 1.0)
    published = []
    real_publish = grip.publish
    monkeypatch.setattr(grip, "publish", lambda stored: published.append(real_publish(stored)))
    stream = streams(sam).wait_open()
    before = escalate(tess, "Before the pause")
    assert stream.wait_for("handoff-escalated", timeout=5).json["handoff"] == str(before.pk)

    pushpin.pause()
    try:
        # The publish after commit waits one short timeout, then the breaker skips Pushpin;
        # the escalation itself is committed and stored as always.
        during = escalate(tess, "During the pause")
        assert published == [True, False]
        assert StoredEvent.objects.filter(channel=queue_channel(tess.account_id), eid=2).exists()
    finally:
        pushpin.resume()

    wait_until(lambda: not grip.breaker.is_open(), 5)
    after = escalate(tess, "After the pause")
    # Whether Pushpin still read the timed-out publish or re-read storage at the next event's
    # previous id, the held stream gets each event once, in order.
    got = [stream.wait_for("handoff-escalated", timeout=8) for _ in range(2)]
    assert handoffs_of(got) == [str(during.pk), str(after.pk)]
    assert handoffs_of(stream.drain(quiet=1)) == []


def test_after_a_pushpin_restart_the_reconnect_gets_what_was_published_while_it_was_down(
    pushpin, streams, tess, sam, monkeypatch
):
    monkeypatch.setattr(broker, "BREAKER_SECONDS", 1.0)
    stream = streams(sam).wait_open()
    escalate(tess, "Before the restart")
    seen = stream.wait_for("handoff-escalated", timeout=5)

    pushpin.stop()  # the held stream drops
    try:
        down = escalate(tess, "While Pushpin was down")  # stored; the publish is refused
    finally:
        pushpin.start()
    wait_until(lambda: not grip.breaker.is_open(), 5)

    # As a browser's EventSource does: reconnect with the last id it had.
    resumed = streams(sam, headers={"Last-Event-ID": seen.id}).wait_open()
    assert resumed.wait_for("handoff-escalated", timeout=5).json["handoff"] == str(down.pk)
    live = escalate(tess, "After the restart")
    assert resumed.wait_for("handoff-escalated", timeout=5).json["handoff"] == str(live.pk)


def test_through_pushpin_the_channels_and_refusals_stay_the_servers(
    pushpin, layout, streams, tess, sam, gil
):
    _, (web1, _web2) = layout
    # Anonymous, a technician on the queue, a malformed Last-Event-ID: refused as directly.
    assert streams(None).wait_status() == 403
    assert streams(tess).wait_status() == 403
    assert streams(sam, headers={"Last-Event-ID": "garbage"}).wait_status() == 400
    # A foreign account's position in Last-Event-ID never reaches its events.
    escalate(gil, "Globex: the NAS is read-only")
    globex = queue_channel(gil.account_id)
    stream = streams(sam, headers={"Last-Event-ID": f"{globex}:0"}).wait_open()
    escalate(gil, "Globex: the wifi drops")
    mine = escalate(tess)
    assert handoffs_of(stream.drain(quiet=1.5)) == [str(mine.pk)]

    cookies = session_cookie(sam)
    forged = "/escalations/events/?link=next&recover=true&es-meta=eyJhbGciOiJIUzI1NiJ9.e30.x"
    # Through Pushpin (signed by it) but not a next link this server wrote: refused.
    with httpx2.Client(base_url=pushpin.url, cookies=cookies, timeout=5) as client:
        assert client.get(forged).status_code == 400
    # Straight to a web process with a made-up Grip-Sig: not Pushpin, so GRIP words refused.
    with httpx2.Client(base_url=web1.url, cookies=cookies, timeout=5) as client:
        assert client.get(forged, headers={"Grip-Sig": "forged"}).status_code == 400


def test_a_held_stream_ends_at_its_session_check_and_the_reconnect_is_checked_in_full(
    pushpin, layout, streams, tess, sam, tmp_path
):
    # One more web process whose streams re-check every 2 s; Pushpin routed to it alone.
    web = UvicornProcess(
        subprocess_env(GRIP_URL=pushpin.grip_url, RF_STREAM_SESSION_CHECK_SECONDS="2"),
        log_path=tmp_path / "web-recheck.log",
    ).start()
    try:
        pushpin.routes_to([web.url.removeprefix("http://")])
        cookies = session_cookie(sam)
        stream = SseStream(pushpin.url, "/escalations/events/", cookies=cookies)
        stream.wait_open()
        first = escalate(tess, "Before the re-check")
        event = stream.wait_for("handoff-escalated", timeout=5)
        assert event.json["handoff"] == str(first.pk)
        # The stream ends (with a retry hint) once its check time has come.
        wait_until(lambda: not stream._thread.is_alive(), 10, pushpin.output)
        stream.close()

        missed = escalate(tess, "During the reconnect")
        resumed = SseStream(
            pushpin.url,
            "/escalations/events/",
            cookies=cookies,
            headers={"Last-Event-ID": event.id},
        ).wait_open()
        assert resumed.wait_for("handoff-escalated", timeout=5).json["handoff"] == str(missed.pk)
        resumed.close()

        DjangoSession.objects.filter(session_key=cookies["sessionid"]).delete()  # signed out
        again = SseStream(pushpin.url, "/escalations/events/", cookies=cookies)
        assert again.wait_status() == 403
        again.close()
    finally:
        web.stop()


def test_a_publish_pushpin_cannot_take_trips_the_breaker_and_never_raises(monkeypatch):
    from django_eventstream.event import Event

    from tests.asgi import free_port

    tries = []
    real_urlopen = grip.urllib.request.urlopen
    monkeypatch.setattr(
        grip.urllib.request, "urlopen", lambda *a, **k: tries.append(1) or real_urlopen(*a, **k)
    )
    event = Event("queue-1", "handoff-escalated", '{"handoff": "x"}', id=7)
    nothing_there = f"http://127.0.0.1:{free_port()}/?iss=pushpin&key=k"
    grip.breaker.reset()
    try:
        with override_settings(GRIP_URL=nothing_there):
            assert grip.publish([event]) is False  # refused: logged, the breaker opens
            assert grip.breaker.is_open()
            assert grip.publish([event]) is False  # skipped without trying
        assert tries == [1]
    finally:
        grip.breaker.reset()
    # What Pushpin is sent: the event's id and its channel's previous one, the id left to
    # Pushpin's build-id filter, a % in the data escaped for it.
    (item,) = grip.publish_items([Event("queue-1", "t", '{"text": "100%"}', id=7)])
    assert (item["channel"], item["id"], item["prev-id"]) == ("events-queue-1", "7", "6")
    stream = item["formats"]["http-stream"]
    assert stream["content-filters"] == ["build-id"]
    assert stream["content"] == 'event: t\nid: %I\ndata: {"text": "100%%"}\n\n'
