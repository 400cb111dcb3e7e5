"""Sessions: streams end at sign-out and at expiry, the idle timeout, no-store on signed-in
answers. Streams go through a real uvicorn (tests/asgi.py) and a real HTTP client."""

import time

import httpx2
import pytest
from django.contrib.sessions.models import Session as StoredSession
from django.test import Client
from django.utils import timezone

from escalations import actions
from flowpilot.models import Session
from resolutionflow import sessions
from resolutionflow.demo import DEMO_PASSWORD
from tests.asgi import AsgiServer, SseStream, session_cookie


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = AsgiServer()
        server.start()
        yield server
        server.stop()


@pytest.fixture
def quick_checks(settings):
    settings.RF_STREAM_SESSION_CHECK_SECONDS = 0.2


@pytest.fixture
def streams(server, quick_checks):
    opened = []

    def open_stream(cookies, path="/escalations/events/") -> SseStream:
        stream = SseStream(server.url, path, cookies=cookies)
        opened.append(stream)
        return stream.wait_open()

    yield open_stream
    for stream in opened:
        stream.close()


def escalate(user):
    session = Session.objects.create(account=user.account, owner=user, problem="Printer stuck")
    return actions.escalate(session=session, user=user, reason="Spooler", urgency="normal").handoff


def ends_with_session_ended(stream: SseStream, timeout: float = 5.0) -> bool:
    event = stream.wait_for("stream-error", timeout=timeout)
    assert event.json["condition"] == "session-ended"
    stream._thread.join(timeout)  # the server closed the response: the reader stops
    return not stream._thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_stream_ends_when_its_person_signs_out(streams, sam, sky, tess):
    cookies = session_cookie(sam)
    sam_stream = streams(cookies)
    sky_stream = streams(session_cookie(sky))
    handoff = escalate(tess)
    assert sam_stream.wait_for("handoff-escalated").json["handoff"] == str(handoff.pk)

    browser = Client()
    browser.cookies["sessionid"] = cookies["sessionid"]
    assert browser.post("/accounts/logout/").status_code == 302

    assert ends_with_session_ended(sam_stream)
    escalate(tess)
    assert sky_stream.wait_for("handoff-escalated").event == "handoff-escalated"  # still open
    # Reconnecting with the old cookie is refused.
    again = SseStream(sam_stream._client.base_url, "/escalations/events/", cookies=cookies)
    assert again.wait_status() == 403
    again.close()


@pytest.mark.django_db(transaction=True)
def test_a_stream_ends_when_its_session_expires(streams, sam):
    cookies = session_cookie(sam)
    stream = streams(cookies)
    StoredSession.objects.filter(session_key=cookies["sessionid"]).update(
        expire_date=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert ends_with_session_ended(stream)


@pytest.mark.django_db(transaction=True)
def test_a_stream_ends_when_the_password_changes(streams, sam):
    stream = streams(session_cookie(sam))
    sam.set_password("another-long-passphrase")
    sam.save(update_fields=["password"])
    assert ends_with_session_ended(stream)


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_stream_stays_open_across_checks(streams, sam, tess):
    stream = streams(session_cookie(sam))
    time.sleep(1.0)  # five checks at 0.2 s; a broken check would have ended it
    handoff = escalate(tess)
    event = stream.wait_for("handoff-escalated")
    assert event.json["handoff"] == str(handoff.pk)
    assert all(seen.event != "stream-error" for seen in stream.seen)


@pytest.mark.django_db(transaction=True)
def test_signed_in_answers_are_not_stored_by_caches(server, sam, ada):
    with httpx2.Client(base_url=server.url, cookies=session_cookie(ada), timeout=5) as client:
        for path, headers in [
            ("/escalations/", {}),
            ("/escalations/", {"Accept": "application/json"}),
            ("/analytics/export.csv", {}),
            ("/analytics/", {}),
            ("/handoffs/00000000-0000-0000-0000-000000000000/", {}),  # a 404 too
        ]:
            response = client.get(path, headers=headers)
            assert "no-store" in response.headers["Cache-Control"], path
        with client.stream("GET", "/escalations/events/") as stream:
            assert stream.status_code == 200
            assert "no-store" in stream.headers["Cache-Control"]
            assert b"stream-open" in next(stream.iter_bytes())


# ---------------------------------------------------------------------------- idle timeout


def test_sessions_time_out_after_eight_idle_hours_by_default(settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    assert not getattr(settings, "SESSION_SAVE_EVERY_REQUEST", False)


def test_activity_slides_the_expiry_at_most_every_refresh_period(client, personas, monkeypatch):
    now = [1_900_000_000]
    monkeypatch.setattr(sessions.time, "time", lambda: now[0])
    client.post("/accounts/login/", {"username": "tess", "password": DEMO_PASSWORD})
    key = client.cookies["sessionid"].value

    def expiry():
        return StoredSession.objects.get(session_key=key).expire_date

    first = expiry()
    now[0] += 60
    client.get("/flowpilot/")
    assert expiry() == first  # a minute later: no write
    now[0] += 300
    time.sleep(0.01)
    client.get("/flowpilot/")
    assert expiry() > first  # past the refresh period: saved, expiry pushed back


def test_an_idle_session_is_signed_out(client, personas, settings):
    client.post("/accounts/login/", {"username": "tess", "password": DEMO_PASSWORD})
    key = client.cookies["sessionid"].value
    StoredSession.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timezone.timedelta(seconds=1)
    )
    response = client.get("/flowpilot/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_open_event_stream_does_not_keep_the_session_alive(client, personas, monkeypatch):
    """Only requests count as activity: a tab left open on a stream still times out."""
    now = [1_900_000_000]
    monkeypatch.setattr(sessions.time, "time", lambda: now[0])
    client.post("/accounts/login/", {"username": "sam", "password": DEMO_PASSWORD})
    key = client.cookies["sessionid"].value
    first = StoredSession.objects.get(session_key=key).expire_date
    now[0] += 3600
    response = client.get("/escalations/events/")
    assert response.status_code == 200
    assert response.streaming
    assert StoredSession.objects.get(session_key=key).expire_date == first
