"""The handoff manager's JSON API (docs/API.md): escalate, the queue, a handoff, and claim /
release / resolve.

The same URLs as the pages (``resolutionflow.http.page_or_api`` sends API clients here).
Each view: ``api_view`` (method, role, the one error shape) → access getter (404 outside
the account) → form (400) → one action of escalations/actions.py → JSON. A refused change
(``HandoffError``) is answered with its code and the facts a client needs to recover.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from escalations import actions, bell, queries
from escalations.actions import AlreadyClaimed, AlreadyEscalated, HandoffError, HandoffForbidden
from escalations.forms import EscalateForm, QueueFilterForm, ResolveForm
from escalations.models import Handoff
from flowpilot.models import Session
from resolutionflow.http import (
    ApiError,
    BadRequestBody,
    api_view,
    form_errors,
    request_data,
    see_other,
    valid_form,
)
from resolutionflow.models import Role
from resolutionflow.people import person_json
from resolutionflow.ratelimit import limit_per_user

MEMBERS = (Role.TECHNICIAN, Role.ENGINEER, Role.ADMIN)
SENIORS = (Role.ENGINEER, Role.ADMIN)


def refusal_error(refusal: HandoffError) -> ApiError:
    """A refused handoff change in the one error shape, with what the client needs next:
    the live handoff of an escalated session, the winner of a claim, or the state that
    forbade the change."""
    extra: dict = {}
    handoff = refusal.handoff
    if isinstance(refusal, AlreadyEscalated):
        extra = {
            "handoff": str(handoff.pk),
            "url": reverse("escalations:handoff", args=[handoff.pk]),
        }
    elif isinstance(refusal, AlreadyClaimed):
        extra = {"handoff": str(handoff.pk), "claimed_by": person_json(handoff.claimed_by)}
    elif handoff is not None and not isinstance(refusal, HandoffForbidden):
        extra = {"handoff": str(handoff.pk), "state": handoff.state}
    return ApiError(refusal.status, refusal.code, str(refusal), **extra)


def handoff_api(*methods: str, roles=SENIORS):
    return api_view(methods=methods, roles=roles)


# --- JSON shapes -----------------------------------------------------------------------------


def card_json(handoff: Handoff, *, now=None) -> dict:
    return {
        "id": str(handoff.pk),
        "session": handoff.session_id,
        "state": handoff.state,
        "urgency": handoff.urgency,
        "problem": handoff.session.title,
        "reason": handoff.reason,
        "customer": handoff.session.customer,
        "device": handoff.session.device,
        "escalated_by": person_json(handoff.escalated_by),
        "created_at": handoff.created_at.isoformat(),
        "waiting_seconds": queries.waiting_seconds(handoff, now=now),
        "steps_tried": getattr(handoff, "steps_tried", None),
        "unread": not getattr(handoff, "seen", True),
        "claimed_by": person_json(handoff.claimed_by),
        "claimed_at": handoff.claimed_at.isoformat() if handoff.claimed_at else None,
    }


def handoff_json(handoff: Handoff) -> dict:
    data = card_json(handoff)
    data.update(
        {
            "first_action_at": handoff.first_action_at.isoformat()
            if handoff.first_action_at
            else None,
            "first_action_kind": handoff.first_action_kind or None,
            "released_at": handoff.released_at.isoformat() if handoff.released_at else None,
            "resolved_at": handoff.resolved_at.isoformat() if handoff.resolved_at else None,
            "resolution_note": handoff.resolution_note,
            "reopened_from": str(handoff.reopened_from_id) if handoff.reopened_from_id else None,
            "escalation_package": handoff.escalation_package,
        }
    )
    return data


# -------------------------------------------------------------------------------- escalate


@handoff_api("POST", roles=MEMBERS)
@limit_per_user("escalations")
def escalate(request: HttpRequest, session_id: int) -> JsonResponse:
    """Escalate a session of mine: ``201 {"handoff", "session", "notified"}``."""
    session = get_object_or_404(Session.objects.visible_to(request.user), pk=session_id)
    form = valid_form(EscalateForm, request)
    try:
        escalation = actions.escalate(session=session, user=request.user, **form.cleaned_data)
    except HandoffError as refusal:
        raise refusal_error(refusal) from None
    return JsonResponse(
        {
            "handoff": str(escalation.handoff.pk),
            "session": session.pk,
            "notified": escalation.notified,
        },
        status=201,
    )


# ----------------------------------------------------------------------- queue and handoff


@handoff_api("GET")
def queue(request: HttpRequest) -> JsonResponse:
    """One page of the account's waiting handoffs (never the caller's own), filtered as the
    page is, with the total, where the next page starts (``?after=<next>``, null at the end)
    and the recent claims."""
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        raise BadRequestBody(form_errors(form))
    page = queries.waiting_page(
        request.user,
        form.filters(),
        after=form.cleaned_data.get("after"),
        size=form.cleaned_data.get("size"),
    )
    now = timezone.now()
    return JsonResponse(
        {
            "waiting": [card_json(h, now=now) for h in page.handoffs],
            "total": page.total,
            "next": page.next_cursor,
            "recently_claimed": [
                card_json(h, now=now) for h in queries.recently_claimed(request.user)
            ],
        }
    )


@handoff_api("GET", roles=MEMBERS)
def handoff(request: HttpRequest, handoff_id) -> JsonResponse:
    """One handoff with its escalation package; opening it clears the caller's unread dot."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    actions.mark_handoff_seen(handoff=handoff, user=request.user)
    return JsonResponse(handoff_json(handoff))


# ------------------------------------------------------------------ claim, release, resolve


@handoff_api("POST")
def claim(request: HttpRequest, handoff_id) -> JsonResponse:
    """Claim an open handoff; of simultaneous claimers one wins, the others get a 409."""
    try:
        handoff = actions.claim_handoff(handoff_id=handoff_id, user=request.user)
    except HandoffError as refusal:
        raise refusal_error(refusal) from None
    return JsonResponse(
        {"status": "claimed", "handoff": str(handoff.pk), "claimed_by": person_json(request.user)}
    )


@handoff_api("POST")
def release(request: HttpRequest, handoff_id) -> JsonResponse:
    """Give a claimed handoff back: the session waits again as a new open handoff."""
    try:
        reopened = actions.release_handoff(handoff_id=handoff_id, user=request.user)
    except HandoffError as refusal:
        raise refusal_error(refusal) from None
    return JsonResponse(
        {"status": "released", "handoff": str(handoff_id), "reopened_as": str(reopened.pk)}
    )


@handoff_api("POST")
def resolve(request: HttpRequest, handoff_id) -> JsonResponse:
    """Close a handoff (and its session) with an optional note."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    try:
        # Before the form: someone who may not close it learns nothing from field errors.
        actions.check_can_close(handoff, request.user)
        form = valid_form(ResolveForm, request)
        handoff = actions.resolve_handoff(
            handoff_id=handoff.pk, user=request.user, note=form.cleaned_data["note"]
        )
    except HandoffError as refusal:
        raise refusal_error(refusal) from None
    return JsonResponse({"status": "resolved", "handoff": str(handoff.pk)})


# ------------------------------------------------------------------------------- the bell


def bell_json(request: HttpRequest) -> JsonResponse:
    """The caller's unread count and 10 newest notifications."""
    unread, recent = bell.bell_state(request.user)
    return JsonResponse(
        {
            "unread": unread,
            "notifications": [
                {
                    "id": notification.pk,
                    "kind": notification.kind,
                    "text": notification.text,
                    "handoff": str(notification.handoff_id),
                    "url": notification.url,
                    "created_at": notification.created_at.isoformat(),
                    "read": not notification.is_unread,
                    "outcome": notification.outcome,
                }
                for notification in recent
            ],
        }
    )


# Everyone signed in has a bell (an account-less superuser's is empty).
@api_view(methods=["GET"], roles=None)
def notifications(request: HttpRequest) -> JsonResponse:
    return bell_json(request)


@api_view(methods=["POST"], roles=None)
def mark_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one of my notifications read: the fresh bell, or with ``open`` a 303 to it."""
    notification = get_object_or_404(
        bell.notifications_of(request.user).only("id", "handoff_id", "read_at"),
        pk=notification_id,
    )
    if notification.read_at is None:
        actions.mark_notifications_read(user=request.user, notification_id=notification.pk)
    if request_data(request).get("open"):
        return see_other(request, bell.notification_url(notification))
    return bell_json(request)


@api_view(methods=["POST"], roles=None)
def mark_all_read(request: HttpRequest) -> JsonResponse:
    actions.mark_notifications_read(user=request.user)
    return bell_json(request)
