"""Emails and events through a real Celery worker, a real Redis and a real SMTP server.

Each test starts its own redis-server (never the shared one), an aiosmtpd server on
loopback and ``celery -A resolutionflow worker --beat`` on the test database (PostgreSQL:
the worker is another process). Escalations are made in the test process, which publishes
its tasks to the test's Redis.
"""

import pytest
from django.test import override_settings

from escalations import actions
from escalations.channels import queue_channel, user_channel
from escalations.models import EmailDelivery, EmailState
from flowpilot.models import Session
from resolutionflow import eventstream_redis
from resolutionflow.events import breaker
from resolutionflow.models import OutboxEvent
from tests.asgi import SseStream, session_cookie, wait_until
from tests.services import Rig, SmtpSink, celery_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]

SENIORS = ["ada@acme.example", "sam@acme.example", "sky@acme.example"]


@pytest.fixture
def rig(postgres_only, transactional_db, tmp_path):
    rig = Rig(tmp_path)
    eventstream_redis.stop_probe()
    breaker.reset()
    with celery_broker(rig.redis.url), override_settings(EVENTSTREAM_REDIS=rig.redis.settings()):
        yield rig
    rig.stop()
    eventstream_redis.stop_probe()
    breaker.reset()


def escalate(tess, problem="Printers: every job stays queued"):
    session = Session.objects.create(account=tess.account, owner=tess, problem=problem)
    return actions.escalate(session=session, user=tess, reason="Spooler restarted").handoff


def states(handoff) -> dict[str, tuple[str, int]]:
    rows = EmailDelivery.objects.filter(handoff=handoff).order_by("address")
    return {row.address: (row.state, row.attempts) for row in rows}


def test_the_worker_sends_exactly_one_email_per_recipient(rig, tess, sam, sky, ada):
    rig.smtp.start()
    rig.start_worker()

    handoff = escalate(tess)

    assert rig.smtp.wait_for_count(3, timeout=20) == SENIORS, rig.logs()
    rig.workers[0].wait_for_drains(2)  # two drains and their sweeps later: still one each
    assert rig.smtp.addresses() == SENIORS
    assert states(handoff) == {address: (EmailState.SENT, 1) for address in SENIORS}
    mail = rig.smtp.received[0]
    assert f"https://rf.example/handoffs/{handoff.pk}/" in mail.part("text/plain")
    assert f'href="https://rf.example/handoffs/{handoff.pk}/"' in mail.part("text/html")


def test_a_worker_killed_mid_send_loses_no_email_and_sends_none_twice(rig, tess, sam, sky, ada):
    rig.smtp.hold_next = True  # the first message waits in DATA, before the server accepts it
    rig.smtp.start()
    first = rig.start_worker()

    handoff = escalate(tess)
    assert rig.smtp.holding.wait(20), rig.logs()
    # The two others go through; one send hangs, its row leased ("sending").
    wait_until(
        lambda: sorted(s for s, _ in states(handoff).values()) == ["sending", "sent", "sent"],
        20,
        lambda: f"{states(handoff)}\n{rig.logs()}",
    )
    first.kill()  # SIGKILL, worker and beat: no cleanup, no ack

    rig.start_worker()
    # The lease (the send deadline, 6 × the 2 s SMTP timeout, + 10 s) runs out; the next
    # sweep sends it again.
    assert rig.smtp.wait_for_count(3, timeout=40) == SENIORS, rig.logs()
    rig.workers[-1].wait_for_drains(2)
    assert rig.smtp.addresses() == SENIORS
    assert sorted(states(handoff).values()) == [
        (EmailState.SENT, 1),
        (EmailState.SENT, 1),
        (EmailState.SENT, 2),
    ]


def test_mail_held_by_an_smtp_outage_goes_out_when_the_server_is_back(rig, tess, sam, sky, ada):
    rig.start_worker()  # the SMTP server is down: nothing listens on its port

    handoff = escalate(tess)
    wait_until(
        lambda: all(row == (EmailState.PENDING, 1) for row in states(handoff).values()),
        20,
        lambda: f"{states(handoff)}\n{rig.logs()}",
    )
    assert all(
        "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error
        for row in EmailDelivery.objects.filter(handoff=handoff)
    )

    rig.smtp.start()  # same port
    assert rig.smtp.wait_for_count(3, timeout=30) == SENIORS, rig.logs()
    # The server has the message a moment before the worker records it sent.
    sent = {address: (EmailState.SENT, 2) for address in SENIORS}
    wait_until(lambda: states(handoff) == sent, 10, lambda: f"{states(handoff)}\n{rig.logs()}")


def test_events_published_by_the_worker_reach_a_browser_on_another_process(rig, tess, sam):
    web = rig.start_web()
    bell = SseStream(web.url, "/notifications/events/", cookies=session_cookie(sam))
    queue = SseStream(web.url, "/escalations/events/", cookies=session_cookie(sam))
    try:
        bell.wait_open()
        queue.wait_open()
        # Left behind by a request whose publish failed: only the worker's drain sends them.
        OutboxEvent.objects.bulk_create(
            [
                OutboxEvent(
                    channel=user_channel(sam.pk),
                    event_type="notification",
                    data={"handoff": "h-1", "text": "from the worker"},
                ),
                OutboxEvent(
                    channel=queue_channel(sam.account_id),
                    event_type="handoff-escalated",
                    data={"handoff": "h-1"},
                ),
            ]
        )
        rig.start_worker()

        assert bell.wait_for("notification", timeout=15).json["text"] == "from the worker"
        assert queue.wait_for("handoff-escalated", timeout=5).json["handoff"] == "h-1"
        assert not OutboxEvent.objects.filter(published_at=None).exists()
    finally:
        bell.close()
        queue.close()


def test_a_relay_answering_each_command_in_4_6_s_sends_every_email_once(rig, tess, sam, sky, ada):
    # Every reply (the greeting too) takes 4.6 s, within the 5 s timeout: a send takes
    # about 28 s, longer than five timeouts. The lease must outlast it.
    rig.smtp = SmtpSink(timeout=5, reply_delay=4.6).start()
    rig.start_worker()

    handoff = escalate(tess)

    wait_until(
        lambda: all(state == EmailState.SENT for state, _ in states(handoff).values()),
        120,
        lambda: f"{states(handoff)}\n{rig.logs()}",
    )
    assert rig.smtp.addresses() == SENIORS
    assert states(handoff) == {address: (EmailState.SENT, 1) for address in SENIORS}


def test_the_drain_keeps_publishing_while_every_email_worker_is_stuck(rig, tess, sam):
    # The mail server takes every message and never answers: each send hangs in DATA until
    # its deadline (6 × 10 s), holding the only email worker thread.
    rig.smtp = SmtpSink(timeout=10)
    rig.smtp.hold_all = True
    rig.smtp.start()
    rig.start_worker(queues="email", beat=False, concurrency=1)
    rig.start_worker(queues="events,outbound", beat=True, concurrency=1)

    handoff = escalate(tess)
    assert rig.smtp.holding.wait(30), rig.logs()

    for round_number in range(3):
        left_behind = OutboxEvent.objects.create(
            channel=queue_channel(sam.account_id),
            event_type="handoff-escalated",
            data={"handoff": f"h-{round_number}"},
        )
        wait_until(
            lambda row=left_behind: OutboxEvent.objects.get(pk=row.pk).published_at is not None,
            20,
            lambda: f"the drain stopped while email is stuck\n{rig.logs()}",
        )
    # Still stuck: one send holds the email worker, the others wait for it.
    assert EmailDelivery.objects.filter(handoff=handoff, state=EmailState.SENDING).count() == 1
    assert rig.smtp.addresses() == []
    rig.smtp.hold_all = False
    rig.smtp.release.set()  # the server answers again: the held message is accepted
