"""Taking a handoff over: the two ways to claim, the claimer's chat panel and its chips."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from escalations import actions
from escalations.assessment import assessment_for_display
from escalations.models import Handoff, HandoffEvent, HandoffState
from escalations.takeover import briefing_text
from flowpilot.models import Message, MessageRole, Task, TaskSource
from resolutionflow.models import OutboxEvent
from tests.escalations.conftest import HTMX, escalate, make_session

pytestmark = pytest.mark.django_db


def take_over_url(handoff: Handoff) -> str:
    return reverse("escalations:take_over", args=[handoff.pk])


def open_step_url(handoff: Handoff) -> str:
    return reverse("escalations:open_step", args=[handoff.pk])


def panel_url(handoff: Handoff) -> str:
    return reverse("escalations:session_panel", args=[handoff.session_id])


def chat_url(handoff: Handoff, flag: str = "") -> str:
    url = reverse("flowpilot:session", args=[handoff.session_id])
    return f"{url}?{flag}=1" if flag else url


@pytest.fixture
def handoff(tess) -> Handoff:
    """An open printer handoff of tess's, with its assessment stored as escalation leaves it."""
    session = make_session(tess, problem="Nothing prints on floor 2, jobs stuck in the print queue")
    handoff = escalate(session, reason="The whole floor is blocked", urgency="high")
    handoff.refresh_from_db()
    return handoff


def first_step(handoff: Handoff) -> dict:
    return assessment_for_display(handoff).next_steps[0]


# -- the handoff screen ----------------------------------------------------------------------


def test_an_unclaimed_handoff_offers_the_two_ways_to_take_it(client_for, sam, handoff):
    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()
    assert "I'll take it from here" in page
    assert "Get AI analysis" in page
    assert f'action="{take_over_url(handoff)}"' in page
    # The header and the assessment render together, the assessment live on the handoff stream.
    assert "Tess Tran" in page and "The whole floor is blocked" in page
    assert 'id="assessment-card"' in page
    stream = reverse("escalations:handoff_events", args=[handoff.pk])
    assert f'sse-connect="{stream}?lastEventId=handoff-{handoff.pk}%3A' in page
    assert "Likely causes, most likely first" in page
    assert "Recommended next steps" in page


def test_a_handoff_claimed_by_someone_else_says_who_and_offers_nothing_to_claim(
    client_for, sam, sky, handoff
):
    actions.claim_handoff(handoff_id=handoff.pk, user=sky)
    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()
    assert "Sky Lindqvist has it" in page
    assert "take it from here" not in page
    assert "Get AI analysis" not in page
    assert reverse("escalations:claim", args=[handoff.pk]) not in page


def test_the_escalator_reads_the_screen_without_any_button(client_for, tess, handoff):
    page = client_for(tess).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()
    assert 'id="assessment-card"' in page
    assert "take it from here" not in page
    assert "Get AI analysis" not in page
    assert "Refresh" not in page


def test_the_screen_makes_the_same_number_of_queries_however_long_the_session(
    client_for, sam, tess
):
    def count(messages: int) -> int:
        session = make_session(tess)
        Message.objects.bulk_create(
            Message(session=session, role=MessageRole.USER, author=tess, body=f"m{n}")
            for n in range(messages)
        )
        handoff = escalate(session)
        client = client_for(sam)
        client.get(reverse("escalations:handoff", args=[handoff.pk]))  # first view: inserts
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("escalations:handoff", args=[handoff.pk])).status_code == 200
        return len(queries)

    assert count(3) == count(400)


# -- "I'll take it from here" --------------------------------------------------------------


def test_take_it_from_here_claims_and_opens_the_chat_ready_to_type(client_for, sam, handoff):
    response = client_for(sam).post(take_over_url(handoff), {"mode": "takeover"})
    assert response.status_code == 303
    assert response["Location"] == chat_url(handoff, "takeover")
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.CLAIMED and handoff.claimed_by == sam
    assert handoff.first_action_at is None, "claiming is not yet an action"
    assert not Message.objects.filter(session=handoff.session, author=sam).exists()


def test_htmx_take_over_navigates_with_hx_redirect(client_for, sam, handoff):
    response = client_for(sam).post(take_over_url(handoff), {"mode": "takeover"}, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == chat_url(handoff, "takeover")


# -- "Get AI analysis" -----------------------------------------------------------------------


def test_get_ai_analysis_claims_briefs_flowpilot_and_fills_the_lane(client_for, sam, handoff):
    lane_before = set(Task.objects.filter(session=handoff.session).values_list("id", flat=True))

    response = client_for(sam).post(take_over_url(handoff), {"mode": "analysis"})

    assert response.status_code == 303
    assert response["Location"] == chat_url(handoff, "analysis")
    handoff.refresh_from_db()
    assert handoff.claimed_by == sam
    briefing, answer = Message.objects.filter(session=handoff.session).order_by("-id")[:2][::-1]
    assert (briefing.role, briefing.author) == (MessageRole.USER, sam)
    assert briefing.body.startswith("Handoff briefing")
    assert "Escalated by Tess Tran (high urgency): The whole floor is blocked" in briefing.body
    assert "What was tried:" in briefing.body and "Step 1 (failed): Still prompts" in briefing.body
    assert "Likely causes:" in briefing.body
    assert answer.role == MessageRole.ASSISTANT and answer.engine == "offline"
    new_tasks = Task.objects.filter(session=handoff.session).exclude(id__in=lane_before)
    assert new_tasks.exists(), "the assistant's steps land in the lane"
    assert set(new_tasks.values_list("source", flat=True)) == {TaskSource.ASSISTANT}


@pytest.mark.django_db(transaction=True)
def test_get_ai_analysis_announces_the_claim_before_flowpilot_answers(
    client_for, sam, handoff, monkeypatch
):
    # An AI engine may take seconds to answer the briefing: the other seniors' queues must
    # not show the handoff as waiting all that time.
    announced_before_briefing = []
    brief = actions.post_analysis_briefing

    def slow_briefing(**kwargs):
        announced_before_briefing.extend(
            OutboxEvent.objects.filter(
                event_type="handoff-claimed", published_at__isnull=False
            ).values_list("channel", flat=True)
        )
        return brief(**kwargs)

    monkeypatch.setattr(actions, "post_analysis_briefing", slow_briefing)
    response = client_for(sam).post(take_over_url(handoff), {"mode": "analysis"})

    assert response.status_code == 303
    assert sorted(announced_before_briefing) == sorted(
        [f"queue-{handoff.account_id}", f"handoff-{handoff.pk}"]
    )


def test_get_ai_analysis_is_a_take_over_mode_not_a_first_action(client_for, sam, handoff):
    client_for(sam).post(take_over_url(handoff), {"mode": "analysis"})
    handoff.refresh_from_db()
    assert handoff.takeover_mode == "analysis"
    assert handoff.first_action_at is None, "the briefing is a button press, not the claimer's work"
    assert not HandoffEvent.objects.filter(handoff=handoff, kind="first_action").exists()

    # The claimer's own message afterwards is the first action.
    from flowpilot.actions import post_message

    post_message(session=handoff.session, user=sam, body="Checking the port now")
    handoff.refresh_from_db()
    assert handoff.first_action_kind == "message"
    assert HandoffEvent.objects.filter(handoff=handoff, kind="first_action").count() == 1


def test_a_failed_briefing_keeps_the_claim_and_says_so(client_for, sam, handoff, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("engine bug")

    monkeypatch.setattr(actions, "post_analysis_briefing", broken)
    response = client_for(sam).post(take_over_url(handoff), {"mode": "analysis"}, follow=True)
    assert response.redirect_chain[0] == (chat_url(handoff, "takeover"), 303)
    assert "FlowPilot could not be briefed" in response.content.decode()
    handoff.refresh_from_db()
    assert handoff.claimed_by == sam


def test_the_briefing_is_built_from_the_package_and_the_assessment(handoff, sam):
    text = briefing_text(handoff, assessment_for_display(handoff))
    package = handoff.escalation_package
    assert package["problem"].splitlines()[0] in text
    assert "Customer: Northwind HQ · Device: LAPTOP-042" in text
    assert assessment_for_display(handoff).causes[0]["title"] in text
    assert len(text) <= 8000


# -- refusals -----------------------------------------------------------------------------


def test_the_second_taker_learns_who_won_and_changes_nothing(client_for, sam, sky, handoff):
    client_for(sky).post(take_over_url(handoff), {"mode": "takeover"})
    messages_before = Message.objects.filter(session=handoff.session).count()

    client = client_for(sam)
    response = client.post(take_over_url(handoff), {"mode": "analysis"}, follow=True)

    assert response.redirect_chain[0] == (reverse("escalations:handoff", args=[handoff.pk]), 303)
    page = response.content.decode()
    assert "Already picked up by Sky Lindqvist" in page
    assert "Sky Lindqvist has it" in page
    handoff.refresh_from_db()
    assert handoff.claimed_by == sky
    assert Message.objects.filter(session=handoff.session).count() == messages_before


def test_take_over_wrong_method(client_for, sam, handoff):
    assert client_for(sam).get(take_over_url(handoff)).status_code == 405


def test_take_over_needs_a_mode(client_for, sam, handoff):
    assert client_for(sam).post(take_over_url(handoff), {"mode": "yolo"}).status_code == 400
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


def test_take_over_refuses_technicians(client_for, tess, gil, handoff):
    assert client_for(tess).post(take_over_url(handoff), {"mode": "takeover"}).status_code == 403
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


def test_take_over_of_another_accounts_handoff_is_404(client_for, gwen, handoff):
    response = client_for(gwen).post(take_over_url(handoff), {"mode": "analysis"})
    assert response.status_code == 404
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


def test_an_engineer_may_not_take_over_what_they_escalated(client_for, sam):
    session = make_session(sam)
    handoff = escalate(session)
    assert client_for(sam).post(take_over_url(handoff), {"mode": "takeover"}).status_code == 403


# -- the claimer's panel on the chat page -------------------------------------------------


def test_the_chat_page_loads_the_panel_for_the_claimer_only(client_for, sam, sky, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    chat = client_for(sam).get(chat_url(handoff)).content.decode()
    assert f'hx-get="{panel_url(handoff)}"' in chat
    assert "js/takeover.js" in chat
    assert (
        f'hx-get="{panel_url(handoff)}"'
        not in client_for(sky).get(chat_url(handoff)).content.decode()
    )


def test_the_panel_has_the_overlay_with_only_close_and_the_chips(client_for, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    response = client_for(sam).get(panel_url(handoff), **HTMX)
    assert response.status_code == 200
    panel = response.content.decode()
    assert 'id="handoff-overlay"' in panel
    assert "Handoff from Tess Tran" in panel
    assert "The whole floor is blocked" in panel
    dialog = panel[panel.index("<dialog") : panel.index("</dialog>")]
    assert dialog.count("<button") == 1 and "Close" in dialog
    assert panel.count("Open in Tasks panel") == len(assessment_for_display(handoff).next_steps)
    # The way back to release or resolve it.
    assert f'href="/handoffs/{handoff.pk}/"' in panel and "Release or resolve" in panel


def test_the_panel_is_empty_for_everyone_else(client_for, sam, sky, ada, handoff, tess):
    assert client_for(sam).get(panel_url(handoff)).status_code == 204  # not claimed yet
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert client_for(sky).get(panel_url(handoff)).status_code == 204
    assert client_for(ada).get(panel_url(handoff)).status_code == 204
    assert client_for(tess).get(panel_url(handoff)).status_code == 403


def test_the_panel_of_another_account_is_empty(client_for, gwen, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert client_for(gwen).get(panel_url(handoff)).status_code == 204


# -- chips: "Open in Tasks panel" ----------------------------------------------------------


def test_open_in_tasks_panel_adds_the_step_and_returns_the_lane(client_for, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    step = first_step(handoff)

    response = client_for(sam).post(open_step_url(handoff), {"title": step["title"]}, **HTMX)

    assert response.status_code == 200
    task = Task.objects.get(session=handoff.session, title=step["title"])
    assert (task.detail, task.command, task.created_by) == (step["detail"], step["command"], sam)
    body = response.content.decode()
    assert 'id="task-lane"' in body and f'id="task-{task.pk}"' in body
    assert '"rf:task-opened"' in response["HX-Trigger-After-Settle"]
    assert "Added to the Tasks lane" in response["HX-Trigger"]
    handoff.refresh_from_db()
    assert handoff.first_action_at is None, "opening FlowPilot's step is not the claimer's work"


def test_a_chip_whose_step_is_in_the_lane_points_at_it_instead(client_for, sam, handoff):
    steps = assessment_for_display(handoff).next_steps
    queued = Task.objects.create(
        session=handoff.session, title=steps[1]["title"].upper(), position=99
    )
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    panel = client_for(sam).get(panel_url(handoff), **HTMX).content.decode()

    assert panel.count("Open in Tasks panel") == len(steps) - 1
    assert panel.count("chip-in-lane") == 1
    assert f'href="#task-{queued.pk}" data-show-task="{queued.pk}">Show in Tasks panel' in panel
    assert "Already in the Tasks lane (to do)" in panel


def test_when_every_suggested_step_is_in_the_lane_the_chips_step_aside(client_for, sam, handoff):
    for step in assessment_for_display(handoff).next_steps:
        Task.objects.create(session=handoff.session, title=step["title"], position=99)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    panel = client_for(sam).get(panel_url(handoff), **HTMX).content.decode()

    assert "Every suggested step is in the Tasks lane." in panel
    assert 'class="chips"' not in panel


def test_opening_a_step_turns_its_chip_into_show_in_tasks_panel(client_for, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    step = first_step(handoff)

    response = client_for(sam).post(open_step_url(handoff), {"title": step["title"]}, **HTMX)

    body = response.content.decode()
    task = Task.objects.get(session=handoff.session, title=step["title"])
    chips = body[body.index('<div id="lane-chips" hx-swap-oob="true">') :]
    assert f'data-show-task="{task.pk}"' in chips
    assert chips.count("Open in Tasks panel") == len(assessment_for_display(handoff).next_steps) - 1


def test_open_in_tasks_panel_opens_the_existing_task_instead_of_adding_it_twice(
    client_for, sam, handoff
):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    step = first_step(handoff)
    client = client_for(sam)
    client.post(open_step_url(handoff), {"title": step["title"]}, **HTMX)
    response = client.post(open_step_url(handoff), {"title": step["title"].upper()}, **HTMX)

    assert response.status_code == 200
    assert Task.objects.filter(session=handoff.session, title=step["title"]).count() == 1
    assert "Already in the Tasks lane" in response["HX-Trigger"]


def test_open_in_tasks_panel_without_javascript_redirects_to_the_task(client_for, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    step = first_step(handoff)
    response = client_for(sam).post(open_step_url(handoff), {"title": step["title"]})
    task = Task.objects.get(session=handoff.session, title=step["title"])
    assert response.status_code == 303
    assert response["Location"] == chat_url(handoff) + f"#task-{task.pk}"


def test_open_in_tasks_panel_accepts_only_suggested_steps(client_for, sam, handoff):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    response = client_for(sam).post(open_step_url(handoff), {"title": "rm -rf /"}, **HTMX)
    assert response.status_code == 409
    assert "no longer suggested" in response["HX-Trigger"]
    assert not Task.objects.filter(session=handoff.session, title="rm -rf /").exists()


def test_open_in_tasks_panel_is_for_the_claimer_only(client_for, sam, sky, tess, gwen, handoff):
    title = first_step(handoff)["title"]
    assert client_for(sam).post(open_step_url(handoff), {"title": title}).status_code == 403
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert client_for(sky).post(open_step_url(handoff), {"title": title}).status_code == 403
    assert client_for(tess).post(open_step_url(handoff), {"title": title}).status_code == 403
    assert client_for(gwen).post(open_step_url(handoff), {"title": title}).status_code == 404
    assert not Task.objects.filter(session=handoff.session, title=title).exists()


def test_open_in_tasks_panel_wrong_method(client_for, sam, handoff):
    assert client_for(sam).get(open_step_url(handoff)).status_code == 405


# -- the claimer's work goes through the handoff manager -----------------------------------


def test_only_whoever_holds_the_handoff_may_brief_flowpilot_or_open_its_steps(
    handoff, sam, sky, ada
):
    title = first_step(handoff)["title"]
    work = [
        lambda user: actions.post_analysis_briefing(handoff=handoff, user=user),
        lambda user: actions.open_suggested_step(handoff=handoff, user=user, title=title),
    ]
    for do in work:  # nobody holds an open handoff
        with pytest.raises(actions.HandoffForbidden) as refused:
            do(sam)
        assert refused.value.code == "not_claimer"

    handoff = actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    # An admin may release or resolve someone's claim, but not work the session in their place.
    for user in (sky, ada):
        for do in work:
            with pytest.raises(actions.HandoffForbidden, match="Only the engineer who claimed"):
                do(user)
    assert not Message.objects.filter(session=handoff.session, author__in=[sky, ada]).exists()
    assert not Task.objects.filter(session=handoff.session, title=title).exists()

    task, added = actions.open_suggested_step(handoff=handoff, user=sam, title=title)
    assert (task.title, added) == (title, True)


def test_a_released_claimer_no_longer_holds_the_handoff(handoff, sam):
    handoff = actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert handoff.is_claimed_by(sam)
    actions.release_handoff(handoff_id=handoff.pk, user=sam)
    handoff.refresh_from_db()
    assert handoff.claimed_by == sam and not handoff.is_claimed_by(sam)
