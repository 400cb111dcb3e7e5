"""Escalation work for the Celery worker: escalation emails and their sweep.

Tasks take ids, load rows and are safe to run twice (see ``escalations.mail``).
"""

from celery import shared_task
from django.dispatch import receiver
from django.utils.dateparse import parse_datetime

from escalations import assessment, mail
from escalations.actions import store_assessment
from escalations.models import Handoff, HandoffState
from resolutionflow.broker import enqueue_task
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


@shared_task(name="escalations.refresh_assessment", acks_late=True)
def refresh_assessment(handoff_id: str, expected_updated_at: str | None = None) -> bool:
    """Assess a handoff (bounded) and store the result if nothing newer was requested since.

    Safe to run twice: the second run finds the stamp moved and stores nothing.
    """
    handoff = (
        Handoff.objects.select_related("session", "escalated_by").filter(pk=handoff_id).first()
    )
    if handoff is None or handoff.state in (HandoffState.RESOLVED, HandoffState.RELEASED):
        return False
    expected = parse_datetime(expected_updated_at) if expected_updated_at else None
    if expected is None:
        expected = handoff.assessment_updated_at
    elif expected != handoff.assessment_updated_at:
        return False  # superseded before we started: skip the engine call too
    data = assessment.assess_within_bound(assessment.conversation_for_handoff(handoff))
    return (
        store_assessment(handoff_id=handoff.pk, assessment=data, expected_updated_at=expected)
        is not None
    )


@receiver(outbox_drain, dispatch_uid="escalations.realert_overdue_handoffs")
def realert_overdue_handoffs(sender, **kwargs) -> int:
    """On every outbox drain (the beat's 5 s): re-alert handoffs nobody has claimed."""
    from escalations import actions

    told = actions.realert_overdue_handoffs()
    return len(told.seniors) + len(told.admins)


@receiver(outbox_drain, dispatch_uid="escalations.expire_presence")
def expire_presence(sender, **kwargs) -> int:
    """On every outbox drain: tabs that stopped beating stop showing as viewers."""
    from escalations import presence

    return presence.expire_presence()
