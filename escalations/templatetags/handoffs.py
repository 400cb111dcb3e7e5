"""Template words for escalation codes, so that pages never show an internal code."""

from django import template

register = template.Library()

# What the claimer's first action was (escalations.actions.record_first_action's kinds).
FIRST_ACTION_LABELS = {
    "message": "a message in the chat",
    "task": "a change in the Tasks lane",
    "ai_analysis": "AI analysis",
}


@register.filter
def first_action(kind: str) -> str:
    """The first action's kind in words; "" for an unknown one (never the code itself)."""
    return FIRST_ACTION_LABELS.get(kind or "", "")
