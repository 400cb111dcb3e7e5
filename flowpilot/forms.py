"""Input checks for FlowPilot: lengths, and no control characters anywhere."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator

from flowpilot.models import MESSAGE_MAX_LENGTH, PROBLEM_MAX_LENGTH, TaskStatus
from flowpilot.steps import COMMAND_MAX, DETAIL_MAX, OUTCOME_MAX, SHELL_CHOICES, TITLE_MAX
from flowpilot.text import has_control_characters, invisible_formatting

CUSTOMER_MAX = 200

CONTROL_CHARACTERS_MESSAGE = (
    "Remove the control characters (such as NUL bytes) from this text; only line breaks "
    "and tabs are allowed."
)


def reject_control_characters(value: str) -> None:
    if has_control_characters(value):
        raise ValidationError(CONTROL_CHARACTERS_MESSAGE, code="control_characters")


def reject_invisible_formatting(value: str) -> None:
    """A command must paste as it reads: no bidi controls, no zero-width characters."""
    found = invisible_formatting(value)
    if found:
        raise ValidationError(
            f"This command holds invisible characters ({', '.join(found)}) that make it read "
            "differently from what it runs. Remove them, or type the command again.",
            code="invisible_characters",
        )


class TextField(forms.CharField):
    """A CharField with clear messages: the length with its limit, any control character."""

    def __init__(self, *, max_length: int, label: str, **kwargs) -> None:
        messages = {"required": f"{label} is required."}
        messages.update(kwargs.pop("error_messages", {}))
        super().__init__(max_length=max_length, label=label, error_messages=messages, **kwargs)
        # Django's own checks say "Ensure this value has at most 8000 characters (it has
        # 8001)" and "Null characters are not allowed"; ours name the field and cover every
        # control character.
        self.validators = [
            validator
            for validator in self.validators
            if not isinstance(validator, ProhibitNullCharactersValidator | MaxLengthValidator)
        ] + [self.check_length, reject_control_characters]

    def check_length(self, value: str) -> None:
        if len(value) > self.max_length:
            raise ValidationError(
                f"{self.label} can be at most {self.max_length:,} characters; this is "
                f"{len(value):,}. Shorten it and try again.",
                code="max_length",
            )

    def widget_attrs(self, widget) -> dict:
        # No maxlength attribute: the browser would silently cut a paste; we say so instead.
        attrs = super().widget_attrs(widget)
        attrs.pop("maxlength", None)
        return attrs


class CommandField(TextField):
    """A command as pasted: leading indentation kept (trailing blanks and blank lines go),
    bidi and zero-width characters refused."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strip=False, **kwargs)
        self.validators.append(reject_invisible_formatting)

    def to_python(self, value) -> str:
        text = super().to_python(value).rstrip()
        return text.lstrip("\r\n") if text.strip() else ""


class SessionForm(forms.Form):
    problem = TextField(max_length=PROBLEM_MAX_LENGTH, label="The problem")
    customer = TextField(max_length=CUSTOMER_MAX, label="Customer / site", required=False)
    device = TextField(max_length=CUSTOMER_MAX, label="Device / asset", required=False)


class MessageForm(forms.Form):
    body = TextField(
        max_length=MESSAGE_MAX_LENGTH,
        label="A message",
        error_messages={"required": "Type a message first."},
    )


class TaskForm(forms.Form):
    title = TextField(max_length=TITLE_MAX, label="The step's title")
    detail = TextField(max_length=DETAIL_MAX, label="The detail", required=False)
    command = CommandField(max_length=COMMAND_MAX, label="The command", required=False)
    shell = forms.ChoiceField(choices=SHELL_CHOICES, required=False)


class TaskUpdateForm(forms.Form):
    status = forms.ChoiceField(choices=TaskStatus.choices)
    outcome = TextField(max_length=OUTCOME_MAX, label="The outcome note", required=False)

    def cleaned_outcome(self) -> str | None:
        """The outcome to store, or None when the request did not send one (keep it)."""
        return self.cleaned_data["outcome"] if "outcome" in self.data else None


class ResolveSessionForm(forms.Form):
    note = TextField(max_length=OUTCOME_MAX, label="What fixed it", required=False)


class MoveTaskForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])
