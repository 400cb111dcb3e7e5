"""Escalation emails: who gets one, what it says, and the delivery state machine.

These run the delivery function in the test process (Django's locmem mail backend); the
same code under a real Celery worker and SMTP server is in test_worker.py.
"""

import os
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail as django_mail
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from escalations import actions, mail
from escalations.models import EmailDelivery, EmailState
from flowpilot.models import Session, Task, TaskStatus
from resolutionflow import eventstream_redis
from resolutionflow.events import breaker
from resolutionflow.models import User
from tests.asgi import free_port
from tests.services import celery_broker


@pytest.fixture(autouse=True)
def closed_breaker():
    breaker.reset()
    yield
    eventstream_redis.stop_probe()  # a probe left running would close a later test's breaker
    breaker.reset()


def escalate(user, *, problem="Printers: every job stays queued", urgency="high", tasks=()):
    session = Session.objects.create(
        account=user.account, owner=user, problem=problem, customer="Acme HQ", device="PRN-04"
    )
    for position, (title, status, outcome) in enumerate(tasks):
        Task.objects.create(
            session=session, position=position, title=title, status=status, outcome=outcome
        )
    return actions.escalate(
        session=session, user=user, reason="Restarted the spooler twice", urgency=urgency
    ).handoff


def deliveries(handoff) -> dict[str, EmailDelivery]:
    return {row.recipient.username: row for row in handoff.emails.select_related("recipient")}


def send_all(handoff) -> list[str]:
    return [mail.deliver(row.pk) for row in handoff.emails.order_by("pk")]


@pytest.mark.django_db
def test_every_senior_but_the_escalator_gets_one_email(tess, sam, sky, ada, gwen):
    handoff = escalate(tess)
    rows = deliveries(handoff)
    assert sorted(rows) == ["ada", "sam", "sky"]
    assert {row.address for row in rows.values()} == {
        "sam@acme.example",
        "sky@acme.example",
        "ada@acme.example",
    }
    assert all(row.state == EmailState.PENDING for row in rows.values())

    send_all(handoff)
    assert sorted(m.to[0] for m in django_mail.outbox) == sorted(r.address for r in rows.values())


@pytest.mark.django_db
def test_an_address_with_a_line_break_is_refused_and_the_others_still_go_out(tess, sam, sky, ada):
    sky.email = "sky@acme.example\r\nBcc: everyone@evil.example"
    sky.save(update_fields=["email"])

    handoff = escalate(tess)
    rows = deliveries(handoff)
    assert rows["sky"].state == EmailState.REFUSED
    assert rows["sky"].last_error == "the address contains a line break"

    assert send_all(handoff) == ["sent", "not-pending", "sent"]  # sam, sky, ada
    assert sorted(m.to[0] for m in django_mail.outbox) == ["ada@acme.example", "sam@acme.example"]
    for message in django_mail.outbox:
        assert "evil.example" not in message.message().as_string()


@pytest.mark.django_db
def test_a_row_whose_address_was_tampered_with_is_refused_at_send_time(tess, sam):
    handoff = escalate(tess)
    row = deliveries(handoff)["sam"]
    EmailDelivery.objects.filter(pk=row.pk).update(address="sam@acme.example\nBcc: x@y.example")

    assert mail.deliver(row.pk) == "refused"
    row.refresh_from_db()
    assert row.state == EmailState.REFUSED
    assert django_mail.outbox == []


@pytest.mark.django_db
def test_people_without_an_address_get_no_row(tess, sam, sky):
    User.objects.filter(pk=sky.pk).update(email="")
    handoff = escalate(tess)
    assert "sky" not in deliveries(handoff)
    assert "sam" in deliveries(handoff)


@pytest.mark.django_db
def test_the_email_tells_the_senior_what_they_need_in_text_and_html(tess, sam):
    handoff = escalate(
        tess,
        problem="Printers: every job <stays> queued\nSince Tuesday's update, all floors.",
        tasks=[
            ("Restart the print spooler", TaskStatus.FAILED, "Jobs still queued"),
            ("Clear the spool folder", TaskStatus.DONE, "Folder empty"),
            ("Reinstall the driver", TaskStatus.TODO, ""),
        ],
    )
    # Steps taken after the escalation (by the claimer, say) are not the technician's.
    Task.objects.create(
        session=handoff.session, position=9, title="Sam's own idea", status=TaskStatus.DONE
    )
    row = deliveries(handoff)["sam"]
    assert mail.deliver(row.pk) == "sent"

    (message,) = django_mail.outbox
    assert message.to == ["sam@acme.example"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == (
        "[Acme IT] URGENT escalation from Tess Tran: Printers: every job <stays> queued"
    )
    link = f"{settings.SITE_URL}/handoffs/{handoff.pk}/"
    text = message.body
    for expected in (
        "Since Tuesday's update, all floors.",
        "Restarted the spooler twice",
        "Urgency: High",
        "Customer / site: Acme HQ",
        "[Failed] Restart the print spooler: Jobs still queued",
        "[Done] Clear the spool folder: Folder empty",
        link,
    ):
        assert expected in text
    assert "Reinstall the driver" not in text  # not tried yet
    assert "Sam's own idea" not in text

    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert "every job &lt;stays&gt; queued" in html
    assert "<stays>" not in html
    assert message.extra_headers["X-ResolutionFlow-Handoff"] == str(handoff.pk)


@pytest.mark.django_db
def test_a_delivery_is_sent_once_however_often_its_task_runs(tess, sam):
    handoff = escalate(tess)
    row = deliveries(handoff)["sam"]

    assert mail.deliver(row.pk) == "sent"
    assert mail.deliver(row.pk) == "not-pending"  # a redelivered task message
    assert mail.deliver(999_999) == "not-pending"  # a row that is gone

    row.refresh_from_db()
    assert (row.state, row.attempts, row.next_attempt_at) == (EmailState.SENT, 1, None)
    assert row.sent_at is not None
    assert len(django_mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_one_delivery_send_one_message(postgres_only, tess, sam):
    handoff = escalate(tess)
    row = deliveries(handoff)["sam"]
    barrier = threading.Barrier(4)
    outcomes = []

    def run():
        try:
            barrier.wait()
            outcomes.append(mail.deliver(row.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["not-pending"] * 3 + ["sent"]
    assert len(django_mail.outbox) == 1


def dead_smtp() -> dict:
    """A mail server that refuses connections (nothing listens on the port)."""
    options = {"host": "127.0.0.1", "port": free_port(), "timeout": 1}
    return {
        "default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}
    }


@pytest.mark.django_db
def test_an_smtp_failure_is_retried_with_backoff_then_fails_visibly(tess, sam, admin_client):
    handoff = escalate(tess)
    row = deliveries(handoff)["sam"]

    with override_settings(MAILERS=dead_smtp()):
        before = timezone.now()
        assert mail.deliver(row.pk) == "retry"
        row.refresh_from_db()
        assert row.state == EmailState.PENDING
        assert row.attempts == 1
        assert "ConnectionRefusedError" in row.last_error
        expected = before + timedelta(seconds=mail.RETRY_BACKOFF_SECONDS[0])
        assert abs((row.next_attempt_at - expected).total_seconds()) < 2

        outcomes = [mail.deliver(row.pk) for _ in range(mail.MAX_ATTEMPTS - 1)]
    assert outcomes == ["retry"] * (mail.MAX_ATTEMPTS - 2) + ["failed"]
    row.refresh_from_db()
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", mail.MAX_ATTEMPTS, None)
    assert mail.deliver(row.pk) == "not-pending"

    # Admins find it in the Django admin, filtered by state.
    page = admin_client.get("/admin/escalations/emaildelivery/?state__exact=failed")
    assert page.status_code == 200
    assert b"sam@acme.example" in page.content
    assert b"ConnectionRefusedError" in page.content


@pytest.mark.django_db
def test_an_expired_lease_goes_back_to_the_sweep(tess, sam, sky):
    handoff = escalate(tess)
    rows = deliveries(handoff)
    now = timezone.now()
    # sam's sender died mid-send long ago; sky's is still within its lease.
    EmailDelivery.objects.filter(pk=rows["sam"].pk).update(
        state=mail.SENDING, next_attempt_at=now - timedelta(seconds=1), attempts=1
    )
    EmailDelivery.objects.filter(pk=rows["sky"].pk).update(
        state=mail.SENDING, next_attempt_at=now + timedelta(seconds=30), attempts=1
    )
    EmailDelivery.objects.exclude(pk__in=[rows["sam"].pk, rows["sky"].pk]).delete()

    assert mail.sweep_due_deliveries(now=now) == [rows["sam"].pk]
    states = dict(EmailDelivery.objects.values_list("recipient__username", "state"))
    assert states == {"sam": "pending", "sky": "sending"}
    assert mail.deliver(rows["sam"].pk) == "sent"
    assert mail.deliver(rows["sky"].pk) == "not-pending"  # its sender may still succeed


@pytest.mark.django_db
def test_the_sweep_queues_only_what_is_due_and_only_once_a_minute(tess, sam, sky, ada):
    handoff = escalate(tess)
    rows = deliveries(handoff)
    now = timezone.now()
    # sam: fresh, its own task is on the way. sky: retry due. ada: retry later.
    EmailDelivery.objects.filter(pk=rows["sky"].pk).update(next_attempt_at=now)
    EmailDelivery.objects.filter(pk=rows["ada"].pk).update(
        next_attempt_at=now + timedelta(seconds=30)
    )
    assert mail.sweep_due_deliveries(now=now) == [rows["sky"].pk]
    assert mail.sweep_due_deliveries(now=now + timedelta(seconds=5)) == []

    later = now + timedelta(seconds=mail.FRESH_GRACE_SECONDS + 1)
    assert sorted(mail.sweep_due_deliveries(now=later)) == sorted([rows["sam"].pk, rows["ada"].pk])


@pytest.mark.django_db(transaction=True)
def test_a_dead_broker_leaves_the_emails_to_the_sweep(tess, sam, sky, ada):
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        started = timezone.now()
        handoff = escalate(tess)  # commits; the enqueue after commit fails
        elapsed = (timezone.now() - started).total_seconds()
    assert elapsed < 2
    rows = deliveries(handoff)
    assert all(row.state == EmailState.PENDING for row in rows.values())
    assert all(row.next_attempt_at is not None for row in rows.values())
    assert sorted(mail.sweep_due_deliveries()) == sorted(row.pk for row in rows.values())


class TricklingServer:
    """A mail server that answers one byte at a time: no read ever waits a whole timeout,
    yet the exchange would take far longer than its deadline."""

    def __init__(self, byte_every: float) -> None:
        self.byte_every = byte_every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed_by_client = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    GREETING = b"220 slow.example ESMTP at your service, eventually\r\n"

    def _serve(self) -> None:
        self.sent = 0
        conn, _ = self.listener.accept()
        with conn:
            try:
                for byte in self.GREETING:
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.byte_every)
            except OSError:
                pass
            self.closed_by_client.set()

    def close(self) -> None:
        self.listener.close()


def test_one_deadline_bounds_the_whole_smtp_exchange():
    from resolutionflow.smtp import DeadlineEmailBackend, SendDeadlineExceeded, send_deadline

    server = TricklingServer(byte_every=0.2)  # the greeting alone takes about 10 s
    options = {"host": "127.0.0.1", "port": server.port, "timeout": 0.5}
    backend_path = "resolutionflow.smtp.DeadlineEmailBackend"
    with override_settings(MAILERS={"default": {"BACKEND": backend_path, "OPTIONS": options}}):
        backend = django_mail.mailers.default
    assert isinstance(backend, DeadlineEmailBackend)
    assert backend.deadline_seconds() == send_deadline(0.5) == 3.0
    message = django_mail.EmailMessage("Subject", "Body", "a@example.com", ["b@example.com"])
    try:
        with pytest.raises(SendDeadlineExceeded):
            backend.send_then_quit([message])
        # The connection was dropped, not left to finish in the background.
        assert backend.connection is None
        assert server.closed_by_client.wait(5)
        # Given up at the deadline, in the middle of the greeting: not after it.
        assert server.sent < len(server.GREETING)
    finally:
        server.close()


@override_settings(
    MAILERS={
        "default": {
            "BACKEND": "resolutionflow.smtp.DeadlineEmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 25, "timeout": 5},
        }
    }
)
def test_the_lease_outlasts_the_send_deadline_both_from_the_smtp_timeout():
    from resolutionflow.smtp import send_deadline

    assert send_deadline(5) == 30.0
    assert mail.lease_seconds() == 40.0  # the deadline, plus a 10 s margin
    assert mail.lease_seconds() > send_deadline(5)


def test_email_url_picks_the_deadline_backend_with_its_timeout():
    from resolutionflow.env import env_email

    os.environ["RF_TEST_EMAIL_URL"] = "smtp://relay.example:2525/?timeout=5"
    try:
        config = env_email("RF_TEST_EMAIL_URL", default="console://")["default"]
    finally:
        del os.environ["RF_TEST_EMAIL_URL"]
    assert config["BACKEND"] == "resolutionflow.smtp.DeadlineEmailBackend"
    assert config["OPTIONS"]["timeout"] == 5
