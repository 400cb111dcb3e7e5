"""The step vocabulary: what a step of the task lane is, wherever one is written or read.

One home for what every app and engine says about steps: the shells a command may be for,
which steps count as "tried", when two titles name the same step, the length limits of a
step's fields and how text is clipped and cleaned to fit them. The forms, the actions, the
assistants, the assessment and the handoff screen import these; none defines its own.
"""

from __future__ import annotations

import re

from flowpilot.text import INVISIBLE_FORMATTING, strip_control_characters

# The shells a command may be written for; "" is a step without a command.
SHELLS = ("powershell", "cmd", "bash")
SHELL_CHOICES = [("", "None"), ("powershell", "PowerShell"), ("cmd", "cmd"), ("bash", "bash")]

# A step is "tried" once it leaves "to do": doing, done, failed and skipped all tell a
# senior something was attempted (the handoff's "What was tried", the engines' context).
# It is "finished" once done, failed or skipped: an engine never proposes a finished step
# again, while one in progress ("doing") may be named again as the next thing to do.
UNTRIED = "todo"
FINISHED = frozenset({"done", "failed", "skipped"})

# Length limits of a step's fields (the Task columns) and of the notes around it.
TITLE_MAX = 200
DETAIL_MAX = 2000
COMMAND_MAX = 1000
OUTCOME_MAX = 2000

_TITLE_NOISE = re.compile(r"[\W_]+")


def is_shell(value: str) -> bool:
    return value in SHELLS


def is_tried(status: str) -> bool:
    """Whether a step with ``status`` was tried (anything but "to do")."""
    return status != UNTRIED


def is_finished(status: str) -> bool:
    """Whether a step with ``status`` is over (done, failed or skipped): not proposed again."""
    return status in FINISHED


def title_key(title: str) -> str:
    """How two step titles are compared: case, spacing and punctuation do not count."""
    return " ".join(_TITLE_NOISE.sub(" ", title.casefold()).split())


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marking the cut with an ellipsis."""
    text = text or ""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def clean_text(value: object, limit: int) -> str:
    """Engine output made storable: a stripped string without control characters, clipped
    to ``limit``; "" for anything that is not a string."""
    if not isinstance(value, str):
        return ""
    return clip(strip_control_characters(value).strip(), limit)


INVISIBLE_REMOVED_NOTE = (
    "FlowPilot removed {count} invisible character{plural} (text-direction or zero-width) "
    "from this command, so what you copy is what you see. Check it before you run it."
)


def clean_command(value: object, limit: int = COMMAND_MAX) -> tuple[str, int]:
    """An engine's command made safe to show and copy, and how many invisible characters
    (bidi controls, zero-width characters) were taken out of it.

    Such characters make a command display differently from what a copy pastes; they are
    removed, never kept. Leading indentation is kept (it can matter in a script); a command
    of only whitespace is empty.
    """
    if not isinstance(value, str):
        return "", 0
    visible, removed = INVISIBLE_FORMATTING.subn("", value)
    visible = strip_control_characters(visible).rstrip()
    if not visible.strip():
        return "", removed
    return clip(visible.lstrip("\r\n"), limit), removed


def invisible_removed_note(count: int) -> str:
    """The note shown with a step whose command lost ``count`` invisible characters."""
    return INVISIBLE_REMOVED_NOTE.format(count=count, plural="" if count == 1 else "s")


def with_visible_command(step: dict) -> dict:
    """An engine's proposed step (``title``, ``detail``, ``command``, ``shell``) as it may be
    shown and added: its command cleaned by ``clean_command``, and when invisible characters
    were removed, the note saying so at the end of its detail."""
    command, removed = clean_command(step.get("command", ""))
    if not removed:
        return step | {"command": command}
    note = invisible_removed_note(removed)
    detail = step.get("detail", "")
    return step | {
        "command": command,
        "detail": clip(f"{detail}\n\n{note}" if detail else note, DETAIL_MAX),
    }
