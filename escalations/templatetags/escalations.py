"""Template helpers of the handoff manager: ``{% load escalations %}``."""

from django import template

from escalations.forms import EscalateForm

register = template.Library()


@register.inclusion_tag("escalations/_escalate_form.html", takes_context=True)
def escalate_form(context, session, form: EscalateForm | None = None) -> dict:
    """The one escalate form: on the chat page, in its htmx re-render and on the plain
    escalate page alike; ``form`` is the bound form with errors (a new one by default)."""
    return {
        "session": session,
        "form": form or EscalateForm(),
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag
def escalation_reason(session) -> str:
    """Why the session's live handoff was escalated, as the technician wrote it ("" if none):
    the escalated banner shows it, so what the senior reads first stays in view."""
    from escalations.models import Handoff

    reason = (
        Handoff.objects.live()
        .filter(session=session)
        .order_by("-created_at")
        .values_list("reason", flat=True)
        .first()
    )
    return reason or ""


@register.filter
def viewing(viewers) -> str:
    """Who is viewing, in words: "Sky is viewing", "Sky and Ada are viewing"…"""
    names = [viewer.name for viewer in viewers]
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is viewing"
    if len(names) <= 3:
        return f"{', '.join(names[:-1])} and {names[-1]} are viewing"
    return f"{names[0]}, {names[1]} and {len(names) - 2} others are viewing"
