"""What you copy is what you see: commands keep their indentation and carry no bidi or
zero-width characters, typed (refused, with the text kept) or proposed (removed, with a note).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from flowpilot import actions
from flowpilot.assistants.base import ProposedStep, Reply
from flowpilot.forms import TaskForm
from flowpilot.steps import clean_command, with_visible_command

pytestmark = pytest.mark.django_db

INVISIBLE = [
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # embeddings and overrides
    "\u2066", "\u2067", "\u2068", "\u2069",  # isolates
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",  # zero-width
    "\u200e", "\u200f",  # marks
]  # fmt: skip


@pytest.fixture
def session(tess):
    return actions.start_session(user=tess, problem="The printer is offline")


@pytest.mark.parametrize("character", INVISIBLE)
def test_a_typed_command_with_an_invisible_character_is_refused_by_name(character):
    form = TaskForm({"title": "Delete the temp files", "command": f"del {character}*.tmp"})
    assert not form.is_valid()
    assert f"U+{ord(character):04X}" in form.errors["command"][0]


def test_the_refused_command_comes_back_in_the_page_as_typed(client_for, tess, session):
    command = "rm -rf /tmp/cache \u202e/ fr- mr"
    response = client_for(tess).post(
        reverse("flowpilot:tasks", args=[session.pk]),
        {"title": "Clear the cache", "command": command, "shell": "bash"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "U+202E" in page and "invisible characters" in page
    assert command in page  # what was typed survives, to be fixed
    assert not session.tasks.filter(title="Clear the cache").exists()


def test_a_typed_command_keeps_its_leading_whitespace(client_for, tess, session):
    command = "    Get-Service spooler |\n        Restart-Service"
    response = client_for(tess).post(
        reverse("flowpilot:tasks", args=[session.pk]),
        {"title": "Restart the spooler", "command": command + "  \n\n", "shell": "powershell"},
    )
    assert response.status_code == 303
    assert session.tasks.get(title="Restart the spooler").command == command


def test_a_command_of_only_whitespace_is_no_command():
    form = TaskForm({"title": "Look at the cable", "command": "  \n ", "shell": "bash"})
    assert form.is_valid()
    assert form.cleaned_data["command"] == ""


class Proposing:
    """An engine that proposes one step with the given command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def reply(self, conversation) -> Reply:
        step = ProposedStep(  # noqa: S604 - a shell name, not a subprocess
            title="Flush DNS", detail="Clears stale names.", command=self.command, shell="cmd"
        )
        return Reply(text="Try this.", steps=(step,))


def test_invisible_characters_leave_a_proposed_command_with_a_visible_note(session):
    exchange = actions.answer(
        session=session, assistant=Proposing("ipconfig\u200b /flush\u202edns")
    )
    task = exchange.steps[0].task
    assert task.command == "ipconfig /flushdns"
    assert task.detail.startswith("Clears stale names.\n\n")
    assert "removed 2 invisible characters" in task.detail


def test_a_clean_proposed_command_is_stored_as_proposed_without_a_note(session):
    exchange = actions.answer(session=session, assistant=Proposing("  ipconfig /flushdns"))
    task = exchange.steps[0].task
    assert task.command == "  ipconfig /flushdns"
    assert task.detail == "Clears stale names."


def test_clean_command_counts_what_it_removes():
    assert clean_command("a\u2066b\u2069c") == ("abc", 2)
    assert clean_command("\u200b\u200b") == ("", 2)
    assert clean_command(7) == ("", 0)


def test_a_suggested_step_is_shown_with_its_command_cleaned():
    step = with_visible_command({"title": "t", "detail": "", "command": "dir\u202e", "shell": ""})
    assert step["command"] == "dir"
    assert "removed 1 invisible character " in step["detail"]
