"""Copy copies exactly the command shown: read back from Chromium's clipboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from flowpilot import actions
from flowpilot.assistants import ProposedStep, Reply

pytestmark = pytest.mark.browser

COMMANDS = {
    "Indented script": '    $p = Get-Process "outlook"\n\tif ($p) { $p | Stop-Process }',
    "Quotes and angles": "echo '<b>' \"&amp;\" > out.txt && type out.txt",
    "Long pipe": "Get-ChildItem C:\\Users -Recurse | Where-Object { $_.Length -gt 1GB }",
}


class Proposing:
    name = "proposing"

    def reply(self, conversation):
        # What a model could send: commands with characters that display but do not paste.
        hidden = {
            "Hidden override": "del \u202e*.gpj.exe\u202c /q",
            "Zero width": "ipconfig\u200b /flush\u200ddns",
        }
        steps = tuple(
            ProposedStep(title=title, command=command, shell="cmd")  # noqa: S604 - a shell name
            for title, command in hidden.items()
        )
        return Reply(text="Steps:", steps=steps)


@pytest.fixture
def session(tess):
    session = actions.start_session(user=tess, problem="Outlook hangs on start")
    for title, command in COMMANDS.items():
        actions.add_task(  # noqa: S604 - a shell name, not a subprocess
            session=session, user=tess, title=title, command=command, shell="bash"
        )
    actions.answer(session=session, assistant=Proposing())
    return session


def test_copy_puts_exactly_the_shown_command_on_the_clipboard(page_for, tess, session, asgi_server):
    page = page_for(tess)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server.url)
    page.goto(f"/flowpilot/sessions/{session.pk}/")
    expected = COMMANDS | {
        "Hidden override": "del *.gpj.exe /q",
        "Zero width": "ipconfig /flushdns",
    }

    for title, command in expected.items():
        task = page.locator(".task", has=page.locator(".task-title", has_text=title))
        code = task.locator("pre code")
        shown = code.evaluate("element => element.textContent")
        assert shown == command
        task.locator(".copy-btn").click()
        expect(task.locator(".copy-btn")).to_have_class(re.compile(r"\bcopied\b"))
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == shown, title

    # The removed characters are said, where the step is read.
    hidden = page.locator(".task", has=page.locator(".task-title", has_text="Hidden override"))
    expect(hidden).to_contain_text("removed 2 invisible characters")
    assert page.rf_errors == []
