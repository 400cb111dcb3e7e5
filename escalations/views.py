"""Escalation pages and their htmx fragments: escalate, the queue, the handoff screen, and
claim / release / resolve (the JSON API of the same URLs is escalations/api.py).

Each view: decorators (method, role) → access getter (404 outside the account) → form →
one action of the handoff manager → a page, an htmx fragment or a redirect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from escalations import actions, queries, takeover
from escalations import presence as presence_store
from escalations.actions import (
    AlreadyEscalated,
    HandoffError,
    HandoffForbidden,
)
from escalations.channels import handoff_channel, queue_channel
from escalations.forms import EscalateForm, QueueFilterForm, RealertPolicyForm, ResolveForm
from escalations.models import Handoff
from escalations.streams import resuming_url
from flowpilot.models import Session
from flowpilot.steps import is_tried
from resolutionflow.http import BadRequestBody, request_data, see_other
from resolutionflow.permissions import admin_required, any_member_required, senior_required
from resolutionflow.ratelimit import limit_per_user
from resolutionflow.sessions import not_activity
from resolutionflow.templatetags.rf import waited

# --- escalate ------------------------------------------------------------------------------


@require_POST
@any_member_required
@limit_per_user("escalations")
def escalate(request: HttpRequest, session_id: int) -> HttpResponse:
    """Escalate a FlowPilot session with a reason and an urgency (the chat's Escalate form)."""
    session = get_object_or_404(Session.objects.visible_to(request.user), pk=session_id)
    form = EscalateForm(request_data(request))
    if not form.is_valid():
        return _escalate_form_invalid(request, session, form)
    try:
        escalation = actions.escalate(session=session, user=request.user, **form.cleaned_data)
    except HandoffForbidden as refusal:
        raise PermissionDenied(str(refusal)) from None
    except AlreadyEscalated as refusal:
        messages.info(request, "This session is already escalated: here is its open handoff.")
        return see_other(request, reverse("escalations:handoff", args=[refusal.handoff.pk]))
    except HandoffError:  # SessionResolved
        form.add_error(None, "This session is resolved. Start a new session for a new problem.")
        return _escalate_form_invalid(request, session, form, status=409)

    notified = escalation.notified
    messages.success(request, f"Escalated — {notified} senior{pluralize(notified)} notified")
    # Back to the chat: it follows the escalation live (who picks it up, what they write).
    return see_other(request, reverse("flowpilot:session", args=[session.pk]))


def _escalate_form_invalid(
    request: HttpRequest, session: Session, form: EscalateForm, *, status: int = 400
) -> HttpResponse:
    """The escalate form again, bound: its errors beside what was typed."""
    context = {"session": session, "form": form}
    if request.htmx:
        # htmx 2 does not swap 4xx answers: the re-rendered form comes with a 200.
        return render(request, "escalations/_escalate_form.html", context)
    return render(request, "escalations/escalate.html", context, status=status)


# --- the queue -----------------------------------------------------------------------------


# A handoff id that no handoff has: reversed once per page, it gives each card's URLs by
# substitution (the ``<uuid:handoff_id>`` converter writes str(id), as below).
_ANY_ID = uuid.UUID(int=0)
_CARD_URLS = ("handoff", "take_over", "preview", "presence")


@dataclass(frozen=True)
class CardText:
    """What a queue card prints beyond the handoff's fields, computed once per card in
    Python: a card in the template costs about 0.5 ms, most of it ``{% url %}`` (five
    per card), date formatting and ``waited``, and the queue shows 50 or more."""

    handoff_url: str
    take_over_url: str
    preview_url: str
    presence_url: str
    escalated: str  # "3 Dec, 11:59" (the waiting time's title)
    escalated_iso: str
    escalated_epoch: str
    waited: str


def _attach_card_text(handoffs: list[Handoff], *, now: datetime | None = None) -> None:
    """Set ``handoff.card`` (CardText) on each card to render (escalations/_card.html),
    with four reverses in all, however many cards."""
    if not handoffs:
        return
    now = now or timezone.now()
    slot = str(_ANY_ID)
    patterns = {
        name: reverse(f"escalations:{name}", args=[_ANY_ID]).replace(slot, "{0}")
        for name in _CARD_URLS
    }
    for handoff in handoffs:
        handoff_id = str(handoff.pk)
        created = timezone.localtime(handoff.created_at)
        handoff.card = CardText(
            handoff_url=patterns["handoff"].format(handoff_id),
            take_over_url=patterns["take_over"].format(handoff_id),
            preview_url=patterns["preview"].format(handoff_id),
            presence_url=patterns["presence"].format(handoff_id),
            escalated=dateformat.format(created, "j M, H:i"),
            # What the date filter's "c" and "U" print, without parsing a format each.
            escalated_iso=created.isoformat(),
            escalated_epoch=str(int(created.timestamp())),
            waited=waited(handoff.created_at, now if handoff.is_open else handoff.claimed_at),
        )


@require_GET
@senior_required
def queue(request: HttpRequest) -> HttpResponse:
    """The account's waiting handoffs (a window of them, filtered) and its recent claims.

    One view, three answers: the page; "Show more" (``after``: the next cards);
    a live refresh or a filter change (htmx: the waiting section, ``through`` the last card
    in view, so that one arriving beyond it changes the count only).
    """
    user = request.user
    now = timezone.now()
    form = QueueFilterForm(request.GET)
    form.is_valid()  # a bad field is reported beside the filters; the others still apply
    filters = form.filters()
    cursor_from = form.cleaned_data.get("after")
    if request.htmx and cursor_from is not None:
        page = queries.waiting_page(user, filters, after=cursor_from, count=False)
        presence_store.attach_viewers(page.cards, user)
        _attach_card_text(page.cards, now=now)
        context = {
            "page": page,
            "now": now,
            "more_query": _queue_query(request, page, first_page=False),
        }
        return render(request, "escalations/queue.html#queue-more-page", context)
    page = queries.waiting_page(
        user,
        filters,
        after=cursor_from,
        through=form.cleaned_data.get("through"),
        size=form.cleaned_data.get("size"),
    )
    presence_store.attach_viewers(page.cards, user)
    context = {
        "page": page,
        "now": now,
        "filter_form": form,
        "more_query": _queue_query(request, page, first_page=cursor_from is None),
    }
    if request.htmx:
        page.leaving = queries.just_picked_up(user, filters, page)
        _attach_card_text(page.cards, now=now)
        return render(request, "escalations/queue.html#queue-body", context)
    _attach_card_text(page.cards, now=now)
    context["recent"] = queries.recently_claimed(user)
    context["mine"] = queries.my_claims(user)
    form.fields["escalated_by"].widget.choices = [("", "Anyone")] + [
        (person.pk, person.name) for person in queries.queue_escalators(user)
    ]
    context["stream_url"] = resuming_url(
        "escalations:queue_events", [queue_channel(user.account_id)]
    )
    return render(request, "escalations/queue.html", context)


def _queue_query(
    request: HttpRequest, page: queries.QueuePage, *, first_page: bool
) -> dict[str, object]:
    """What the queue's links carry: "Show more" (the filters, after the last card) and the
    live refresh's window (the filters, and what is in view)."""
    kept = [
        (name, request.GET[name])
        for name in ("urgency", "customer", "escalated_by", "q")
        if request.GET.get(name)
    ]
    if page.has_more or not first_page:
        # Cards beyond the last one in view stay out of view; the count still changes.
        window = [*kept, ("through", page.through_cursor or "")]
    else:
        # The whole queue is in view: a refresh shows as many, and new ones at the end too.
        window = [*kept, ("size", str(max(len(page.handoffs), queries.QUEUE_PAGE_SIZE)))]
    more = urlencode([*kept, ("after", page.next_cursor)]) if page.next_cursor else None
    return {"more": more, "window": [(name, value) for name, value in window if value]}


@require_GET
@senior_required
def recent(request: HttpRequest) -> HttpResponse:
    """The "Recently claimed" list alone, refreshed by the live queue."""
    context = {"recent": queries.recently_claimed(request.user), "now": timezone.now()}
    return render(request, "escalations/queue.html#recent-list", context)


@require_GET
@senior_required
def mine(request: HttpRequest) -> HttpResponse:
    """ "My handoffs" alone (the senior's live claims), refreshed by the live queue."""
    context = {"mine": queries.my_claims(request.user), "now": timezone.now()}
    return render(request, "escalations/queue.html#my-handoffs", context)


@require_GET
@senior_required
def card(request: HttpRequest, handoff_id) -> HttpResponse:
    """One queue card, fetched by the live queue; 204 for the handoff's own escalator."""
    handoff = queries.card_for_user(request.user, handoff_id)
    if handoff is None:
        return HttpResponse(status=204)
    presence_store.attach_viewers([handoff], request.user)
    _attach_card_text([handoff])
    return render(request, "escalations/_card.html", {"handoff": handoff})


# --- the handoff screen --------------------------------------------------------------------


def _claim_box(request: HttpRequest, context: dict) -> HttpResponse:
    """The claim box after a change of hands, with the header (state, waited) and the
    history out of band: the whole screen then says the same thing."""
    response = render(request, "escalations/handoff.html#claim-box", context)
    for part in ("header", "timeline"):
        response.content += render_to_string(
            f"escalations/handoff.html#{part}", context | {"oob": True}, request=request
        ).encode()
    return response


@require_GET
@any_member_required
def handoff(request: HttpRequest, handoff_id) -> HttpResponse:
    """The handoff screen: who escalated what and why, what was tried, the last messages."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    actions.mark_handoff_seen(handoff=handoff, user=request.user)
    if request.htmx and request.htmx.target == "claim-box":
        # Someone claimed, released or resolved it while the screen was open.
        return _claim_box(request, _handoff_context(request, handoff))
    return render(request, "escalations/handoff.html", _handoff_context(request, handoff))


@require_GET
@senior_required
def preview(request: HttpRequest, handoff_id) -> HttpResponse:
    """The handoff's essentials inline in the queue (counts as opening it)."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    actions.mark_handoff_seen(handoff=handoff, user=request.user)
    return render(request, "escalations/handoff.html#preview", _handoff_context(request, handoff))


def _handoff_context(
    request: HttpRequest, handoff: Handoff, *, resolve_form: ResolveForm | None = None
) -> dict:
    user = request.user
    if user.account_id == handoff.account_id:
        # The top bar names the reader's account: the handoff's, loaded with it.
        user.account = handoff.account
    is_escalator = handoff.escalated_by_id == user.pk
    lane = queries.lane_tasks(handoff)
    tried = [task for task in lane if is_tried(task.status)]
    takeover_context = takeover.takeover_context(handoff, user)
    assessment = takeover_context["assessment"]
    return {
        "handoff": handoff,
        "session": handoff.session,
        # Read only by the full screen (a template calls it): not by the preview or a box.
        "stream_url": lambda: resuming_url(
            "escalations:handoff_events", [handoff_channel(handoff.pk)], handoff.pk
        ),
        "lane": lane,
        "tried": tried,
        # Lazy like the assessment it reads: the queue's preview never orders it.
        "tried_telling_first": SimpleLazyObject(lambda: _telling_first(tried, assessment.fact)),
        "last_messages": queries.last_messages(handoff),
        "history": queries.history(handoff),
        # A released handoff's successor in the queue (read only where the page says so).
        "successor": lambda: (
            Handoff.objects.filter(reopened_from=handoff)
            .select_related("claimed_by")
            .defer("escalation_package", "assessment")
            .first()
        ),
        "is_escalator": is_escalator,
        "can_claim": user.is_senior and not is_escalator and handoff.is_open,
        "can_close": handoff.is_live and actions.can_close(handoff, user),
        "resolve_form": resolve_form or ResolveForm(),
        # Who else has this screen open ("Sky is viewing"): seniors only.
        "viewers": _others_viewing(handoff, user),
        # The assessment card and the two ways to take over (escalations/takeover.py).
        **takeover_context,
    }


def _telling_first(tried: list, fact: dict | None) -> list:
    """What was tried, the steps that tell the most first: failed ones, then the one whose
    outcome is the assessment's strongest fact, then those with an outcome, then the rest
    (lane order within each)."""
    telling = fact["step"] if fact and fact.get("kind") == "outcome" else None

    def rank(task) -> int:
        if task.status == "failed":
            return 0
        if telling and " ".join(task.title.split())[:80] == telling:
            return 1
        return 2 if task.outcome.strip() else 3

    return sorted(tried, key=rank)


# --- presence: who else has a handoff's screen open (escalations/presence.py) --------------


def _others_viewing(handoff: Handoff, user) -> list[presence_store.Viewer]:
    if not user.is_senior:
        return []
    found = presence_store.viewers(
        account_id=user.account_id, handoff_ids=[handoff.pk], exclude=user
    )
    return found.get(str(handoff.pk), [])


def _presence_handoff(request: HttpRequest, handoff_id) -> Handoff:
    """The handoff, if in the senior's account (one indexed lookup: this runs every 10 s)."""
    handoff = (
        queries.handoffs_visible_to(request.user).only("pk", "account_id").filter(pk=handoff_id)
    ).first()
    if handoff is None:
        raise Http404("No such handoff")
    return handoff


def _presence_tab(request: HttpRequest) -> str:
    tab = request_data(request).get("tab") or ""
    if not presence_store.TAB.match(tab):
        raise BadRequestBody({"tab": ["A page view's id (8 to 32 hex digits) is required."]})
    return tab


@require_http_methods(["GET", "POST"])
@senior_required
@not_activity
def presence(request: HttpRequest, handoff_id) -> HttpResponse:
    """Who else has this handoff's screen open: GET, refetched on ``handoff-presence``; a
    POST is this tab's heartbeat (every 10 s), answered the same."""
    handoff = _presence_handoff(request, handoff_id)
    if request.method == "POST":
        return _beat(request, handoff)
    return _presence_line(request, handoff)


def _presence_line(request: HttpRequest, handoff: Handoff) -> HttpResponse:
    context = {"handoff": handoff, "viewers": _others_viewing(handoff, request.user)}
    return render(request, "escalations/_presence.html", context)


# Only what writes is limited: a busy queue refetches lines often, and a GET is one read.
@limit_per_user("presence")
def _beat(request: HttpRequest, handoff: Handoff) -> HttpResponse:
    presence_store.record_viewing(
        handoff_id=handoff.pk, user=request.user, tab=_presence_tab(request)
    )
    return _presence_line(request, handoff)


@require_POST
@senior_required
@limit_per_user("presence")
@not_activity
def presence_leave(request: HttpRequest, handoff_id) -> HttpResponse:
    """This tab closed or went elsewhere (the page's beacon on ``pagehide``)."""
    handoff = _presence_handoff(request, handoff_id)
    presence_store.record_leaving(
        handoff_id=handoff.pk, user=request.user, tab=_presence_tab(request)
    )
    return HttpResponse(status=204)


# --- claim, release, resolve ---------------------------------------------------------------


@require_POST
@senior_required
def claim(request: HttpRequest, handoff_id) -> HttpResponse:
    """Claim a handoff: the winner lands on the handoff screen, a loser learns who won."""
    try:
        handoff = actions.claim_handoff(handoff_id=handoff_id, user=request.user)
    except HandoffError as refusal:
        return _claim_refused(request, refusal)
    except Handoff.DoesNotExist:
        raise Http404("No such handoff.") from None
    messages.success(request, f"It's yours. {handoff.escalated_by.name} has been told.")
    return see_other(request, reverse("escalations:handoff", args=[handoff.pk]))


def _claim_refused(request: HttpRequest, refusal: HandoffError) -> HttpResponse:
    if isinstance(refusal, HandoffForbidden):
        if not request.htmx:
            raise PermissionDenied(str(refusal))
        messages.error(request, str(refusal))
    else:
        messages.warning(request, str(refusal))
    handoff = refusal.handoff
    if not request.htmx:
        return see_other(request, reverse("escalations:handoff", args=[handoff.pk]))
    # htmx 2 swaps only 2xx answers: the updated fragment comes with a 200 and a toast.
    if request.htmx.target == "claim-box":
        handoff = queries.get_handoff_for_user(request.user, handoff.pk)
        return _claim_box(request, _handoff_context(request, handoff))
    card_handoff = queries.card_for_user(request.user, handoff.pk)
    if card_handoff is None:
        return HttpResponse("")
    presence_store.attach_viewers([card_handoff], request.user)
    _attach_card_text([card_handoff])
    return render(request, "escalations/_card.html", {"handoff": card_handoff})


@require_POST
@senior_required
def release(request: HttpRequest, handoff_id) -> HttpResponse:
    """Give a claimed handoff back to the queue (the claimer or an admin)."""
    try:
        actions.release_handoff(handoff_id=handoff_id, user=request.user)
    except HandoffError as refusal:
        return _change_refused(request, refusal)
    except Handoff.DoesNotExist:
        raise Http404("No such handoff.") from None
    messages.success(request, "Released: it is back in the queue for someone else.")
    return see_other(request, reverse("escalations:queue"))


@require_POST
@senior_required
def resolve(request: HttpRequest, handoff_id) -> HttpResponse:
    """Close a handoff as resolved, with an optional note (the claimer or an admin)."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    try:
        # Before the form: someone who may not close it learns nothing from field errors.
        actions.check_can_close(handoff, request.user)
    except HandoffError as refusal:
        return _change_refused(request, refusal)
    form = ResolveForm(request_data(request))
    if not form.is_valid():
        return _resolve_form_invalid(request, handoff, form)
    try:
        handoff = actions.resolve_handoff(
            handoff_id=handoff.pk, user=request.user, note=form.cleaned_data["note"]
        )
    except HandoffError as refusal:
        return _change_refused(request, refusal)
    messages.success(request, "Resolved. The session is closed.")
    return see_other(request, reverse("escalations:handoff", args=[handoff.pk]))


def _resolve_form_invalid(
    request: HttpRequest, handoff: Handoff, form: ResolveForm
) -> HttpResponse:
    """The form's own errors, next to the note as it was typed: nothing is lost."""
    context = _handoff_context(request, handoff, resolve_form=form)
    if request.htmx:
        # htmx 2 does not swap 4xx answers: the re-rendered claim box comes with a 200.
        return render(request, "escalations/handoff.html#claim-box", context)
    return render(request, "escalations/handoff.html", context, status=400)


def _change_refused(request: HttpRequest, refusal: HandoffError) -> HttpResponse:
    if isinstance(refusal, HandoffForbidden):
        raise PermissionDenied(str(refusal))
    messages.warning(request, str(refusal))
    return see_other(request, reverse("escalations:handoff", args=[refusal.handoff.pk]))


# --- re-alert settings (account admins) -------------------------------------------------------


@require_http_methods(["GET", "POST"])
@admin_required
def realert_settings(request: HttpRequest) -> HttpResponse:
    """How long an unclaimed handoff may wait before the seniors are told again (and twice
    that before the admins are), per urgency: the account's admins set it."""
    if request.method == "POST":
        form = RealertPolicyForm(request.POST)
        if form.is_valid():
            actions.set_realert_policy(
                user=request.user,
                high=form.cleaned_data["high"],
                normal=form.cleaned_data["normal"],
                low=form.cleaned_data["low"],
            )
            messages.success(request, "Saved. Re-alerts follow the new times from now on.")
            return see_other(request, reverse("escalations:realert_settings"))
        status = 400
    else:
        form = RealertPolicyForm(initial=actions.realert_minutes(request.user.account_id))
        status = 200
    return render(request, "escalations/realert_settings.html", {"form": form}, status=status)
