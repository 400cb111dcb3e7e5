"""Who hears about a handoff, and how: bell notifications, live events and emails.

Called by the handoff manager inside its transaction. Everything is recorded in the
database first (Notification, OutboxEvent, EmailDelivery rows) and leaves after commit.
"""

from django.db.models import QuerySet

from escalations.channels import user_channel
from escalations.models import Handoff, Notification, NotificationKind
from resolutionflow.events import send_event_on_commit
from resolutionflow.models import Role, User


def seniors_to_notify(handoff: Handoff) -> QuerySet[User]:
    """Active engineers and admins of the handoff's account, except whoever escalated it."""
    return (
        User.objects.filter(
            account_id=handoff.account_id,
            role__in=[Role.ENGINEER, Role.ADMIN],
            is_active=True,
        )
        .exclude(pk=handoff.escalated_by_id)
        .order_by("pk")
    )


def _notify(users: list[User], handoff: Handoff, kind: str, text: str) -> list[Notification]:
    notifications = Notification.objects.bulk_create(
        [
            Notification(
                account_id=handoff.account_id, recipient=user, handoff=handoff, kind=kind, text=text
            )
            for user in users
        ]
    )
    for notification in notifications:
        send_event_on_commit(
            user_channel(notification.recipient_id),
            "notification",
            {
                "handoff": str(handoff.pk),
                "notification": notification.pk,
                "kind": kind,
                "text": text,
            },
        )
    return notifications


def escalation_arrived(handoff: Handoff) -> int:
    """Tell every eligible senior; return how many were notified."""
    seniors = list(seniors_to_notify(handoff))
    problem = handoff.session.title
    text = f"{handoff.escalated_by.name} escalated: {problem}"
    _notify(seniors, handoff, NotificationKind.ESCALATION_ARRIVED, text[:300])
    return len(seniors)


def escalation_claimed(handoff: Handoff) -> None:
    """Tell the escalator who picked their handoff up."""
    text = f"{handoff.claimed_by.name} picked up your escalation: {handoff.session.title}"
    _notify([handoff.escalated_by], handoff, NotificationKind.ESCALATION_CLAIMED, text[:300])


def handoff_released(handoff: Handoff, *, released_by: User) -> int:
    """A claimer put the session back in the queue (``handoff`` is the new, open one)."""
    seniors = [user for user in seniors_to_notify(handoff) if user.pk != released_by.pk]
    text = f"{released_by.name} released back to the queue: {handoff.session.title}"
    _notify(seniors, handoff, NotificationKind.HANDOFF_RELEASED, text[:300])
    return len(seniors)
