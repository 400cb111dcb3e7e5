"""Forms of the handoff manager's views: what a person may type, checked before an action.

Text fields are flowpilot's: the same length messages and the same refusal of control
characters (tab and line breaks are text) as everything typed in the chat.
"""

from django import forms

from escalations.actions import REASON_MAX_LENGTH, RESOLUTION_NOTE_MAX_LENGTH
from escalations.models import Urgency
from flowpilot.forms import TextField


class EscalateForm(forms.Form):
    reason = TextField(
        max_length=REASON_MAX_LENGTH,
        label="The reason",
        error_messages={"required": "Say why you are stuck: the senior reads this first."},
    )
    urgency = forms.ChoiceField(
        choices=Urgency.choices,
        required=False,
        error_messages={"invalid_choice": "Choose low, normal or high."},
    )

    def clean_urgency(self) -> str:
        return self.cleaned_data.get("urgency") or Urgency.NORMAL


class ResolveForm(forms.Form):
    note = TextField(
        max_length=RESOLUTION_NOTE_MAX_LENGTH,
        label="The resolution note",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What fixed it?"}),
    )
