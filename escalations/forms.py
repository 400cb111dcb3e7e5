"""Forms of the handoff manager's views: what a person may type, checked before an action."""

from django import forms

from escalations.actions import REASON_MAX_LENGTH, RESOLUTION_NOTE_MAX_LENGTH
from escalations.models import Urgency


class EscalateForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        strip=True,
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
    note = forms.CharField(max_length=RESOLUTION_NOTE_MAX_LENGTH, required=False, strip=True)
