"""The bell: the signed-in person's notifications, as a fragment for htmx (the JSON of the
same URLs is escalations/api.py).

The top bar loads the fragment with ``hx-get`` after the page (so every page stays cheap)
and again whenever static/js/bell.js hears a ``notification`` on the user's event stream.
Two queries whatever the number of notifications: the unread count and the recent items
(a senior's third: how many handoffs they hold, for the top bar).
"""

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from escalations import queries
from escalations.actions import mark_notifications_read
from escalations.models import CALLS_TO_PICK_UP, HandoffState, Notification, NotificationKind
from resolutionflow.http import request_data, see_other

RECENT = 10

KIND_ICONS = {
    NotificationKind.HANDOFF_ESCALATED: "arrived",
    NotificationKind.HANDOFF_CLAIMED: "claimed",
    NotificationKind.HANDOFF_RELEASED: "released",
    NotificationKind.HANDOFF_RESOLVED: "resolved",
    NotificationKind.HANDOFF_OVERDUE: "overdue",
}


def notifications_of(user) -> QuerySet[Notification]:
    """The user's own notifications; nobody else's, whatever the id asked for."""
    if not user.is_authenticated or user.account_id is None:
        return Notification.objects.none()
    return Notification.objects.filter(recipient=user, account_id=user.account_id)


def notification_url(notification: Notification) -> str:
    """Where a bell item leads: the handoff screen (read-only for its escalator)."""
    return reverse("escalations:handoff", args=[notification.handoff_id])


def _ago(moment, now) -> str:
    if (now - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, now).split(', ')[0]} ago"


def bell_state(user) -> tuple[int, list[Notification]]:
    """The unread count and the recent items, each with its url, icon, age and outcome."""
    mine = notifications_of(user)
    unread = mine.to_read().count()
    recent = list(
        mine.select_related("handoff__claimed_by").only(
            "id",
            "kind",
            "text",
            "created_at",
            "read_at",
            "handoff__state",
            "recipient",
            "handoff__escalated_by",
            "handoff__claimed_by__username",
            "handoff__claimed_by__display_name",
            "handoff__claimed_by__first_name",
            "handoff__claimed_by__last_name",
        )[:RECENT]
    )
    now = timezone.now()
    for notification in recent:
        notification.url = notification_url(notification)
        notification.icon = KIND_ICONS.get(notification.kind, "arrived")
        notification.ago = _ago(notification.created_at, now)
        notification.outcome = _outcome(notification, user)
        # A call to pick up a handoff that still waits: both ways to take it over, here.
        notification.can_take = (
            user.is_senior
            and notification.kind in CALLS_TO_PICK_UP
            and notification.handoff.state == HandoffState.OPEN
            and notification.handoff.escalated_by_id != user.pk
        )
    return unread, recent


def _outcome(notification: Notification, user) -> str:
    """What became of a "pick this up" item: who has it now, or where it went."""
    if notification.kind not in CALLS_TO_PICK_UP:
        return ""
    handoff = notification.handoff
    if handoff.state == HandoffState.CLAIMED:
        return (
            "You have it"
            if handoff.claimed_by_id == user.pk
            else f"{handoff.claimed_by.name} has it"
        )
    if handoff.state == HandoffState.RESOLVED:
        return "Resolved"
    if handoff.state == HandoffState.RELEASED:
        return "Released back to the queue"
    return ""


def _render(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    unread, recent = bell_state(request.user)
    context = {"unread": unread, "notifications": recent, "enabled": True}
    if request.user.is_senior:
        # The count of "My handoffs" beside Escalations in the top bar rides along (out of
        # band): the bell already loads after every page and on every claim.
        context["my_claims"] = queries.my_claims_of(request.user).count()
    return render(request, "escalations/bell.html", context, status=status)


@require_GET
def bell(request: HttpRequest) -> HttpResponse:
    """The bell fragment."""
    return _render(request)


@require_POST
def mark_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one of my notifications read; with ``open`` set, go on to its handoff."""
    notification = get_object_or_404(
        notifications_of(request.user).only("id", "handoff_id", "read_at"), pk=notification_id
    )
    if notification.read_at is None:
        mark_notifications_read(user=request.user, notification_id=notification.pk)
    if request_data(request).get("open"):
        return see_other(request, notification_url(notification))
    if request.htmx:
        return _render(request)
    return see_other(request, reverse("home"))


@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    """Mark every one of my notifications read."""
    mark_notifications_read(user=request.user)
    if request.htmx:
        return _render(request)
    return see_other(request, reverse("home"))
