"""Escalation emails: one per (handoff, recipient), sent at most once by any number of tasks.

An ``EmailDelivery`` row is written in the escalate transaction. After commit a task per
row is queued; the row, not the queue, is the truth:

    pending ──claim──▶ sending ──SMTP accepted──▶ sent
       ▲                  │ SMTP error: attempts left → pending again at next_attempt_at
       └── lease expired ─┤ none left → failed (last_error; the admin lists it)
                          ▼
    refused: an address with a line break, decided when the row is written; never sent.

- The claim is one conditional UPDATE (``state = 'pending'`` → ``'sending'``): of two
  deliveries of the same task message only one sends.
- While ``sending``, ``next_attempt_at`` is the lease. A worker killed mid-send leaves the
  row ``sending``; once the lease expires the sweep puts it back to ``pending`` and queues
  it again. The lease outlasts the slowest send the SMTP timeout allows: the whole SMTP
  exchange has one deadline derived from that timeout, enforced (``resolutionflow.smtp``),
  and the lease is that deadline plus a margin.
- For ``pending`` rows ``next_attempt_at`` is when the sweep (``sweep_due_deliveries``, run
  by the outbox drain every 5 s) should next queue the row: a retry after backoff, at once
  after a failed enqueue, or a re-queue if a queued task went missing.

Exactly once holds unless a worker dies in the instant between the SMTP server accepting
the message and the ``sent`` update: then the lease expires and the message goes again
(at least once). No mail protocol closes that window; it is milliseconds wide.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from escalations.models import EmailDelivery, EmailKind, EmailState
from flowpilot.models import Task, TaskStatus
from resolutionflow import smtp
from resolutionflow.smtp import DeadlineEmailBackend

logger = logging.getLogger(__name__)

SENDING = EmailState.SENDING  # claimed by one task run, under a lease

# Waits after the 1st, 2nd, ... failed attempt; after the last one the delivery fails.
RETRY_BACKOFF_SECONDS = (5, 30, 120, 600, 1800)
MAX_ATTEMPTS = len(RETRY_BACKOFF_SECONDS) + 1
# A fresh row whose task has not claimed it within this long is queued again by the sweep.
FRESH_GRACE_SECONDS = 30
# After the sweep queues a row, it waits this long before queueing it again.
REQUEUE_AFTER_SECONDS = 60
SWEEP_BATCH = 200


def address_refusal(address: str) -> str:
    """Why ``address`` must not be used as a recipient, or "" if it may."""
    if not address:
        return "no email address"
    if any(char in address for char in "\r\n\0"):
        return "the address contains a line break"
    return ""


def lease_seconds() -> float:
    """How long a claimed send may take: the mailer's whole-exchange deadline plus a margin.

    Both come from the one SMTP timeout (``resolutionflow.smtp``): a send that reaches its
    deadline is abandoned before its lease ends, so it is retried, never sent twice.
    """
    mailer = mail.mailers.default
    if isinstance(mailer, DeadlineEmailBackend):
        return mailer.lease_seconds()
    # Backends that do not talk to a server (console, file, memory) answer at once.
    return smtp.lease_seconds(float(getattr(mailer, "timeout", None) or 10))


def handoff_url(handoff_id) -> str:
    return settings.SITE_URL + reverse("escalations:handoff", args=[handoff_id])


def steps_tried(handoff) -> list[dict]:
    """What was tried when the handoff was escalated (the package's snapshot, so a retry
    hours later does not report the claimer's steps as the technician's)."""
    package = handoff.escalation_package or {}
    if "steps_tried" in package:
        steps = package["steps_tried"]
    else:
        tasks = Task.objects.filter(session_id=handoff.session_id).tried()
        steps = tasks.order_by("position", "id").values("title", "status", "outcome")
    return [
        {
            "title": step.get("title", ""),
            "status": _status_label(step.get("status", "")),
            "outcome": step.get("outcome", ""),
        }
        for step in steps
    ]


def _status_label(status: str) -> str:
    try:
        return TaskStatus(status).label
    except ValueError:
        return status


def _waited(handoff, kind: str) -> str:
    """How long the handoff had waited when this re-alert was decided."""
    from resolutionflow.templatetags.rf import waited

    told_at = handoff.admins_alerted_at if kind == EmailKind.ADMINS else handoff.overdue_at
    return waited(handoff.in_queue_since, told_at or timezone.now())


def build_message(delivery: EmailDelivery) -> mail.EmailMultiAlternatives:
    """The escalation email for one recipient: plain text and HTML from the same context."""
    handoff = delivery.handoff
    session = handoff.session
    context = {
        "recipient": delivery.recipient,
        "handoff": handoff,
        "session": session,
        "escalated_by": handoff.escalated_by,
        "account": handoff.account,
        "tried": steps_tried(handoff),
        "url": handoff_url(handoff.pk),
        # A re-alert: how long it had waited when the seniors (or admins) were told again.
        "overdue": _waited(handoff, delivery.kind) if delivery.kind != EmailKind.ARRIVED else "",
        # Back in the queue after a release: the re-alert counts from then.
        "requeued": handoff.queued_at is not None,
    }
    subject = render_to_string("emails/escalation_arrived_subject.txt", context)
    subject = " ".join(subject.split())[:200]
    message = mail.EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/escalation_arrived.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.address],
        headers={"X-ResolutionFlow-Handoff": str(handoff.pk)},
    )
    message.attach_alternative(
        render_to_string("emails/escalation_arrived.html", context), "text/html"
    )
    return message


def deliver(delivery_id: int) -> str:
    """Send one delivery if it is ours to send; return what happened (for logs and tests).

    Safe to call any number of times, concurrently: only the caller whose claim succeeds
    talks to the mail server.
    """
    now = timezone.now()
    claimed = EmailDelivery.objects.filter(pk=delivery_id, state=EmailState.PENDING).update(
        state=SENDING,
        next_attempt_at=now + timedelta(seconds=lease_seconds()),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return "not-pending"
    delivery = EmailDelivery.objects.select_related(
        "handoff__session", "handoff__escalated_by", "handoff__account", "recipient"
    ).get(pk=delivery_id)
    # Our claim, fenced by the attempt number: a lost lease must not overwrite another's result.
    ours = EmailDelivery.objects.filter(pk=delivery_id, state=SENDING, attempts=delivery.attempts)

    refusal = address_refusal(delivery.address)
    if refusal:
        ours.update(state=EmailState.REFUSED, last_error=refusal, next_attempt_at=None)
        return "refused"
    mailer = mail.mailers.default
    try:
        message = build_message(delivery)
        if isinstance(mailer, DeadlineEmailBackend):
            mailer.send_then_quit([message])  # within the deadline, or raises
        else:
            mailer.send_messages([message])
    except Exception as error:
        return _record_failure(ours, delivery, error)
    try:
        if not ours.update(
            state=EmailState.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
        ):
            logger.warning("Email %s was sent after its lease ran out", delivery_id)
    finally:
        # The goodbye comes after the record: a slow QUIT cannot outlast the lease.
        with contextlib.suppress(Exception):
            mailer.close()
    return "sent"


def _record_failure(ours, delivery: EmailDelivery, error: Exception) -> str:
    detail = f"{type(error).__name__}: {error}"[:500]
    if delivery.attempts >= MAX_ATTEMPTS:
        ours.update(state=EmailState.FAILED, last_error=detail, next_attempt_at=None)
        logger.error(
            "Email %s failed for good after %d attempts: %s", delivery.pk, delivery.attempts, detail
        )
        return "failed"
    wait = RETRY_BACKOFF_SECONDS[delivery.attempts - 1]
    ours.update(
        state=EmailState.PENDING,
        last_error=detail,
        next_attempt_at=timezone.now() + timedelta(seconds=wait),
    )
    logger.warning("Email %s failed (%s); retrying in %d s", delivery.pk, detail, wait)
    return "retry"


def mark_due_now(delivery_ids: list[int]) -> None:
    """A task could not be queued: let the next sweep queue these rows."""
    EmailDelivery.objects.filter(pk__in=delivery_ids, state=EmailState.PENDING).update(
        next_attempt_at=timezone.now()
    )


def sweep_due_deliveries(*, now=None) -> list[int]:
    """Return the rows to queue now, and push their next look into the future.

    Expired leases go back to pending first. Rows whose fresh task seems lost, whose retry
    time has come, or whose enqueue failed are due.
    """
    now = now or timezone.now()
    EmailDelivery.objects.filter(state=SENDING, next_attempt_at__lte=now).update(
        state=EmailState.PENDING, next_attempt_at=now
    )
    due = EmailDelivery.objects.filter(state=EmailState.PENDING).filter(
        Q(next_attempt_at__lte=now)
        | Q(
            next_attempt_at__isnull=True,
            created_at__lte=now - timedelta(seconds=FRESH_GRACE_SECONDS),
        )
    )
    ids = list(due.order_by("id").values_list("id", flat=True)[:SWEEP_BATCH])
    if ids:
        EmailDelivery.objects.filter(pk__in=ids, state=EmailState.PENDING).update(
            next_attempt_at=now + timedelta(seconds=REQUEUE_AFTER_SECONDS)
        )
    return ids
