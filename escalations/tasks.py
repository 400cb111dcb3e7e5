"""Escalation work for the Celery worker: escalation emails and their sweep.

Tasks take ids, load rows and are safe to run twice (see ``escalations.mail``).
"""

from celery import shared_task
from django.dispatch import receiver

from escalations import mail

# Registers the AI assessment task (escalations.refresh_assessment) with the worker, which
# imports every app's tasks module at start.
from escalations.assessment import refresh_assessment as _register_assessment  # noqa: F401
from resolutionflow.events import enqueue_task
from resolutionflow.tasks import outbox_drain


@shared_task(name="escalations.tasks.send_escalation_email", acks_late=True, ignore_result=True)
def send_escalation_email(delivery_id: int) -> str:
    """Send one escalation email unless another run has it or sent it already."""
    return mail.deliver(delivery_id)


@receiver(outbox_drain, dispatch_uid="escalations.requeue_due_emails")
def requeue_due_emails(sender, **kwargs) -> int:
    """On every outbox drain: queue the emails whose time has come (retries, lost tasks)."""
    due = mail.sweep_due_deliveries()
    for delivery_id in due:
        enqueue_task(
            send_escalation_email,
            delivery_id,
            on_failure=lambda delivery_id=delivery_id: mail.mark_due_now([delivery_id]),
        )
    return len(due)


@receiver(outbox_drain, dispatch_uid="escalations.realert_overdue_handoffs")
def realert_overdue_handoffs(sender, **kwargs) -> int:
    """On every outbox drain (the beat's 5 s): re-alert handoffs nobody has claimed."""
    from escalations import actions

    told = actions.realert_overdue_handoffs()
    return len(told.seniors) + len(told.admins)
