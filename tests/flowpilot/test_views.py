"""FlowPilot pages and fragments: access, methods, bad input, and a fixed query count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flowpilot import actions
from flowpilot.assistants import ProposedStep, Reply
from flowpilot.models import Message, Session, SessionStatus, Task
from resolutionflow.models import Role, User

pytestmark = pytest.mark.django_db

OUTLOOK = "Outlook keeps asking for a password after the Microsoft 365 migration"
HTMX = {"HX-Request": "true"}


class Scripted:
    name = "scripted"

    def __init__(self, *titles: str, text: str = "Try these.") -> None:
        self.titles = titles
        self.text = text

    def reply(self, conversation):
        return Reply(
            text=self.text,
            steps=tuple(ProposedStep(title=t, command=f"echo {t}") for t in self.titles),
        )


@pytest.fixture(autouse=True)
def offline_engine(settings):
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def session(tess):
    session = actions.start_session(user=tess, problem=OUTLOOK, customer="Acme HQ")
    actions.answer(session=session, assistant=Scripted("Sign in to OWA", "Clear credentials"))
    return session


@pytest.fixture
def tom(personas):
    return User.objects.create_user(
        username="tom", account=personas["tess"].account, role=Role.TECHNICIAN
    )


def url(name: str, *args) -> str:
    return reverse(f"flowpilot:{name}", args=args)


def set_status(session: Session, status: str, escalated_to=None) -> None:
    Session.objects.filter(pk=session.pk).update(status=status, escalated_to=escalated_to)


# ------------------------------------------------------------------------ sessions page


def test_sessions_page_lists_only_my_sessions_most_recent_first(client_for, tess, sam, tom):
    older = actions.start_session(user=tess, problem="Printer offline on floor 2")
    newer = actions.start_session(user=tess, problem="VPN drops every hour")
    actions.start_session(user=tom, problem="Tom's own problem")
    actions.start_session(user=sam, problem="Sam's own problem")

    response = client_for(tess).get(url("sessions"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("VPN drops every hour") < html.index("Printer offline on floor 2")
    assert "Tom&#x27;s own problem" not in html and "Sam&#x27;s own problem" not in html
    assert f'href="{url("session", newer.pk)}"' in html
    assert f'href="{url("session", older.pk)}"' in html


def make_sessions(owner, count: int) -> list[Session]:
    """``count`` sessions of ``owner``; the last made is the most recently active."""
    made = Session.objects.bulk_create(
        Session(account_id=owner.account_id, owner=owner, problem=f"Problem number {n}")
        for n in range(count)
    )
    for n, session in enumerate(made):
        Session.objects.filter(pk=session.pk).update(updated_at=session.updated_at + n * SECOND)
    return made


SECOND = timedelta(seconds=1)
JSON_TYPE = "application/json"


def test_the_sessions_page_shows_25_at_a_time_with_page_links(client_for, tess):
    make_sessions(tess, 60)
    client = client_for(tess)

    first = client.get(url("sessions")).content.decode()
    assert first.count('class="fp-card"') == 25
    assert "Problem number 59<" in first and "Problem number 35<" in first
    assert "Problem number 34<" not in first
    assert "60 sessions" in first
    assert '<nav class="pager"' in first
    assert 'aria-current="page">1</span>' in first
    assert 'href="?page=2" rel="next"' in first and 'rel="prev"' not in first
    assert 'href="?page=3"' in first

    last = client.get(url("sessions"), {"page": 3}).content.decode()
    assert last.count('class="fp-card"') == 10
    assert "Problem number 9<" in last and "Problem number 10<" not in last
    assert 'href="?page=2" rel="prev"' in last and 'rel="next"' not in last


@pytest.mark.parametrize("page", ["0", "abc", "99"])
def test_a_bad_page_number_shows_a_page_not_an_error(client_for, tess, page):
    make_sessions(tess, 30)
    response = client_for(tess).get(url("sessions"), {"page": page})
    assert response.status_code == 200
    assert response.content.decode().count('class="fp-card"') in (25, 5)


def test_a_single_page_has_no_page_links(client_for, tess):
    make_sessions(tess, 3)
    assert '<nav class="pager"' not in client_for(tess).get(url("sessions")).content.decode()


def test_the_sessions_page_makes_the_same_queries_for_3_or_300_sessions(client_for, tess, sam):
    def count(user, sessions: int) -> int:
        make_sessions(user, sessions)
        client = client_for(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("sessions")).status_code == 200
        return len(queries)

    assert count(tess, 3) == count(sam, 300)


def test_the_json_list_is_paginated_too(client_for, tess):
    make_sessions(tess, 30)
    response = client_for(tess).get(url("sessions"), {"page": 2}, headers={"Accept": JSON_TYPE})
    body = response.json()
    assert (body["page"], body["pages"], body["count"]) == (2, 2, 30)
    assert len(body["sessions"]) == 5


def test_escalated_sessions_say_who_has_them(client_for, session, tess, sam):
    set_status(session, SessionStatus.ESCALATED, escalated_to=sam)
    html = client_for(tess).get(url("sessions")).content.decode()
    assert "Escalated · Sam Okafor" in html

    set_status(session, SessionStatus.ESCALATED, escalated_to=None)
    html = client_for(tess).get(url("sessions")).content.decode()
    assert "Escalated · in the queue" in html


@pytest.mark.parametrize("who", ["tess", "sam", "ada", "gil"])
def test_every_member_can_use_flowpilot(client_for, personas, who):
    assert client_for(personas[who]).get(url("sessions")).status_code == 200


def test_sessions_page_needs_a_sign_in(client):
    response = client.get(url("sessions"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# ------------------------------------------------------------------------ start a session


def test_start_session_redirects_to_the_chat_with_steps_in_the_lane(client_for, tess):
    response = client_for(tess).post(
        url("start_session"), {"problem": OUTLOOK, "customer": "Acme HQ", "device": "PC-7"}
    )

    session = Session.objects.get(owner=tess)
    assert response.status_code == 303
    assert response["Location"] == url("session", session.pk)
    assert (session.customer, session.device) == ("Acme HQ", "PC-7")
    assert session.tasks.count() >= 3  # the offline engine's first steps
    assert session.messages.filter(role="assistant").count() == 1


def test_start_session_wrong_method_is_405(client_for, tess):
    assert client_for(tess).get(url("start_session")).status_code == 405


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("", "The problem is required."),
        ("   ", "The problem is required."),
        ("x" * 2001, "at most 2,000 characters; this is 2,001"),
        ("printer\x00offline", "control characters"),
        ("printer\x1boffline", "control characters"),
    ],
)
def test_bad_problems_are_refused_and_the_text_stays(client_for, tess, problem, message):
    response = client_for(tess).post(url("start_session"), {"problem": problem, "customer": "Acme"})

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'value="Acme"' in html
    if problem.strip() and "\x00" not in problem:
        # The text is back in the box (escaped), so nothing typed is lost.
        assert problem[:50] in html
    assert not Session.objects.exists()


def test_a_problem_of_exactly_2000_characters_with_tabs_and_newlines_is_fine(client_for, tess):
    problem = ("Line one\twith a tab\r\n" + "x" * 2000)[:2000]
    response = client_for(tess).post(url("start_session"), {"problem": problem})
    assert response.status_code == 303
    assert Session.objects.get().problem == problem.strip()


# ------------------------------------------------------------------------ the chat page


def test_chat_page_shows_history_lane_composer_and_my_sessions(client_for, session, tess):
    other = actions.start_session(user=tess, problem="VPN drops every hour")
    response = client_for(tess).get(url("session", session.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-session-id="{session.pk}"' in html
    assert (
        'id="composer"' in html and 'hx-post="{}"'.format(url("post_message", session.pk)) in html
    )
    assert "Sign in to OWA" in html and "Clear credentials" in html
    assert 'class="btn btn-icon btn-small copy-btn" data-copy="echo Sign in to OWA"' in html
    # The sidebar: my sessions, the open one marked.
    assert f'href="{url("session", other.pk)}"' in html
    assert re.search(rf'href="{url("session", session.pk)}"[^>]*aria-current="page"', html)


@pytest.mark.parametrize("who", ["sam", "ada"])
def test_seniors_of_the_account_read_without_a_composer(client_for, session, personas, who):
    response = client_for(personas[who]).get(url("session", session.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="composer"' not in html
    assert "You are reading Tess Tran's session" in html
    assert 'class="task-update"' not in html


@pytest.mark.parametrize("who", ["tom", "gil", "gwen"])
def test_other_technicians_and_other_accounts_get_404(client_for, session, personas, tom, who):
    user = tom if who == "tom" else personas[who]
    assert client_for(user).get(url("session", session.pk)).status_code == 404


def test_unknown_session_is_404(client_for, tess):
    assert client_for(tess).get(url("session", 424242)).status_code == 404


def test_assistant_markdown_is_rendered_safely(client_for, session, tess):
    actions.post_message(
        session=session,
        user=tess,
        body="<b>mine</b>",
        assistant=Scripted(text="**Bold** <script>alert(1)</script> [x](javascript:alert(1))"),
    )
    html = client_for(tess).get(url("session", session.pk)).content.decode()
    assert "<strong>Bold</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    assert "&lt;b&gt;mine&lt;/b&gt;" in html  # the user's own text is plain text


def test_chat_page_query_count_does_not_grow_with_the_history(client_for, session, tess):
    client = client_for(tess)
    client.get(url("session", session.pk))  # warm the session and the user caches

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("session", session.pk)).status_code == 200
        return len(queries)

    small = count()
    for n in range(15):
        actions.post_message(
            session=session, user=tess, body=f"Message {n}", assistant=Scripted(f"Step {n}")
        )
        actions.start_session(user=tess, problem=f"Another problem {n}")
    assert session.messages.count() > 30 and session.tasks.count() > 15
    assert count() == small
    assert small <= 8


def test_chat_page_pins_its_queries(client_for, session, tess, django_assert_max_num_queries):
    client = client_for(tess)
    with django_assert_max_num_queries(8):  # one is the bell stream's position
        client.get(url("session", session.pk))


def test_chat_page_wrong_method_is_405(client_for, session, tess):
    assert client_for(tess).post(url("session", session.pk)).status_code == 405


# ---------------------------------------------------------------------------- messages


def test_posting_a_message_returns_both_messages_and_the_lane_out_of_band(
    client_for, session, tess
):
    response = client_for(tess).post(
        url("post_message", session.pk), {"body": "OWA works fine"}, headers=HTMX
    )

    assert response.status_code == 200
    html = response.content.decode()
    stored = list(session.messages.order_by("-id")[:2])
    assert [m.role for m in stored] == ["assistant", "user"]
    assert f'id="message-{stored[1].pk}"' in html and f'id="message-{stored[0].pk}"' in html
    assert html.index("OWA works fine") < html.index(f'id="message-{stored[0].pk}"')
    assert re.search(
        rf'<section id="task-lane"[^>]*data-session-id="{session.pk}"[^>]*hx-swap-oob="outerHTML"',
        html,
    )
    assert 'id="composer-errors"' in html  # cleared out of band


def test_a_plain_form_post_redirects_back_to_the_chat(client_for, session, tess):
    response = client_for(tess).post(url("post_message", session.pk), {"body": "OWA works"})
    assert response.status_code == 303
    assert response["Location"].startswith(url("session", session.pk))


def test_a_message_over_8000_characters_is_refused_with_a_clear_error(client_for, session, tess):
    before = Message.objects.count()
    response = client_for(tess).post(
        url("post_message", session.pk), {"body": "y" * 8001}, headers=HTMX
    )

    assert response.status_code == 400
    assert response["HX-Retarget"] == "#composer-errors"
    assert "at most 8,000 characters; this is 8,001" in response.content.decode()
    assert Message.objects.count() == before


def test_without_javascript_a_too_long_message_comes_back_in_the_box(client_for, session, tess):
    response = client_for(tess).post(url("post_message", session.pk), {"body": "z" * 8001})
    assert response.status_code == 400
    html = response.content.decode()
    assert "z" * 8001 + "</textarea>" in html
    assert "at most 8,000 characters" in html


def test_a_message_of_exactly_8000_characters_is_fine(client_for, session, tess):
    response = client_for(tess).post(
        url("post_message", session.pk), {"body": "y" * 8000}, headers=HTMX
    )
    assert response.status_code == 200


@pytest.mark.parametrize("body", ["nul\x00byte", "bell\x07", "escape\x1b[31m", "del\x7f"])
def test_control_characters_in_a_message_are_refused(client_for, session, tess, body):
    before = Message.objects.count()
    response = client_for(tess).post(url("post_message", session.pk), {"body": body}, headers=HTMX)
    assert response.status_code == 400
    assert "control characters" in response.content.decode()
    assert Message.objects.count() == before


def test_tabs_and_newlines_in_a_message_are_fine(client_for, session, tess):
    response = client_for(tess).post(
        url("post_message", session.pk), {"body": "a\tb\r\nc\nd"}, headers=HTMX
    )
    assert response.status_code == 200
    assert session.messages.filter(role="user").get().body == "a\tb\r\nc\nd"


@pytest.mark.parametrize("body", ["", "   \n\t "])
def test_an_empty_message_does_nothing(client_for, session, tess, body):
    before = Message.objects.count()
    client = client_for(tess)
    assert (
        client.post(url("post_message", session.pk), {"body": body}, headers=HTMX).status_code
        == 204
    )
    assert client.post(url("post_message", session.pk), {"body": body}).status_code == 303
    assert Message.objects.count() == before


def test_post_message_wrong_method_is_405(client_for, session, tess):
    assert client_for(tess).get(url("post_message", session.pk)).status_code == 405


def test_a_senior_who_has_not_claimed_it_cannot_post(client_for, session, sam):
    before = Message.objects.count()
    response = client_for(sam).post(url("post_message", session.pk), {"body": "hi"}, headers=HTMX)
    assert response.status_code == 403
    assert "Only the technician" in response["HX-Trigger"]
    assert Message.objects.count() == before


@pytest.mark.parametrize("who", ["tom", "gil", "gwen"])
def test_posting_into_someone_elses_session_is_404(client_for, session, personas, tom, who):
    user = tom if who == "tom" else personas[who]
    before = Message.objects.count()
    response = client_for(user).post(url("post_message", session.pk), {"body": "hi"})
    assert response.status_code == 404
    assert Message.objects.count() == before


# ---------------------------------------------------------------- escalated and resolved


def test_escalated_session_shows_who_has_it_and_the_claimer_can_write(
    client_for, session, tess, sam, sky
):
    set_status(session, SessionStatus.ESCALATED, escalated_to=sam)

    html = client_for(tess).get(url("session", session.pk)).content.decode()
    assert "Escalated." in html and "Sam Okafor has it." in html
    assert 'id="composer"' in html  # the technician keeps working while escalated
    assert 'id="escalate-form"' not in html

    claimer = client_for(sam)
    assert "You have it." in claimer.get(url("session", session.pk)).content.decode()
    response = claimer.post(url("post_message", session.pk), {"body": "Senior here"}, headers=HTMX)
    assert response.status_code == 200
    assert session.messages.filter(author=sam).exists()

    response = client_for(sky).post(url("post_message", session.pk), {"body": "me too"})
    assert response.status_code == 403


def test_waiting_escalation_says_so(client_for, session, tess):
    set_status(session, SessionStatus.ESCALATED)
    html = client_for(tess).get(url("session", session.pk)).content.decode()
    assert "Waiting in the queue for a senior to claim it." in html


def test_resolved_session_is_read_only(client_for, session, tess):
    set_status(session, SessionStatus.RESOLVED)
    client = client_for(tess)
    html = client.get(url("session", session.pk)).content.decode()
    assert "This session is resolved; it is read-only." not in html  # banner text is shorter
    assert "Resolved." in html and 'id="composer"' not in html
    assert 'class="task-update"' not in html
    response = client.post(url("post_message", session.pk), {"body": "hi"}, headers=HTMX)
    assert response.status_code == 403
    assert "resolved" in response["HX-Trigger"]


# ---------------------------------------------------------------------- the escalate form


@pytest.mark.parametrize("status", [SessionStatus.ESCALATED, SessionStatus.RESOLVED])
def test_the_owner_gets_no_escalate_form_once_the_session_is_not_active(
    client_for, session, tess, status
):
    Session.objects.filter(pk=session.pk).update(status=status)
    html = client_for(tess).get(url("session", session.pk)).content.decode()
    assert 'id="escalate-form"' not in html


def test_the_owner_of_an_active_session_gets_the_escalate_form(client_for, session, tess, sam):
    html = client_for(tess).get(url("session", session.pk)).content.decode()
    escalate_url = reverse("escalate", args=[session.pk])
    form = re.search(r'<form class="escalate-form".*?</form>', html, re.S).group(0)
    assert f'hx-post="{escalate_url}"' in form
    assert 'hx-target="this"' in form and 'hx-swap="outerHTML"' in form
    assert re.search(r'<textarea[^>]*name="reason"[^>]*required', form)
    assert '<option value="normal" selected>' in form
    # Seniors reading it do not get the form.
    assert (
        'id="escalate-form"' not in client_for(sam).get(url("session", session.pk)).content.decode()
    )


def test_the_escalate_form_partial_renders_errors_and_keeps_values(rf, session, tess):
    from escalations.forms import EscalateForm

    request = rf.get("/")
    request.user = tess
    form = EscalateForm({"reason": "Tried <everything>", "urgency": "high"})
    assert form.is_valid()
    form.add_error("reason", "Say why you are escalating.")
    form.add_error(None, "This session is resolved.")
    html = render_to_string(
        "flowpilot/session.html#escalate-form",
        {"session": session, "escalate_form": form},
        request=request,
    )
    assert html.strip().startswith('<form class="escalate-form"')
    assert "Say why you are escalating." in html
    assert "This session is resolved." in html
    assert "Tried &lt;everything&gt;</textarea>" in html
    assert '<option value="high" selected>' in html
    assert '<option value="normal" selected>' not in html
    assert 'aria-invalid="true"' in html


# --------------------------------------------------------------------------- the lane


def test_the_lane_fragment_carries_its_session_id(client_for, session, tess):
    response = client_for(tess).get(url("tasks", session.pk), headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith(
        f'<section id="task-lane" class="fp-lane" data-session-id="{session.pk}"'
    )
    assert "hx-swap-oob" not in html


def test_adding_a_step_by_hand(client_for, session, tess):
    response = client_for(tess).post(
        url("tasks", session.pk),
        {"title": "Reboot the router", "detail": "Pull the plug", "command": "shutdown /r"},
        headers=HTMX,
    )
    assert response.status_code == 200
    task = session.tasks.get(title="Reboot the router")
    assert task.source == "manual" and task.created_by == tess
    assert f'id="task-{task.pk}"' in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": ""}, "The step&#x27;s title is required."),
        ({"title": "t" * 201}, "at most 200 characters"),
        ({"title": "ok", "command": "c" * 1001}, "at most 1,000 characters"),
        ({"title": "nul\x00"}, "control characters"),
    ],
)
def test_bad_steps_are_refused_in_the_lane(client_for, session, tess, data, message):
    before = Task.objects.count()
    response = client_for(tess).post(url("tasks", session.pk), data, headers=HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert '<details class="task-add" open>' in html
    assert Task.objects.count() == before


def test_tasks_wrong_method_is_405(client_for, session, tess):
    assert client_for(tess).put(url("tasks", session.pk)).status_code == 405


def test_marking_a_step_failed_with_an_outcome(client_for, session, tess):
    task = session.tasks.first()
    response = client_for(tess).post(
        url("task", session.pk, task.pk),
        {"status": "failed", "outcome": "Still prompts"},
        headers=HTMX,
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("failed", "Still prompts")
    assert "Still prompts" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": "maybe"}, "Select a valid choice"),
        ({"status": "done", "outcome": "o" * 2001}, "at most 2,000 characters"),
        ({"status": "done", "outcome": "bad\x00"}, "control characters"),
    ],
)
def test_bad_task_updates_are_refused(client_for, session, tess, data, message):
    task = session.tasks.first()
    response = client_for(tess).post(url("task", session.pk, task.pk), data, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    task.refresh_from_db()
    assert task.status == "todo"


def test_update_task_wrong_method_is_405(client_for, session, tess):
    task = session.tasks.first()
    assert client_for(tess).get(url("task", session.pk, task.pk)).status_code == 405


def test_a_task_of_another_session_is_404(client_for, session, tess):
    other = actions.start_session(user=tess, problem="Another")
    task = session.tasks.first()
    response = client_for(tess).post(url("task", other.pk, task.pk), {"status": "done"})
    assert response.status_code == 404


def test_a_reader_cannot_change_tasks(client_for, session, sam):
    task = session.tasks.first()
    client = client_for(sam)
    assert client.post(url("task", session.pk, task.pk), {"status": "done"}).status_code == 403
    assert client.post(url("tasks", session.pk), {"title": "x"}).status_code == 403
    assert (
        client.post(url("move_task", session.pk, task.pk), {"direction": "down"}).status_code == 403
    )
    task.refresh_from_db()
    assert task.status == "todo"


@pytest.mark.parametrize("who", ["gil", "gwen"])
def test_other_accounts_cannot_change_tasks(client_for, session, personas, who):
    task = session.tasks.first()
    client = client_for(personas[who])
    assert client.post(url("task", session.pk, task.pk), {"status": "done"}).status_code == 404
    assert client.post(url("tasks", session.pk), {"title": "x"}).status_code == 404
    assert (
        client.post(url("move_task", session.pk, task.pk), {"direction": "up"}).status_code == 404
    )


def test_moving_a_step(client_for, session, tess):
    first, second = session.tasks.order_by("position")
    client = client_for(tess)
    response = client.post(
        url("move_task", session.pk, second.pk), {"direction": "up"}, headers=HTMX
    )
    assert response.status_code == 200
    assert list(session.tasks.order_by("position")) == [second, first]
    assert (
        client.post(url("move_task", session.pk, second.pk), {"direction": "left"}).status_code
        == 400
    )
    assert client.get(url("move_task", session.pk, second.pk)).status_code == 405
