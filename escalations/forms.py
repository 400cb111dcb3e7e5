"""Forms of the handoff manager's views: what a person may type, checked before an action.

Text fields are flowpilot's: the same length messages and the same refusal of control
characters (tab and line breaks are text) as everything typed in the chat.
"""

from django import forms

from escalations.actions import REASON_MAX_LENGTH, RESOLUTION_NOTE_MAX_LENGTH
from escalations.models import REALERT_MAX_MINUTES, Urgency
from escalations.queries import InvalidCursor, QueueCursor, QueueFilters
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


class QueueFilterForm(forms.Form):
    """The queue's filters, search and "Show more" position, from the query string.

    A bad value gets a message beside the filters and the rest still applies; the typed
    text stays in the fields (the form is bound).
    """

    urgency = forms.ChoiceField(
        choices=[("", "Any urgency"), *Urgency.choices],
        required=False,
        error_messages={"invalid_choice": "Choose low, normal or high."},
    )
    customer = forms.CharField(
        label="Customer or site",
        max_length=200,
        required=False,
        error_messages={"max_length": "Customer or site: at most 200 characters."},
    )
    # Any number passes: the queue is of the user's account, so a stranger's id finds nothing.
    escalated_by = forms.IntegerField(
        label="Escalated by",
        required=False,
        min_value=1,
        widget=forms.Select,
        error_messages={
            "invalid": "Choose someone from the list.",
            "min_value": "Choose someone from the list.",
        },
    )
    q = forms.CharField(
        label="Search problem and reason",
        max_length=200,
        required=False,
        error_messages={"max_length": "Search: at most 200 characters."},
    )
    after = forms.CharField(max_length=80, required=False)
    through = forms.CharField(max_length=80, required=False)
    size = forms.IntegerField(min_value=1, required=False)

    def __init__(self, data=None, *, escalators=(), **kwargs):
        super().__init__(data, **kwargs)
        self.fields["escalated_by"].widget.choices = [("", "Anyone")] + [
            (person.pk, person.name) for person in escalators
        ]

    def _clean_cursor(self, name: str) -> QueueCursor | None:
        text = self.cleaned_data.get(name)
        if not text:
            return None
        try:
            return QueueCursor.decode(text)
        except InvalidCursor:
            raise forms.ValidationError(
                "That place in the queue is not valid any more: here is its start."
            ) from None

    def clean_after(self):
        return self._clean_cursor("after")

    def clean_through(self):
        return self._clean_cursor("through")

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data.get("q", "").split())

    def clean_customer(self) -> str:
        return self.cleaned_data.get("customer", "").strip()

    def filters(self) -> QueueFilters:
        """The filters that are valid (a bad one is left out, with its message shown)."""
        data = getattr(self, "cleaned_data", {})
        return QueueFilters(
            urgency=data.get("urgency") or "",
            customer=data.get("customer") or "",
            escalated_by=data.get("escalated_by"),
            search=data.get("q") or "",
        )


def _minutes_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        min_value=1,
        max_value=REALERT_MAX_MINUTES,
        error_messages={
            "required": f"{label}: give a number of minutes.",
            "invalid": f"{label}: a whole number of minutes.",
            "min_value": f"{label}: at least 1 minute.",
            "max_value": f"{label}: at most {REALERT_MAX_MINUTES:,} minutes (a week).",
        },
        widget=forms.NumberInput(attrs={"min": 1, "max": REALERT_MAX_MINUTES, "step": 1}),
    )


class RealertPolicyForm(forms.Form):
    """An account's re-alert thresholds: minutes an unclaimed handoff may wait, per urgency."""

    high = _minutes_field("High urgency")
    normal = _minutes_field("Normal urgency")
    low = _minutes_field("Low urgency")
