"""Claiming a handoff: one conditional UPDATE decides; losers learn who won."""

import json

import pytest
from django.contrib.messages import get_messages
from django.db import IntegrityError, transaction
from django.urls import reverse

from escalations import actions
from escalations.models import (
    Handoff,
    HandoffEvent,
    HandoffState,
    Notification,
    NotificationKind,
)
from flowpilot.models import SessionStatus
from resolutionflow.models import OutboxEvent
from tests.conftest import api_body
from tests.escalations.conftest import HTMX, JSON, escalate, make_session

pytestmark = pytest.mark.django_db


def claim_url(handoff):
    return reverse("escalations:claim", args=[handoff.pk])


# --- the action ------------------------------------------------------------------------------


def test_a_claim_costs_the_same_statements_however_many_seniors_were_told(tess, sam):
    from collections import Counter

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from resolutionflow.models import Role, User

    def statements_of_a_claim() -> list[str]:
        handoff = escalate(make_session(tess))
        with CaptureQueriesContext(connection) as queries:
            actions.claim_handoff(handoff_id=handoff.pk, user=sam)
        return [query["sql"].split()[0] for query in queries.captured_queries]

    few = statements_of_a_claim()
    User.objects.bulk_create(
        User(username=f"eng{n}", account=tess.account, role=Role.ENGINEER) for n in range(20)
    )
    many = statements_of_a_claim()

    assert Counter(few) == Counter(many)
    # The conditional UPDATE, the read, the event, the session, the escalator's bell item,
    # all live events in one INSERT. (The seniors' "pick this up" items are answered by the
    # claim itself: nothing to write for them.) Counted, in whatever order they run.
    writes = Counter(s for s in many if s not in ("SAVEPOINT", "RELEASE"))
    assert writes == {"UPDATE": 2, "SELECT": 1, "INSERT": 3}


def test_an_engineer_claims_an_open_handoff(handoff, sam, session):
    claimed = actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    handoff.refresh_from_db()
    assert handoff.state == HandoffState.CLAIMED
    assert handoff.claimed_by == sam
    assert handoff.claimed_at is not None
    assert claimed.claimed_by == sam
    session.refresh_from_db()
    assert session.status == SessionStatus.ESCALATED
    assert session.escalated_to == sam


def test_a_claim_records_an_event_and_tells_the_escalator(handoff, sam, tess):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    assert list(
        HandoffEvent.objects.filter(handoff=handoff).values_list("kind", "actor__username")
    ) == [("escalated", "tess"), ("claimed", "sam")]
    notification = Notification.objects.get(kind=NotificationKind.HANDOFF_CLAIMED)
    assert notification.recipient == tess
    assert "Sam Okafor" in notification.text


def test_a_claim_is_announced_on_the_queue_and_the_handoff_channels(handoff, sam):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    events = OutboxEvent.objects.filter(event_type="handoff-claimed")
    assert {event.channel for event in events} == {
        f"queue-{handoff.account_id}",
        f"handoff-{handoff.pk}",
    }
    for event in events:
        assert event.data["handoff"] == str(handoff.pk)
        assert event.data["claimed_by"]["name"] == "Sam Okafor"


def test_the_second_claimer_is_told_who_won_and_the_loss_is_recorded(claimed, sky):
    with pytest.raises(actions.AlreadyClaimed) as lost:
        actions.claim_handoff(handoff_id=claimed.pk, user=sky)
    assert lost.value.handoff.claimed_by.name == "Sam Okafor"
    assert str(lost.value) == "Already picked up by Sam Okafor"
    loss = HandoffEvent.objects.get(handoff=claimed, kind="claim_lost")
    assert loss.actor == sky
    claimed.refresh_from_db()
    assert claimed.claimed_by.username == "sam"


def test_claiming_twice_by_the_winner_is_already_claimed_too(claimed, sam):
    with pytest.raises(actions.AlreadyClaimed):
        actions.claim_handoff(handoff_id=claimed.pk, user=sam)


def test_whoever_escalated_may_never_claim_it_even_as_an_engineer(sam):
    own = escalate(make_session(sam))
    with pytest.raises(actions.HandoffForbidden) as refused:
        actions.claim_handoff(handoff_id=own.pk, user=sam)
    assert refused.value.code == "own_handoff"
    own.refresh_from_db()
    assert own.state == HandoffState.OPEN


def test_a_technician_may_not_claim(handoff, tess):
    with pytest.raises(actions.HandoffForbidden) as refused:
        actions.claim_handoff(handoff_id=handoff.pk, user=tess)
    assert refused.value.code == "role"


def test_another_accounts_engineer_does_not_find_it(handoff, gwen):
    with pytest.raises(Handoff.DoesNotExist):
        actions.claim_handoff(handoff_id=handoff.pk, user=gwen)
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


@pytest.mark.parametrize("closing", ["release", "resolve"])
def test_a_closed_handoff_is_not_open_for_claims(claimed, sam, sky, closing):
    if closing == "release":
        actions.release_handoff(handoff_id=claimed.pk, user=sam)
    else:
        actions.resolve_handoff(handoff_id=claimed.pk, user=sam)
    with pytest.raises(actions.NotOpen) as refused:
        actions.claim_handoff(handoff_id=claimed.pk, user=sky)
    assert refused.value.handoff.state == ("released" if closing == "release" else "resolved")


def test_the_database_refuses_a_claimer_who_escalated(handoff, tess):
    with pytest.raises(IntegrityError), transaction.atomic():
        Handoff.objects.filter(pk=handoff.pk).update(
            state="claimed", claimed_by=tess, claimed_at=handoff.created_at
        )


def test_the_database_refuses_an_open_handoff_with_a_claimer(handoff, sam):
    with pytest.raises(IntegrityError), transaction.atomic():
        Handoff.objects.filter(pk=handoff.pk).update(claimed_by=sam)


# --- the view: JSON --------------------------------------------------------------------------


def test_json_claim_answers_200_with_the_claimer(client_for, sam, handoff):
    response = client_for(sam).post(claim_url(handoff), **JSON)
    assert response.status_code == 200
    assert api_body(response.json()) == {
        "status": "claimed",
        "handoff": str(handoff.pk),
        "claimed_by": {"id": sam.pk, "username": "sam", "name": "Sam Okafor"},
    }


def test_second_claimer_gets_409_with_winner_name(client_for, sky, claimed):
    response = client_for(sky).post(claim_url(claimed), **JSON)
    assert response.status_code == 409
    assert api_body(response.json()) == {
        "error": "already_claimed",
        "handoff": str(claimed.pk),
        "claimed_by": {"id": claimed.claimed_by_id, "username": "sam", "name": "Sam Okafor"},
    }


def test_json_claim_of_a_released_handoff_is_409_with_its_state(client_for, sam, sky, claimed):
    actions.release_handoff(handoff_id=claimed.pk, user=sam)
    response = client_for(sky).post(claim_url(claimed), **JSON)
    assert response.status_code == 409
    assert api_body(response.json()) == {
        "error": "not_open",
        "handoff": str(claimed.pk),
        "state": "released",
    }


def test_json_claim_of_a_resolved_handoff_is_409_with_its_state(client_for, ada, sky, handoff):
    actions.resolve_handoff(handoff_id=handoff.pk, user=ada)
    response = client_for(sky).post(claim_url(handoff), **JSON)
    assert response.status_code == 409
    assert response.json()["state"] == "resolved"


def test_json_claim_of_ones_own_handoff_is_403_own_handoff(client_for, sam):
    own = escalate(make_session(sam))
    response = client_for(sam).post(claim_url(own), **JSON)
    assert response.status_code == 403
    assert api_body(response.json()) == {"error": "own_handoff"}


def test_json_claim_by_a_technician_is_403_role(client_for, tess, handoff):
    response = client_for(tess).post(claim_url(handoff), **JSON)
    assert response.status_code == 403
    assert api_body(response.json()) == {"error": "role"}


def test_json_claim_from_another_account_is_404(client_for, gwen, handoff):
    response = client_for(gwen).post(claim_url(handoff), **JSON)
    assert response.status_code == 404
    assert api_body(response.json()) == {"error": "not_found"}
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


def test_json_claim_of_an_unknown_id_is_404(client_for, sam):
    url = reverse("escalations:claim", args=["7d3f3b3e-0000-4000-8000-000000000000"])
    assert client_for(sam).post(url, **JSON).status_code == 404


# --- the view: pages and htmx ----------------------------------------------------------------


def test_claim_by_get_is_405(client_for, sam, handoff):
    assert client_for(sam).get(claim_url(handoff)).status_code == 405
    handoff.refresh_from_db()
    assert handoff.state == HandoffState.OPEN


def test_a_technician_gets_the_403_page(client_for, tess, handoff):
    response = client_for(tess).post(claim_url(handoff))
    assert response.status_code == 403
    assert "<html" in response.content.decode()


def test_another_accounts_engineer_gets_the_404_page(client_for, gwen, handoff):
    assert client_for(gwen).post(claim_url(handoff)).status_code == 404


def test_the_htmx_winner_lands_on_the_handoff_screen(client_for, sam, handoff):
    response = client_for(sam).post(claim_url(handoff), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("escalations:handoff", args=[handoff.pk])


def test_a_plain_form_winner_is_redirected_to_the_handoff_screen(client_for, sam, handoff):
    response = client_for(sam).post(claim_url(handoff))
    assert response.status_code == 303
    assert response["Location"] == reverse("escalations:handoff", args=[handoff.pk])


def test_the_htmx_loser_gets_the_updated_card_and_a_toast_naming_the_winner(
    client_for, sky, claimed
):
    response = client_for(sky).post(
        claim_url(claimed), HTTP_HX_TARGET=f"handoff-{claimed.pk}", **HTMX
    )
    assert response.status_code == 200  # htmx 2 swaps only 2xx answers
    body = response.content.decode()
    assert f'id="handoff-{claimed.pk}"' in body
    assert "Picked up by <strong>Sam Okafor</strong>" in body
    assert "Claim</button>" not in body
    toasts = json.loads(response["HX-Trigger"])["messages"]
    assert toasts == [{"message": "Already picked up by Sam Okafor", "tags": "warning"}]


def test_the_htmx_loser_on_the_handoff_screen_gets_the_claim_box(client_for, sky, claimed):
    response = client_for(sky).post(claim_url(claimed), HTTP_HX_TARGET="claim-box", **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="claim-box"' in body
    assert "Sam Okafor has it" in body
    assert "Already picked up by Sam Okafor" in response["HX-Trigger"]
    # The rest of the screen follows out of band: state, "Waited", and the history.
    header = body[body.index('id="handoff-header" hx-swap-oob="true"') :]
    assert '<span class="pill pill-state-claimed">Claimed</span>' in header
    assert "<dt>Waited</dt>" in header
    timeline = body[body.index('id="handoff-timeline"') :]
    assert timeline.index('hx-swap-oob="true"') < timeline.index(">")
    assert "<strong>Claimed</strong> · Sam Okafor" in timeline


def test_an_open_handoff_screen_follows_a_claim_made_elsewhere(client_for, sky, handoff, sam):
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    # What the claim box asks for on the stream's handoff-claimed event.
    url = reverse("escalations:handoff", args=[handoff.pk])
    body = client_for(sky).get(url, HTTP_HX_TARGET="claim-box", **HTMX).content.decode()

    assert body.lstrip().startswith('<section class="card claim-box claim-box-claimed"')
    assert '<span class="pill pill-state-claimed">Claimed</span>' in body
    assert "<strong>Claimed</strong> · Sam Okafor" in body


def test_a_plain_form_loser_is_sent_to_the_handoff_with_a_message(client_for, sky, claimed):
    client = client_for(sky)
    response = client.post(claim_url(claimed))
    assert response.status_code == 303
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Already picked up by Sam Okafor"
    ]
