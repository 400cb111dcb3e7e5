"""Forms of the handoff manager's views: what a person may type, checked before an action.

Text fields are flowpilot's: the same length messages and the same refusal of control
characters (tab and line breaks are text) as everything typed in the chat.
"""

from django import forms

from escalations.actions import REASON_MAX_LENGTH, RESOLUTION_NOTE_MAX_LENGTH
from escalations.models import Urgency
from flowpilot.forms import TextField

URGENCY_CHOICES = [
    (Urgency.LOW, "Low: when someone is free"),
    (Urgency.NORMAL, "Normal"),
    (Urgency.HIGH, "High: a user is blocked"),
]


class EscalateForm(forms.Form):
    """The one escalate form (the chat page's panel and the plain page show it alike)."""

    reason = TextField(
        max_length=REASON_MAX_LENGTH,
        label="Why are you escalating?",
        error_messages={"required": "Say why you are stuck: the senior reads this first."},
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "What you need from a senior, and what is blocking you",
                "data-enter-submits": "",
            }
        ),
    )
    urgency = forms.ChoiceField(
        label="Urgency",
        choices=URGENCY_CHOICES,
        required=False,
        initial=Urgency.NORMAL,
        error_messages={"invalid_choice": "Choose low, normal or high."},
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "escalate-%s")
        super().__init__(*args, **kwargs)

    def clean_urgency(self) -> str:
        return self.cleaned_data.get("urgency") or Urgency.NORMAL


class ResolveForm(forms.Form):
    note = TextField(
        max_length=RESOLUTION_NOTE_MAX_LENGTH,
        label="The resolution note",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What fixed it?"}),
    )
