"""Who hears about a handoff, and how: bell notifications, live events and emails.

Called by the handoff manager inside its transaction. Everything is recorded in the
database first (Notification, OutboxEvent and EmailDelivery rows, a fixed number of
INSERTs whatever the number of people) and leaves after commit: events through the outbox,
emails through one Celery task per delivery. A dead broker costs the request one short
timeout at most; the outbox drain and the email sweep deliver the rest when it is back.
"""

from django.db import transaction
from django.db.models import QuerySet

from escalations.channels import user_channel
from escalations.models import (
    EmailDelivery,
    EmailKind,
    EmailState,
    Handoff,
    Notification,
    NotificationKind,
)
from escalations.streams import send_events_on_commit
from resolutionflow.broker import enqueue_task
from resolutionflow.models import Role, User

TEXT_MAX = 300


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


def _short(text: str) -> str:
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


def _notify(users: list[User], handoff: Handoff, kind: str, text: str) -> list[Notification]:
    """One bell item per user, and a ``notification`` event on each user's stream."""
    notifications, events = _record(users, handoff, kind, text)
    send_events_on_commit(events)
    return notifications


def _record(
    users: list[User], handoff: Handoff, kind: str, text: str
) -> tuple[list[Notification], list[tuple[str, str, dict]]]:
    """``_notify``, leaving the events for the caller to send with its own."""
    notifications = Notification.objects.bulk_create(
        [
            Notification(
                account_id=handoff.account_id,
                recipient=user,
                handoff=handoff,
                kind=kind,
                text=_short(text),
            )
            for user in users
        ]
    )
    events = [
        (
            user_channel(notification.recipient_id),
            "notification",
            {
                "handoff": str(handoff.pk),
                "notification": notification.pk,
                "kind": kind,
                "text": notification.text,
            },
        )
        for notification in notifications
    ]
    return notifications, events


def handoff_escalated(handoff: Handoff) -> int:
    """Tell every eligible senior (bell, live event, email); return how many."""
    seniors = list(seniors_to_notify(handoff))
    text = f"{handoff.escalated_by.name} escalated: {handoff.session.title}"
    _notify(seniors, handoff, NotificationKind.HANDOFF_ESCALATED, text)
    _record_emails(handoff, seniors)
    return len(seniors)


def handoff_claimed(handoff: Handoff) -> list[tuple[str, str, dict]]:
    """Tell the escalator who picked their handoff up; return the live event to send.

    The claim sends it with its own events (one INSERT): a claim is the hot path.
    """
    text = f"{handoff.claimed_by.name} picked up your escalation: {handoff.session.title}"
    _, events = _record([handoff.escalated_by], handoff, NotificationKind.HANDOFF_CLAIMED, text)
    return events


def handoff_released(handoff: Handoff, *, released_by: User) -> int:
    """A claimer put the session back in the queue (``handoff`` is the new, open one).

    The other seniors see it return; the technician who escalated learns it is waiting
    again. Returns how many seniors were told.
    """
    seniors = [user for user in seniors_to_notify(handoff) if user.pk != released_by.pk]
    text = f"{released_by.name} released back to the queue: {handoff.session.title}"
    _notify(seniors, handoff, NotificationKind.HANDOFF_RELEASED, text)
    to_escalator = (
        f"{released_by.name} put your escalation back in the queue: {handoff.session.title}"
    )
    _notify([handoff.escalated_by], handoff, NotificationKind.HANDOFF_RELEASED, to_escalator)
    return len(seniors)


def handoff_resolved(handoff: Handoff, *, resolved_by: User) -> None:
    """Tell the technician who escalated that it is fixed, and by whom."""
    if resolved_by.pk == handoff.escalated_by_id:
        return
    text = f"{resolved_by.name} resolved your escalation: {handoff.session.title}"
    _notify([handoff.escalated_by], handoff, NotificationKind.HANDOFF_RESOLVED, text)


def admins_to_notify(handoff: Handoff) -> QuerySet[User]:
    """Active admins of the handoff's account, except whoever escalated it."""
    return seniors_to_notify(handoff).filter(role=Role.ADMIN)


def handoff_overdue(handoff: Handoff, *, admins: bool, waited: str) -> int:
    """Nobody has claimed it past the account's threshold: tell the seniors again (bell,
    live event, one email each), or, past twice the threshold, the admins. Returns how many
    were told."""
    people = list(admins_to_notify(handoff) if admins else seniors_to_notify(handoff))
    if handoff.queued_at:
        text = f"Unclaimed {waited} after a release: {handoff.session.title}"
    else:
        text = f"Still unclaimed after {waited}: {handoff.session.title}"
    _notify(people, handoff, NotificationKind.HANDOFF_OVERDUE, text)
    _record_emails(handoff, people, kind=EmailKind.ADMINS if admins else EmailKind.OVERDUE)
    return len(people)


def _record_emails(
    handoff: Handoff, recipients: list[User], *, kind: str = EmailKind.ARRIVED
) -> list[EmailDelivery]:
    """One EmailDelivery per recipient with an address, queued for sending after commit.

    An address that could inject headers (CR/LF) is refused here, visibly, and the others
    are sent as usual. People without an address get no row.
    """
    from escalations import mail

    rows = []
    for user in recipients:
        address = (user.email or "").strip()
        if not address:
            continue
        refusal = mail.address_refusal(address)
        rows.append(
            EmailDelivery(
                handoff=handoff,
                recipient=user,
                kind=kind,
                address=address[:320],
                state=EmailState.REFUSED if refusal else EmailState.PENDING,
                last_error=refusal,
            )
        )
    deliveries = EmailDelivery.objects.bulk_create(rows)
    pending = [row.pk for row in deliveries if row.state == EmailState.PENDING]
    if pending:
        transaction.on_commit(lambda: queue_emails(pending))
    return deliveries


def queue_emails(delivery_ids: list[int]) -> None:
    """Queue a send task per delivery; what the broker refuses waits for the sweep."""
    from escalations import mail
    from escalations.tasks import send_escalation_email

    failed = [
        delivery_id
        for delivery_id in delivery_ids
        if not enqueue_task(send_escalation_email, delivery_id)
    ]
    if failed:
        mail.mark_due_now(failed)
