"""Presence ("Sky is viewing"): heartbeats in Redis or memory, never in the database; one
event per change; gone at the drain after the last beat's time is up; per account, seniors
only, never oneself."""

import threading
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from escalations import presence
from escalations.models import Handoff
from resolutionflow.models import OutboxEvent
from resolutionflow.tasks import drain_outbox
from tests.escalations.conftest import HTMX, escalate, make_session

TAB = "0123456789abcdef"


@pytest.fixture(params=["memory", "redis"])
def store(request, settings, monkeypatch):
    """Each behaviour on both stores: memory (embedded mode) and Redis (with services)."""
    if request.param == "memory":
        chosen = presence.MemoryStore()
    else:
        request.getfixturevalue("redis_url")
        chosen = presence.RedisStore(settings.EVENTSTREAM_REDIS)
        chosen.prefix = f"rf:presence:test-{uuid.uuid4().hex}:"
    monkeypatch.setattr(presence, "store", lambda: chosen)
    yield chosen
    chosen.clear()


@pytest.fixture
def clock(monkeypatch):
    """presence's clock, moved by the test."""
    now = {"t": 1_000_000.0}
    monkeypatch.setattr(presence, "clock", lambda: now["t"])
    return now


def presence_events(handoff: Handoff) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(event_type=presence.EVENT, data__handoff=str(handoff.pk))
    )


def beat(client, handoff, tab=TAB, **headers):
    return client.post(f"/handoffs/{handoff.pk}/presence", {"tab": tab}, **headers)


def test_the_stores_report_only_changes_and_expire_once(store):
    member = "h1|7|aa|Sky"
    assert store.beat(1, member, expires=120, now=100) is True  # news
    assert store.beat(1, member, expires=130, now=110) is False  # still there
    assert store.live(1, now=125) == [member]
    assert store.expire(now=129) == {}
    assert store.expire(now=130) == {1: [member]}
    assert store.expire(now=131) == {}  # a second drain finds nothing to announce
    assert store.live(1, now=131) == []
    assert store.beat(1, member, expires=150, now=131) is True  # back: news again
    assert store.leave(1, member) is True
    assert store.leave(1, member) is False


def test_two_drains_at_once_announce_an_expiry_once(store):
    for n in range(50):
        store.beat(1, f"h{n}|7|aa|Sky", expires=100, now=90)
    barrier = threading.Barrier(2)
    results = []

    def drain():
        barrier.wait()
        results.append(store.expire(now=100))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    announced = [member for result in results for member in result.get(1, [])]
    assert sorted(announced) == sorted(f"h{n}|7|aa|Sky" for n in range(50))


def test_sam_sees_sky_viewing_on_the_card_and_the_screen_but_not_himself(
    store, clock, client_for, tess, sam, sky, ada
):
    handoff = escalate(make_session(tess))
    sky_client, sam_client = client_for(sky), client_for(sam)
    answer = beat(sky_client, handoff, **HTMX)
    assert answer.status_code == 200
    assert "is viewing" not in answer.content.decode()  # sky does not see sky

    assert "Sky is viewing" in sam_client.get("/escalations/").content.decode()
    assert "Sky is viewing" in sam_client.get(f"/handoffs/{handoff.pk}/").content.decode()
    assert "Sky is viewing" in sam_client.get(f"/handoffs/{handoff.pk}/card").content.decode()
    line = sam_client.get(f"/handoffs/{handoff.pk}/presence", **HTMX).content.decode()
    assert "Sky is viewing" in line
    assert "is viewing" not in sky_client.get("/escalations/").content.decode()

    beat(sam_client, handoff)
    line = client_for(ada).get(f"/handoffs/{handoff.pk}/presence").content.decode()
    assert "Sam and Sky are viewing" in line  # ada sees both, in name order


def test_a_heartbeat_writes_nothing_to_the_database_and_only_news_is_published(
    store, clock, client_for, tess, sky
):
    handoff = escalate(make_session(tess))
    client = client_for(sky)
    beat(client, handoff)
    assert len(presence_events(handoff)) == 2  # the handoff's channel and the queue's
    assert {event.channel for event in presence_events(handoff)} == {
        f"handoff-{handoff.pk}",
        f"queue-{tess.account_id}",
    }
    for _ in range(3):
        clock["t"] += presence.BEAT_SECONDS
        with CaptureQueriesContext(connection) as queries:
            assert beat(client, handoff).status_code == 200
        writes = [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        ]
        assert writes == []
    assert len(presence_events(handoff)) == 2


def test_leaving_and_expiry_are_announced_and_the_viewer_is_gone(
    store, clock, client_for, tess, sam, sky, settings
):
    first, second = escalate(make_session(tess)), escalate(make_session(tess))
    sky_client, sam_client = client_for(sky), client_for(sam)
    beat(sky_client, first)
    beat(sky_client, second, tab="feedfacefeedface")

    # The tab on the first closes: the beacon.
    assert sky_client.post(f"/handoffs/{first.pk}/presence/leave", {"tab": TAB}).status_code == 204
    assert len(presence_events(first)) == 4
    assert "is viewing" not in sam_client.get(f"/handoffs/{first.pk}/presence").content.decode()

    # The tab on the second crashes: no more beats. Gone at the first drain after its time.
    clock["t"] += settings.RF_PRESENCE_TTL_SECONDS - 1
    drain_outbox()
    assert "Sky is viewing" in sam_client.get(f"/handoffs/{second.pk}/presence").content.decode()
    assert len(presence_events(second)) == 2
    clock["t"] += 1
    drain_outbox()
    assert "is viewing" not in sam_client.get(f"/handoffs/{second.pk}/presence").content.decode()
    assert len(presence_events(second)) == 4
    drain_outbox()
    assert len(presence_events(second)) == 4  # announced once


def test_closing_one_of_two_tabs_keeps_the_viewer(store, clock, client_for, tess, sam, sky):
    handoff = escalate(make_session(tess))
    sky_client = client_for(sky)
    beat(sky_client, handoff, tab="aaaaaaaaaaaaaaaa")
    beat(sky_client, handoff, tab="bbbbbbbbbbbbbbbb")
    sky_client.post(f"/handoffs/{handoff.pk}/presence/leave", {"tab": "aaaaaaaaaaaaaaaa"})
    line = client_for(sam).get(f"/handoffs/{handoff.pk}/presence").content.decode()
    assert "Sky is viewing" in line


def test_technicians_never_beat_and_other_accounts_never_see(
    store, clock, client_for, tess, sam, sky, gwen
):
    handoff = escalate(make_session(tess))
    assert beat(client_for(tess), handoff).status_code == 403
    assert client_for(tess).get(f"/handoffs/{handoff.pk}/presence").status_code == 403
    assert "is viewing" not in client_for(tess).get(f"/handoffs/{handoff.pk}/").content.decode()
    assert beat(client_for(gwen), handoff).status_code == 404
    assert client_for(gwen).get(f"/handoffs/{handoff.pk}/presence").status_code == 404
    leave = client_for(gwen).post(f"/handoffs/{handoff.pk}/presence/leave", {"tab": TAB})
    assert leave.status_code == 404
    assert presence_events(handoff) == []

    beat(client_for(sky), handoff)
    assert "Sky is viewing" not in client_for(gwen).get("/escalations/").content.decode()
    assert presence.viewers(account_id=gwen.account_id, handoff_ids=[handoff.pk]) == {}


def test_a_heartbeat_needs_a_tab_and_takes_get_and_post_only(store, client_for, tess, sky):
    handoff = escalate(make_session(tess))
    client = client_for(sky)
    for tab in ("", "not-hex!", "a" * 33):
        answer = beat(client, handoff, tab=tab)
        assert answer.status_code == 400
    assert client.put(f"/handoffs/{handoff.pk}/presence").status_code == 405
    assert client.get(f"/handoffs/{handoff.pk}/presence/leave").status_code == 405
    assert presence_events(handoff) == []


def test_heartbeats_do_not_keep_a_session_alive_and_are_rate_limited(
    store, client_for, tess, sky, settings
):
    from resolutionflow.ratelimit import parse_rate
    from resolutionflow.sessions import LAST_SAVED_KEY

    handoff = escalate(make_session(tess))
    client = client_for(sky)
    session = client.session
    session[LAST_SAVED_KEY] = 0  # long ago: any activity would save (slide) it now
    session.save()
    beat(client, handoff)
    client.get(f"/handoffs/{handoff.pk}/presence")
    assert client.session[LAST_SAVED_KEY] == 0

    settings.RF_RATE_LIMITS = {**settings.RF_RATE_LIMITS, "presence": parse_rate("2/m")}
    assert beat(client, handoff).status_code == 200  # the second beat
    assert beat(client, handoff).status_code == 429
    assert client.get(f"/handoffs/{handoff.pk}/presence").status_code == 200  # reads: free


def test_presence_is_skipped_when_redis_does_not_answer(client_for, tess, sam, settings):
    """A dead Redis costs one short timeout, then the breaker: pages show no one, never a 500."""
    from resolutionflow.broker import breaker

    handoff = escalate(make_session(tess))
    dead = presence.RedisStore({"host": "127.0.0.1", "port": 1})
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(presence, "store", lambda: dead)
            client = client_for(sam)
            assert beat(client, handoff).status_code == 200
            assert breaker.is_open()
            assert client.get("/escalations/").status_code == 200
    finally:
        breaker.reset()
    assert presence_events(handoff) == []
