"""The step vocabulary agrees with the task model it describes."""

import pytest

from flowpilot.models import Task, TaskStatus
from flowpilot.steps import (
    COMMAND_MAX,
    DETAIL_MAX,
    FINISHED,
    OUTCOME_MAX,
    SHELL_CHOICES,
    SHELLS,
    TITLE_MAX,
    UNTRIED,
    clip,
    is_finished,
    is_tried,
    title_key,
)


def test_the_limits_are_the_task_columns():
    fields = {
        field.name: field.max_length
        for field in Task._meta.get_fields()
        if hasattr(field, "max_length")
    }
    assert (fields["title"], fields["detail"], fields["command"], fields["outcome"]) == (
        TITLE_MAX,
        DETAIL_MAX,
        COMMAND_MAX,
        OUTCOME_MAX,
    )


@pytest.mark.parametrize("status", TaskStatus.values)
def test_tried_and_finished_cover_the_statuses(status):
    assert is_tried(status) == (status != TaskStatus.TODO)
    assert is_finished(status) == (status in {"done", "failed", "skipped"})
    assert UNTRIED in TaskStatus.values and set(TaskStatus.values) >= FINISHED


def test_a_step_in_progress_is_tried_but_not_finished():
    assert is_tried(TaskStatus.DOING) and not is_finished(TaskStatus.DOING)


def test_the_shell_choices_are_the_shells_and_none():
    assert [value for value, _ in SHELL_CHOICES] == ["", *SHELLS]


def test_title_keys_ignore_case_spacing_and_punctuation():
    assert title_key("  Restart the PRINT   spooler. ") == title_key("restart the print spooler")


def test_clip_marks_the_cut():
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"
