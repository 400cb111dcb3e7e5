"""Releasing a claimed handoff back to the queue, and resolving one."""

import json

import pytest
from django.urls import reverse

from escalations import actions
from escalations.models import (
    Handoff,
    HandoffEvent,
    HandoffState,
    Notification,
    NotificationKind,
)
from flowpilot.models import Message, SessionStatus
from resolutionflow.models import OutboxEvent
from tests.conftest import api_body
from tests.escalations.conftest import HTMX, JSON

pytestmark = pytest.mark.django_db


def url(name, handoff):
    return reverse(f"escalations:{name}", args=[handoff.pk])


# --- release ---------------------------------------------------------------------------------


def test_release_closes_the_handoff_and_reopens_the_session_as_a_new_one(claimed, sam, session):
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)

    claimed.refresh_from_db()
    assert claimed.state == HandoffState.RELEASED
    assert claimed.released_at is not None
    assert claimed.claimed_by == sam  # history keeps who had it
    assert reopened.pk != claimed.pk
    assert reopened.state == HandoffState.OPEN
    assert reopened.reopened_from_id == claimed.pk
    assert (reopened.escalated_by, reopened.reason, reopened.urgency) == (
        claimed.escalated_by,
        claimed.reason,
        claimed.urgency,
    )
    assert reopened.escalation_package["handoff"] == str(reopened.pk)
    assert reopened.escalation_package["reopened_from"] == str(claimed.pk)
    session.refresh_from_db()
    assert session.status == SessionStatus.ESCALATED
    assert session.escalated_to is None


def test_release_records_both_transitions(claimed, sam):
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    assert list(HandoffEvent.objects.filter(handoff=claimed).values_list("kind", flat=True)) == [
        "escalated",
        "claimed",
        "released",
    ]
    escalated = HandoffEvent.objects.get(handoff=reopened)
    assert (escalated.kind, escalated.actor) == ("escalated", sam)
    assert escalated.detail["reopened_from"] == str(claimed.pk)


def test_release_tells_the_other_seniors_the_escalator_and_the_queue(claimed, sam):
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    told = dict(
        Notification.objects.filter(
            handoff=reopened, kind=NotificationKind.HANDOFF_RELEASED
        ).values_list("recipient__username", "text")
    )
    assert set(told) == {"sky", "ada", "tess"}
    assert told["tess"].startswith("Sam Okafor put your escalation back in the queue")
    note = Message.objects.filter(session_id=claimed.session_id, role="system").last()
    assert note.body == "Sam Okafor released this back to the escalation queue."
    event = OutboxEvent.objects.get(
        event_type="handoff-released", channel=f"queue-{claimed.account_id}"
    )
    assert event.data["handoff"] == str(reopened.pk)
    assert event.data["released"] == str(claimed.pk)


def test_resolve_tells_the_escalator_and_leaves_the_note_in_the_chat(claimed, sam):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam, note="Rekeyed the VPN tunnel")
    told = Notification.objects.get(handoff=claimed, kind=NotificationKind.HANDOFF_RESOLVED)
    assert told.recipient.username == "tess"
    assert told.text.startswith("Sam Okafor resolved your escalation")
    note = Message.objects.filter(session_id=claimed.session_id, role="system").last()
    assert note.body == "Resolved by Sam Okafor. Resolution: Rekeyed the VPN tunnel"
    assert note.author is None  # written by the handoff manager, not posted by Sam


def test_the_releaser_can_claim_the_reopened_handoff_again(claimed, sam):
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    assert actions.claim_handoff(handoff_id=reopened.pk, user=sam).claimed_by == sam


def test_a_released_handoffs_page_links_to_the_one_in_the_queue_now(client_for, claimed, sam, sky):
    reopened = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    old_page = reverse("escalations:handoff", args=[claimed.pk])
    current = reverse("escalations:handoff", args=[reopened.pk])
    html = client_for(sky).get(old_page).content.decode()
    assert f'<a href="{current}">Open the current handoff</a> (waiting)' in html
    actions.claim_handoff(handoff_id=reopened.pk, user=sky)
    html = client_for(sam).get(old_page).content.decode()
    assert f'<a href="{current}">Open the current handoff</a> (Sky Lindqvist has it)' in html


def test_an_admin_may_release_someone_elses_claim(claimed, ada):
    actions.release_handoff(handoff_id=claimed.pk, user=ada)
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.RELEASED


def test_another_engineer_may_not_release_it(claimed, sky):
    with pytest.raises(actions.HandoffForbidden) as refused:
        actions.release_handoff(handoff_id=claimed.pk, user=sky)
    assert refused.value.code == "not_claimer"


def test_an_open_handoff_cannot_be_released(handoff, ada):
    with pytest.raises(actions.NotClaimed):
        actions.release_handoff(handoff_id=handoff.pk, user=ada)


def test_a_released_handoff_cannot_be_released_again(claimed, sam):
    actions.release_handoff(handoff_id=claimed.pk, user=sam)
    with pytest.raises(actions.NotClaimed) as refused:
        actions.release_handoff(handoff_id=claimed.pk, user=sam)
    assert refused.value.handoff.state == "released"


# --- resolve ---------------------------------------------------------------------------------


def test_the_claimer_resolves_with_a_note(claimed, sam, session):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam, note="  Reset the MFA token. ")
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.RESOLVED
    assert claimed.resolved_at is not None
    assert claimed.resolution_note == "Reset the MFA token."
    session.refresh_from_db()
    assert session.status == SessionStatus.RESOLVED
    event = HandoffEvent.objects.get(handoff=claimed, kind="resolved")
    assert (event.actor, event.detail) == (sam, {"note": "Reset the MFA token."})
    assert OutboxEvent.objects.filter(
        event_type="handoff-resolved", channel=f"queue-{claimed.account_id}"
    ).exists()


def test_an_admin_may_resolve_an_unclaimed_handoff(handoff, ada):
    actions.resolve_handoff(handoff_id=handoff.pk, user=ada)
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.RESOLVED


def test_an_engineer_who_did_not_claim_may_not_resolve(claimed, sky, handoff):
    with pytest.raises(actions.HandoffForbidden):
        actions.resolve_handoff(handoff_id=claimed.pk, user=sky)


def test_an_engineer_may_not_resolve_an_unclaimed_handoff(handoff, sam):
    with pytest.raises(actions.HandoffForbidden):
        actions.resolve_handoff(handoff_id=handoff.pk, user=sam)


def test_a_resolved_handoff_cannot_be_resolved_again(claimed, sam):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    with pytest.raises(actions.HandoffClosed) as refused:
        actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    assert refused.value.handoff.state == "resolved"


def test_a_technician_may_neither_release_nor_resolve(claimed, tess):
    for change in (actions.release_handoff, actions.resolve_handoff):
        with pytest.raises(actions.HandoffForbidden) as refused:
            change(handoff_id=claimed.pk, user=tess)
        assert refused.value.code == "role"


# --- the views -------------------------------------------------------------------------------


def test_json_release_answers_with_the_reopened_handoff(client_for, sam, claimed):
    response = client_for(sam).post(url("release", claimed), **JSON)
    assert response.status_code == 200
    reopened = Handoff.objects.get(reopened_from=claimed)
    assert api_body(response.json()) == {
        "status": "released",
        "handoff": str(claimed.pk),
        "reopened_as": str(reopened.pk),
    }


def test_release_from_the_page_goes_back_to_the_queue(client_for, sam, claimed):
    response = client_for(sam).post(url("release", claimed), **HTMX)
    assert response["HX-Redirect"] == reverse("escalations:queue")


def test_json_release_of_an_open_handoff_is_409_not_claimed(client_for, ada, handoff):
    response = client_for(ada).post(url("release", handoff), **JSON)
    assert response.status_code == 409
    assert api_body(response.json()) == {
        "error": "not_claimed",
        "handoff": str(handoff.pk),
        "state": "open",
    }


def test_json_resolve_answers_200_and_stores_the_note(client_for, sam, claimed):
    response = client_for(sam).post(url("resolve", claimed), {"note": "Fixed"}, **JSON)
    assert response.status_code == 200
    assert api_body(response.json()) == {"status": "resolved", "handoff": str(claimed.pk)}
    claimed.refresh_from_db()
    assert claimed.resolution_note == "Fixed"


def test_resolve_with_an_oversized_note_is_a_400(client_for, sam, claimed):
    response = client_for(sam).post(url("resolve", claimed), {"note": "x" * 4001}, **JSON)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["note"]
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


def test_resolve_from_the_page_stays_on_the_handoff(client_for, sam, claimed):
    response = client_for(sam).post(url("resolve", claimed))
    assert response.status_code == 303
    assert response["Location"] == url("handoff", claimed)


def test_json_resolve_of_a_resolved_handoff_is_409_closed(client_for, sam, claimed):
    actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    response = client_for(sam).post(url("resolve", claimed), **JSON)
    assert response.status_code == 409
    assert response.json()["error"] == "closed"


@pytest.mark.parametrize("name", ["release", "resolve"])
def test_wrong_method_is_405(client_for, sam, claimed, name):
    assert client_for(sam).get(url(name, claimed)).status_code == 405
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


@pytest.mark.parametrize("name", ["release", "resolve"])
def test_wrong_role_is_403(client_for, tess, sky, claimed, name):
    response = client_for(tess).post(url(name, claimed), **JSON)
    assert (response.status_code, api_body(response.json())) == (403, {"error": "role"})
    response = client_for(sky).post(url(name, claimed), **JSON)
    assert (response.status_code, api_body(response.json())) == (403, {"error": "not_claimer"})
    assert client_for(sky).post(url(name, claimed)).status_code == 403
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


@pytest.mark.parametrize("name", ["release", "resolve"])
def test_another_account_is_404(client_for, gwen, claimed, name):
    response = client_for(gwen).post(url(name, claimed), **JSON)
    assert (response.status_code, api_body(response.json())) == (404, {"error": "not_found"})
    assert client_for(gwen).post(url(name, claimed)).status_code == 404
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


# --- a refused note: the screen again, with the real error and the note as typed -------------


@pytest.mark.parametrize(
    ("note", "error"),
    [
        ("Reset the token\x00 and the cache", "Remove the control characters"),
        ("Line one\r\n" + "x" * 4000, "at most 4,000 characters; this is 4,010"),
    ],
)
def test_a_refused_note_rerenders_the_handoff_screen_with_its_error_and_the_typed_note(
    client_for, sam, claimed, note, error
):
    response = client_for(sam).post(url("resolve", claimed), {"note": note})
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html
    assert 'id="claim-box"' in html and "<html" in html  # the whole handoff screen
    textarea = html[html.index('<textarea name="note"') : html.index("</textarea>")]
    assert 'aria-invalid="true"' in textarea
    assert note[:15].replace("\x00", "") in textarea.replace("\x00", "")
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


def test_a_nul_in_the_note_is_not_called_too_long(client_for, sam, claimed):
    html = client_for(sam).post(url("resolve", claimed), {"note": "ok\x00"}).content.decode()
    assert "too long" not in html and "at most" not in html
    assert "control characters" in html


def test_htmx_refused_note_gets_the_claim_box_with_a_200(client_for, sam, claimed):
    response = client_for(sam).post(url("resolve", claimed), {"note": "bad\x07note"}, **HTMX)
    assert response.status_code == 200  # htmx 2 swaps only 2xx answers
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card claim-box')
    assert "<html" not in body
    assert "Remove the control characters" in body
    assert "bad\x07note</textarea>" in body
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


def test_json_refused_note_names_the_field(client_for, sam, claimed):
    response = client_for(sam).post(url("resolve", claimed), {"note": "a\x00b"}, **JSON)
    assert response.status_code == 400
    assert "control characters" in response.json()["errors"]["note"][0]


def test_json_note_that_is_not_a_string_is_a_400_field_error(client_for, sam, claimed):
    response = client_for(sam).post(
        url("resolve", claimed),
        data=json.dumps({"note": ["Fixed"]}),
        content_type="application/json",
        **JSON,
    )
    assert (response.status_code, api_body(response.json())) == (
        400,
        {"errors": {"note": ["Must be a string."]}},
    )
    claimed.refresh_from_db()
    assert claimed.state == HandoffState.CLAIMED


def test_someone_who_may_not_resolve_learns_nothing_from_the_notes_errors(client_for, sky, claimed):
    response = client_for(sky).post(url("resolve", claimed), {"note": "x" * 5000}, **JSON)
    assert (response.status_code, api_body(response.json())) == (403, {"error": "not_claimer"})
    assert client_for(sky).post(url("resolve", claimed), {"note": "x" * 5000}).status_code == 403


def test_the_handoff_screen_renders_the_resolve_form_from_the_form(client_for, sam, claimed):
    html = client_for(sam).get(url("handoff", claimed)).content.decode()
    form = html[html.index('<form method="post" action="' + url("resolve", claimed)) :]
    form = form[: form.index("</form>")]
    assert '<textarea name="note"' in form and 'placeholder="What fixed it?"' in form
    assert "maxlength" not in form  # the server says "at most 4,000", a paste is never cut


def test_a_released_handoff_says_it_came_back_and_by_whom(client_for, sky, sam, claimed):
    back = actions.release_handoff(handoff_id=claimed.pk, user=sam)
    page = client_for(sky).get(reverse("escalations:handoff", args=[back.pk])).content.decode()
    assert "<strong>Released back to the queue</strong> · Sam Okafor" in page
    assert ">Back in the queue</span>" in page

    actions.claim_handoff(handoff_id=back.pk, user=sky)
    actions.resolve_handoff(handoff_id=back.pk, user=sky)
    page = client_for(sky).get(reverse("escalations:handoff", args=[back.pk])).content.decode()
    assert ">Back in the queue</span>" not in page  # resolved, not waiting


# --- waits count from the first escalation ---------------------------------------------------


def test_a_requeued_handoff_keeps_the_first_escalation_time_for_card_and_analytics(
    client_for, handoff, sam, sky
):
    from datetime import timedelta

    from django.utils import timezone

    from analytics import metrics

    first_escalation = timezone.now() - timedelta(minutes=12)
    Handoff.objects.filter(pk=handoff.pk).update(created_at=first_escalation)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    reopened = actions.release_handoff(handoff_id=handoff.pk, user=sam)

    assert reopened.created_at == first_escalation
    queue = client_for(sky).get(reverse("escalations:queue")).content.decode()
    assert f'data-since="{int(first_escalation.timestamp())}"' in queue
    assert "Waiting <time" in queue and ">12\xa0minutes</time>" in queue
    # The history keeps each hand: escalated, claimed and released on the first; the
    # re-queue (when it happened, by whom) on the second.
    requeued = HandoffEvent.objects.get(handoff=reopened, kind="escalated")
    assert requeued.created_at > first_escalation + timedelta(minutes=11)
    assert requeued.detail["reopened_from"] == str(handoff.pk)

    actions.claim_handoff(handoff_id=reopened.pk, user=sky)
    reopened.refresh_from_db()
    today = timezone.localdate()
    summary = metrics.escalation_summary(
        reopened.account_id, metrics.Window.last_days(7, today=today), now=timezone.now()
    )
    # Both hands' waits count from 12 minutes ago: the re-queued one waited 12 minutes.
    assert summary.counts.claimed == 2
    assert summary.time_to_claim.p90 >= 12 * 60 - 1
