"""Input of the analytics pages: the window (from/to) and a baseline timing."""

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

from django import forms

from analytics.metrics import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS, Window
from analytics.models import BASELINE_MAX_MINUTES
from flowpilot.forms import reject_control_characters
from resolutionflow.models import User

BASELINE_MIN_MINUTES = Decimal("0.1")
BASELINE_MAX_AGE_DAYS = 730
# Days a window may name: nothing was escalated before 2000, and a year ahead is the most a
# planning window needs. Keeping to these keeps every day ± a window inside date's range.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAYS_AHEAD = 365


class InvalidWindow(ValueError):
    """A window the query string asked for and we refuse, with a reason per parameter."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(message for messages in errors.values() for message in messages))
        self.errors = errors


def _parse_day(params: Mapping[str, str], name: str, errors: dict, *, today: date) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        errors[name] = [f"“{raw[:40]}” is not a date: use YYYY-MM-DD."]
        return None
    latest = today + timedelta(days=LATEST_DAYS_AHEAD)
    if not EARLIEST_DAY <= day <= latest:
        errors[name] = [f"“{name}” ({day}) must be between {EARLIEST_DAY} and {latest}."]
        return None
    return day


def parse_window(params: Mapping[str, str], *, today: date) -> Window:
    """``from`` and ``to`` (YYYY-MM-DD, both days included) or the last 30 days.

    Only ``from``: up to today. Only ``to``: the 30 days ending there. Raises InvalidWindow
    for a date that does not parse, a day before 2000 or more than a year after ``today``,
    ``from`` after ``to``, or more than two years.
    """
    errors: dict[str, list[str]] = {}
    start = _parse_day(params, "from", errors, today=today)
    end = _parse_day(params, "to", errors, today=today)
    if errors:
        raise InvalidWindow(errors)
    if start is None and end is None:
        return Window.last_days(DEFAULT_WINDOW_DAYS, today=today)
    if end is None:
        end = max(today, start)
    if start is None:
        start = Window.last_days(DEFAULT_WINDOW_DAYS, today=end).start
    if start > end:
        raise InvalidWindow({"from": [f"“from” ({start}) is after “to” ({end})."]})
    window = Window(start=start, end=end)
    if window.days > MAX_WINDOW_DAYS:
        raise InvalidWindow(
            {
                "window": [
                    f"The window spans {window.days} days; the most is two years "
                    f"({MAX_WINDOW_DAYS} days)."
                ]
            }
        )
    return window


class MinutesField(forms.DecimalField):
    """Minutes as people type them: "4.5" and "4,5" are both four and a half.

    A text box, not a number box: a browser's number box may read "1,5" as 15 in an
    English locale, and the server would never know.
    """

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip()
            if value.count(",") == 1 and "." not in value:
                value = value.replace(",", ".")
            elif "," in value:
                raise forms.ValidationError(
                    "Type the minutes as one number, like 4.5 or 4,5.", code="invalid"
                )
        return super().to_python(value)


class BaselineForm(forms.Form):
    """One stopwatch timing of a manual "tell me what you tried" handoff."""

    # No max_digits: the range check below says "more than 240" instead of counting digits.
    minutes = MinutesField(
        decimal_places=2,
        help_text="From picking up the manual handoff to the first real action, in minutes.",
    )
    # ISO only: the date picker sends 2026-02-01, and "01/02/2026" could be either month.
    measured_on = forms.DateField(
        label="Date",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={
            "invalid": "Enter the date as YYYY-MM-DD (for example 2026-02-01), or pick it "
            "from the calendar: a date like 01/02/2026 could be January or February."
        },
    )
    timed_by = forms.ModelChoiceField(
        queryset=User.objects.none(), label="Who timed it", empty_label=None
    )
    note = forms.CharField(
        max_length=300,
        required=False,
        help_text="What the handoff was about, so the number can be checked later.",
        validators=[reject_control_characters],
    )

    def __init__(self, *args, account_id: int, today: date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        # Only people of the admin's own account can have held the stopwatch.
        self.fields["timed_by"].queryset = User.objects.filter(
            account_id=account_id, is_active=True
        ).order_by("display_name", "username")
        self.fields["timed_by"].label_from_instance = lambda user: user.name
        # Rendering walks the choices twice (the options, the required check): list them once.
        # (iter() first: list() would ask the iterator for its length, a COUNT query.)
        self.fields["timed_by"].widget.choices = list(iter(self.fields["timed_by"].choices))

    def clean_minutes(self) -> Decimal:
        minutes = self.cleaned_data["minutes"]
        if minutes <= 0:
            raise forms.ValidationError("Minutes must be more than zero.")
        if minutes < BASELINE_MIN_MINUTES:
            raise forms.ValidationError(f"Enter at least {BASELINE_MIN_MINUTES} minutes.")
        if minutes > BASELINE_MAX_MINUTES:
            raise forms.ValidationError(
                f"{minutes} minutes is more than {BASELINE_MAX_MINUTES} (four hours): that is "
                "not one handoff. Check the stopwatch reading."
            )
        return minutes

    def clean_measured_on(self) -> date:
        measured_on = self.cleaned_data["measured_on"]
        if measured_on > self.today:
            raise forms.ValidationError("The date cannot be in the future.")
        if measured_on < self.today - timedelta(days=BASELINE_MAX_AGE_DAYS):
            raise forms.ValidationError(
                "That is more than two years ago: time handoffs of the team as it works now."
            )
        return measured_on
