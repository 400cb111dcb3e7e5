"""Taking a handoff over: the two ways to claim, the assessment card, Refresh, and the chips.

On the handoff screen an unclaimed handoff offers two buttons, both of which claim it:

- "I'll take it from here" → the chat page (``?takeover=1``) with the composer focused;
- "Get AI analysis" → a briefing is posted to FlowPilot, which answers in the chat and puts
  its steps in the lane → the chat page (``?analysis=1``) with the handoff overlay open.

On the chat page the claimer gets a panel loaded from here (flowpilot never imports
escalations, so the chat page fetches it by URL): the post-claim overlay (handoff context,
offering only Close) and the suggested-step chips below the composer, each of which can put
its step in the Tasks lane.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from escalations import actions, queries
from escalations import assessment as pipeline
from escalations.actions import HandoffError, HandoffForbidden
from escalations.assessment import AssessmentDisplay
from escalations.models import Handoff, HandoffState
from flowpilot.actions import SessionReadOnly
from flowpilot.assistants import BRIEFING_PREFIX
from flowpilot.steps import title_key, with_visible_command
from resolutionflow import events
from resolutionflow.http import request_data, see_other
from resolutionflow.permissions import any_member_required, senior_required

logger = logging.getLogger(__name__)

MODES = {"takeover": "takeover", "analysis": "analysis"}


def chat_url(handoff: Handoff, mode: str = "") -> str:
    url = reverse("flowpilot:session", args=[handoff.session_id])
    return f"{url}?{mode}=1" if mode else url


def takeover_context(handoff: Handoff, user) -> dict:
    """What the take-over box and the assessment card need, for the handoff screen."""
    is_escalator = handoff.escalated_by_id == user.pk
    is_senior = user.is_senior and user.account_id == handoff.account_id
    return {
        # Lazy: pages that do not show the card (the queue's preview) never compute it.
        "assessment": SimpleLazyObject(lambda: pipeline.assessment_for_display(handoff)),
        "can_refresh_assessment": is_senior and not is_escalator and handoff.is_live,
    }


# -- the handoff screen ------------------------------------------------------------------


@require_GET
@any_member_required
def assessment(request: HttpRequest, handoff_id) -> HttpResponse:
    """The assessment card, refetched on the handoff's ``assessment`` event, with "Where it
    stands" out of band (one request updates both)."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    context = {"handoff": handoff, **takeover_context(handoff, request.user)}
    return render(request, "escalations/handoff_assessment.html#card-refetch", context)


@require_GET
@any_member_required
def stands(request: HttpRequest, handoff_id) -> HttpResponse:
    """ "Where it stands" alone: the claimer's chat panel refetches it on ``assessment``."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    context = {
        "handoff": handoff,
        "assessment": pipeline.assessment_for_display(handoff),
        "stands_live": True,
    }
    return render(request, "escalations/handoff_stands.html#stands", context)


@require_POST
@senior_required
def refresh_assessment(request: HttpRequest, handoff_id) -> HttpResponse:
    """Regenerate the assessment; refused with a clear message when asked too often.

    One message per outcome: from htmx the card says it (the refusal inline beside the
    button, "Refreshing…" while the new one is on its way), never a toast as well; a plain
    form post gets it as a toast on the screen it is sent back to.
    """
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    if handoff.escalated_by_id == request.user.pk:
        raise PermissionDenied("You escalated this handoff; its assessment is read-only for you.")
    refusal = ""
    if not handoff.is_live:
        refusal = "This handoff is closed; its assessment is final."
    else:
        refresh = actions.request_assessment_refresh(handoff=handoff)
        if not refresh.accepted:
            refusal = _retry_message(refresh.retry_after)
        elif not request.htmx:
            messages.info(request, "Refreshing the assessment…")
    if not request.htmx:
        if refusal:
            messages.warning(request, refusal)
        return see_other(request, reverse("escalations:handoff", args=[handoff.pk]))
    # Re-read: with tasks running inline the new assessment is already stored.
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    context = {
        "handoff": handoff,
        **takeover_context(handoff, request.user),
        "retry_message": refusal,
    }
    return render(request, "escalations/handoff_assessment.html#card-refetch", context)


def _retry_message(seconds: int) -> str:
    unit = "second" if seconds == 1 else "seconds"
    return f"The assessment was just updated. You can refresh it again in {seconds} {unit}."


@require_POST
@senior_required
def take_over(request: HttpRequest, handoff_id) -> HttpResponse:
    """Claim the handoff, then open its chat: ready to type, or with FlowPilot briefed."""
    mode = MODES.get(request_data(request).get("mode", ""))
    if mode is None:
        return HttpResponseBadRequest("Choose how to take over: takeover or analysis.")
    # The access getter first: another account's handoff is a 404, like an unknown one.
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    try:
        handoff = actions.claim_handoff(handoff_id=handoff.pk, user=request.user)
    except HandoffForbidden as refusal:
        raise PermissionDenied(str(refusal)) from None
    except HandoffError as refusal:
        # Someone was faster (or it closed): the screen says who has it now.
        messages.warning(request, str(refusal))
        return see_other(request, reverse("escalations:handoff", args=[handoff.pk]))
    if mode == "analysis":
        # The briefing may wait seconds for an AI engine: the other seniors' queues and
        # the escalator's bell learn of the claim now, not once the chat opens.
        events.publish_collected_now()
        try:
            actions.post_analysis_briefing(handoff=handoff, user=request.user)
        except Exception:
            # The claim stands (it is committed): say so and open the chat ready to type.
            logger.exception("Briefing FlowPilot on handoff %s failed", handoff.pk)
            messages.error(
                request, "It's yours, but FlowPilot could not be briefed. Write to it in the chat."
            )
            return see_other(request, chat_url(handoff, "takeover"))
        messages.success(
            request, "It's yours. FlowPilot was briefed; its steps are in the Tasks lane."
        )
    else:
        messages.success(request, f"It's yours. {handoff.escalated_by.name} has been told.")
    return see_other(request, chat_url(handoff, mode))


# -- the chat page -------------------------------------------------------------------------


def _claimed_handoff_of(session_id: int, user) -> Handoff | None:
    """The session's claimed handoff if ``user`` claimed it (one query)."""
    return (
        Handoff.objects.filter(
            session_id=session_id,
            account_id=user.account_id,
            state=HandoffState.CLAIMED,
            claimed_by=user,
        )
        .select_related("session", "escalated_by")
        .first()
    )


@require_GET
@senior_required
def session_panel(request: HttpRequest, session_id: int) -> HttpResponse:
    """The claimer's handoff panel on the chat page: overlay and suggested-step chips.

    Empty (204: htmx leaves the slot alone) for anyone but the handoff's claimer.
    """
    handoff = _claimed_handoff_of(session_id, request.user)
    if handoff is None:
        return HttpResponse(status=204)
    assessment = pipeline.assessment_for_display(handoff)
    context = {
        "handoff": handoff,
        "assessment": assessment,
        "stands_live": True,
        "waited": _waited(handoff),
        **_chips_context(handoff, assessment.next_steps),
    }
    return render(request, "escalations/takeover_panel.html", context)


def _chips_context(handoff: Handoff, steps: list[dict]) -> dict:
    with_lane = _with_lane(handoff, steps)
    return {
        "steps": with_lane,
        "all_in_lane": bool(with_lane) and all(s["in_lane"] for s in with_lane),
    }


def _with_lane(handoff: Handoff, steps: list[dict]) -> list[dict]:
    """The suggested steps, each with its task when the lane already holds it (one query).

    A step in the lane becomes "Show in Tasks panel" rather than a second copy of it.
    """
    lane = {
        title_key(task.title): task
        for task in handoff.session.tasks.only("id", "title", "status").order_by("position", "id")
    }
    return [
        with_visible_command(step) | {"in_lane": lane.get(title_key(step["title"]))}
        for step in steps
    ]


def _waited(handoff: Handoff) -> str:
    seconds = queries.waiting_seconds(handoff)
    if seconds < 60:
        return "under a minute"
    return timesince(handoff.created_at, handoff.claimed_at or timezone.now())


@require_POST
@senior_required
def open_step(request: HttpRequest, handoff_id) -> HttpResponse:
    """Open in Tasks panel: add a suggested step to the lane, or point at it if it is there."""
    handoff = queries.get_handoff_for_user(request.user, handoff_id)
    try:
        task, added = actions.open_suggested_step(
            handoff=handoff, user=request.user, title=request_data(request).get("title", "")
        )
    except actions.StepNotSuggested:
        # 409, not 400: the chat page swaps 400s (form errors) into the lane.
        messages.warning(request, "That step is no longer suggested; reload the page.")
        return HttpResponse("That step is no longer suggested.", status=409)
    except (HandoffForbidden, SessionReadOnly) as denied:
        raise PermissionDenied(str(denied)) from None
    if added:
        messages.success(request, "Added to the Tasks lane.")
    else:
        messages.info(request, "Already in the Tasks lane.")
    if not request.htmx:
        return see_other(request, chat_url(handoff) + f"#task-{task.pk}")
    from flowpilot.views import render_lane

    response = render_lane(request, handoff.session, added_task_ids={task.pk} if added else set())
    # The chips follow: the step just opened now shows where it is.
    chips_context = _chips_context(handoff, pipeline.assessment_for_display(handoff).next_steps)
    chips = render(
        request,
        "escalations/takeover_panel.html#lane-chips",
        {"handoff": handoff, "oob": True, **chips_context},
    )
    response.content += chips.content
    return trigger_client_event(
        response, "rf:task-opened", {"task": task.pk, "added": added}, after="settle"
    )


# -- "Get AI analysis": the briefing ------------------------------------------------------

BRIEFING_MAX_CHARS = 8000
BRIEFING_TRIED = 12
BRIEFING_CAUSES = 3


def briefing_text(handoff: Handoff, assessment: AssessmentDisplay) -> str:
    """The message that briefs FlowPilot on a handoff: the escalation package + assessment.

    Built from the package (the session as it was escalated) so the assistant sees what the
    senior saw; the text is the claimer's own message, clipped to the chat's limit.
    """
    package = handoff.escalation_package or {}
    session = handoff.session
    escalated_by = (package.get("escalated_by") or {}).get("name") or handoff.escalated_by.name
    lines = [
        f"{BRIEFING_PREFIX} I have taken over this escalation. Please analyse it and "
        "propose the next steps.",
        "",
        f"Problem: {_one_line(package.get('problem') or session.problem, 600)}",
    ]
    facts = [
        f"{label}: {_one_line(value, 120)}"
        for label, value in (
            ("Customer", package.get("customer", session.customer)),
            ("Device", package.get("device", session.device)),
        )
        if value
    ]
    if facts:
        lines.append(" · ".join(facts))
    lines.append(
        f"Escalated by {_one_line(escalated_by, 80)} "
        f"({handoff.get_urgency_display().lower()} urgency): {_one_line(handoff.reason, 600)}"
    )
    tried = package.get("steps_tried")
    if tried is None:
        tried = assessment.data["tried"]
    if tried:
        lines += ["", "What was tried:"]
        for step in tried[-BRIEFING_TRIED:]:
            outcome = _one_line(step.get("outcome") or "", 200)
            lines.append(
                f"- {_one_line(step.get('title') or '', 120)} ({step.get('status', '?')})"
                + (f": {outcome}" if outcome else "")
            )
    else:
        lines += ["", "Nothing was tried yet."]
    lines += [
        "",
        f"Assessment ({assessment.engine_label}, {assessment.confidence} confidence): "
        f"{_one_line(assessment.summary, 1200)}",
    ]
    if assessment.causes:
        lines.append("Likely causes:")
        for rank, cause in enumerate(assessment.causes[:BRIEFING_CAUSES], start=1):
            lines.append(f"{rank}. {_one_line(cause['title'], 200)}")
    text = "\n".join(lines)
    return text if len(text) <= BRIEFING_MAX_CHARS else text[: BRIEFING_MAX_CHARS - 1] + "…"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
