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
