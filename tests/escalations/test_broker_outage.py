"""Redis paused, then down, while tess escalates: the escalation commits, the response
comes within 2 seconds, and every notification (bell events on another web process, queue
events, emails) arrives once Redis is back.

The deployment in miniature: its own redis-server (never the shared one), two web
processes (tess escalates on B, sam watches on A), a Celery worker with its beat and an
SMTP server, all on the test database (PostgreSQL).
"""

import pytest

from escalations.models import EmailDelivery, EmailState, Handoff
from resolutionflow.eventstore import RESYNC
from resolutionflow.models import OutboxEvent
from tests.asgi import SseStream, session_cookie, wait_until
from tests.services import Escalator, Rig

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def rig(postgres_only, transactional_db, tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.stop()


def test_escalations_survive_a_paused_and_a_dead_redis(rig, tess, sam, sky, ada):
    rig.smtp.start()
    rig.start_worker(supervised=True)  # restarted if it exits, as systemd would
    watch, escalate_on = rig.start_web(), rig.start_web()
    bell = SseStream(watch.url, "/notifications/events/", cookies=session_cookie(sam))
    queue = SseStream(watch.url, "/escalations/events/", cookies=session_cookie(sam))
    tess_client = Escalator(escalate_on, tess)
    try:
        bell.wait_open()
        queue.wait_open()

        def arrives(stream, event_type, handoff_id, timeout):
            return stream.wait_for(
                event_type, timeout=timeout, where=lambda data: data["handoff"] == handoff_id
            )

        # Healthy: from one web process to a browser on another, within a second or so.
        response, elapsed = tess_client.escalate("Healthy: scanner offline")
        assert response.status_code == 201, response.text
        healthy = response.json()["handoff"]
        arrives(queue, "handoff-escalated", healthy, 3)
        arrives(bell, "notification", healthy, 3)

        # Paused (SIGSTOP): connections hang instead of failing.
        rig.redis.pause()
        response, elapsed = tess_client.escalate("Paused: VPN drops every hour")
        assert response.status_code == 201, response.text
        assert elapsed < 2, f"the escalation took {elapsed:.2f} s with Redis paused"
        paused = response.json()["handoff"]
        assert Handoff.objects.filter(pk=paused).exists()
        # B has stored the events and, Redis failing, asked for a resync; then Redis returns.
        wait_until(
            lambda: OutboxEvent.objects.filter(event_type=RESYNC, published_at=None).exists(),
            10,
            "web B never recorded a resync for the events Redis did not take",
        )
        rig.redis.resume()
        arrives(queue, "handoff-escalated", paused, 15)
        arrives(bell, "notification", paused, 15)

        # Down (killed): connections are refused. Let B's breaker close first, so this
        # really tries Redis: B's probe closes it once Redis answers, and says so in B's log.
        wait_until(
            lambda: "Redis answers again" in escalate_on.log_path.read_text(errors="replace"),
            15,
            lambda: "web B's breaker never closed:\n" + escalate_on.log_path.read_text()[-3000:],
        )
        rig.redis.stop()
        response, elapsed = tess_client.escalate("Down: Outlook asks for a password")
        assert response.status_code == 201, response.text
        assert elapsed < 2, f"the escalation took {elapsed:.2f} s with Redis down"
        down = response.json()["handoff"]
        assert Handoff.objects.filter(pk=down).exists()
        # Nothing can reach sam while Redis is down (the escalation ran on another process).
        assert not [e for e in queue.drain(quiet=1.0) if e.json and e.json["handoff"] == down]
        rig.redis.start()  # same port, empty: whatever was queued in it is gone
        arrives(queue, "handoff-escalated", down, 20)
        arrives(bell, "notification", down, 20)

        # Every email: one per senior per escalation, none twice.
        expected = sorted(["ada@acme.example", "sam@acme.example", "sky@acme.example"] * 3)
        assert rig.smtp.wait_for_count(9, timeout=40) == expected, rig.logs()
        # The server has a message a moment before the worker records it sent.
        wait_until(
            lambda: set(EmailDelivery.objects.values_list("state", flat=True)) == {EmailState.SENT},
            10,
            lambda: f"{list(EmailDelivery.objects.values_list('state', flat=True))}",
        )
        wait_until(
            lambda: not OutboxEvent.objects.filter(published_at=None).exists(),
            15,
            "the outbox still holds unpublished events",
        )
        rig.workers[0].wait_for_drains(2)  # two more drains and sweeps: still nine
        assert len(rig.smtp.addresses()) == 9
    finally:
        bell.close()
        queue.close()
        tess_client.client.close()
