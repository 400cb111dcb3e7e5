"""The escalation queue, its cards and previews, and the handoff screen."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from escalations import actions
from escalations.models import Handoff, HandoffView
from tests.conftest import api_body
from tests.escalations.conftest import HTMX, JSON, escalate, make_session

pytestmark = pytest.mark.django_db

QUEUE = "/escalations/"


def age(handoff, minutes):
    """Pretend ``handoff`` was escalated ``minutes`` ago."""
    Handoff.objects.filter(pk=handoff.pk).update(
        created_at=handoff.created_at - timedelta(minutes=minutes)
    )


@pytest.fixture
def three_waiting(tess):
    """Normal (oldest), high (newest) and low handoffs of tess."""
    normal = escalate(make_session(tess), urgency="normal", reason="normal one")
    high = escalate(make_session(tess), urgency="high", reason="high one")
    low = escalate(make_session(tess), urgency="low", reason="low one")
    older_high = escalate(make_session(tess), urgency="high", reason="older high one")
    age(normal, 30)
    age(high, 5)
    age(low, 60)
    age(older_high, 10)
    return {"normal": normal, "high": high, "low": low, "older_high": older_high}


def test_the_queue_puts_high_urgency_first_then_the_oldest(client_for, sam, three_waiting):
    response = client_for(sam).get(QUEUE, **JSON)
    assert response.status_code == 200
    reasons = [card["reason"] for card in response.json()["waiting"]]
    assert reasons == ["older high one", "high one", "normal one", "low one"]


def test_the_queue_card_shows_problem_escalator_steps_and_waiting_time(client_for, sam, handoff):
    age(handoff, 12)
    card = client_for(sam).get(QUEUE, **JSON).json()["waiting"][0]
    assert card["id"] == str(handoff.pk)
    assert card["problem"] == handoff.session.title
    assert card["escalated_by"] == {
        "id": handoff.escalated_by_id,
        "username": "tess",
        "name": "Tess Tran",
    }
    assert card["steps_tried"] == 2  # the untried task does not count
    assert 12 * 60 <= card["waiting_seconds"] < 13 * 60
    assert card["unread"] is True

    page = client_for(sam).get(QUEUE).content.decode()
    assert handoff.session.title in page
    assert "2 steps tried" in page
    assert "Tess Tran" in page
    assert "12\xa0minutes" in page


def test_every_senior_of_the_account_sees_it_and_nobody_escalates_to_themselves(
    client_for, sam, sky, ada, handoff
):
    own = escalate(make_session(sam), reason="sam's own")
    for user in (sky, ada):
        ids = {card["id"] for card in client_for(user).get(QUEUE, **JSON).json()["waiting"]}
        assert ids == {str(handoff.pk), str(own.pk)}
    ids = {card["id"] for card in client_for(sam).get(QUEUE, **JSON).json()["waiting"]}
    assert ids == {str(handoff.pk)}


def test_claimed_handoffs_leave_the_queue_for_recently_claimed(client_for, sky, claimed):
    body = client_for(sky).get(QUEUE, **JSON).json()
    assert body["waiting"] == []
    assert [(c["id"], c["claimed_by"]["name"]) for c in body["recently_claimed"]] == [
        (str(claimed.pk), "Sam Okafor")
    ]
    page = client_for(sky).get(QUEUE).content.decode()
    assert "Nothing is waiting" in page
    assert "Recently claimed" in page
    assert "Sam Okafor" in page


def test_technicians_get_the_403_page(client_for, tess, handoff):
    response = client_for(tess).get(QUEUE)
    assert response.status_code == 403
    assert handoff.session.title not in response.content.decode()
    assert api_body(client_for(tess).get(QUEUE, **JSON).json()) == {"error": "role"}


def test_another_accounts_queue_is_its_own(client_for, gwen, handoff, globex_handoff):
    ids = [card["id"] for card in client_for(gwen).get(QUEUE, **JSON).json()["waiting"]]
    assert ids == [str(globex_handoff.pk)]


def test_the_queue_makes_a_fixed_number_of_queries(client_for, sam, sky, tess):
    client = client_for(sam)
    client.get(QUEUE)  # warm the session

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(QUEUE).status_code == 200
        return len(queries)

    escalate(make_session(tess))
    few = count()
    for _ in range(6):
        escalate(make_session(tess, tried=3))
    claimed = escalate(make_session(tess))
    actions.claim_handoff(handoff_id=claimed.pk, user=sky)
    HandoffView.objects.create(handoff=claimed, user=sam)
    many = count()
    assert few == many
    # session, user, the account (top bar), waiting, recently claimed, the stream's event id
    assert many == 6


def test_the_queue_json_makes_a_fixed_number_of_queries(client_for, sam, tess):
    client = client_for(sam)
    for _ in range(5):
        escalate(make_session(tess))
    with CaptureQueriesContext(connection) as queries:
        client.get(QUEUE, **JSON)
    assert len(queries) == 4


def test_the_htmx_queue_refresh_renders_the_queue_body_only(client_for, sam, handoff):
    body = client_for(sam).get(QUEUE, **HTMX).content.decode()
    assert body.lstrip().startswith('<section class="queue-waiting" id="queue-body"')
    assert f'id="handoff-{handoff.pk}"' in body


def test_the_recent_fragment_lists_claims(client_for, sky, claimed):
    body = client_for(sky).get(reverse("escalations:queue_recent"), **HTMX).content.decode()
    assert body.lstrip().startswith('<section class="card recent-claims" id="recent-list"')
    assert "Sam Okafor" in body


def test_the_queue_page_connects_to_its_event_stream(client_for, sam):
    page = client_for(sam).get(QUEUE).content.decode()
    assert 'data-events-url="/escalations/events/"' in page
    assert 'data-stream-from="queue-' in page
    assert "js/queue.js" in page


def test_the_queue_page_has_the_analytics_card_slot_when_analytics_serves_it(client_for, sam):
    page = client_for(sam).get(QUEUE).content.decode()
    try:
        card_url = reverse("analytics:card")
    except NoReverseMatch:
        assert 'id="metric-card"' not in page
    else:
        assert f'hx-get="{card_url}"' in page
        assert 'hx-trigger="load, rf:first-action from:body"' in page


# --- unread dots, previews and cards -----------------------------------------------------------


def test_unopened_handoffs_have_an_unread_dot_until_previewed(client_for, sam, sky, handoff):
    client = client_for(sam)
    assert 'class="dot-unread"' in client.get(QUEUE).content.decode()

    preview = client.get(reverse("escalations:preview", args=[handoff.pk]), **HTMX)
    assert preview.status_code == 200
    assert "What was tried" in preview.content.decode()
    assert "Step 1" in preview.content.decode()

    assert 'class="dot-unread"' not in client.get(QUEUE).content.decode()
    assert 'class="dot-unread"' in client_for(sky).get(QUEUE).content.decode()


def test_opening_the_handoff_page_clears_the_dot_once(client_for, sam, handoff):
    client = client_for(sam)
    client.get(reverse("escalations:handoff", args=[handoff.pk]))
    client.get(reverse("escalations:handoff", args=[handoff.pk]))
    assert HandoffView.objects.filter(handoff=handoff, user=sam).count() == 1
    assert client.get(QUEUE, **JSON).json()["waiting"][0]["unread"] is False


def test_the_card_fragment_is_204_for_its_escalator(client_for, sam, sky):
    own = escalate(make_session(sam))
    card_url = reverse("escalations:card", args=[own.pk])
    assert client_for(sam).get(card_url, **HTMX).status_code == 204
    response = client_for(sky).get(card_url, **HTMX)
    assert response.status_code == 200
    assert f'id="handoff-{own.pk}"' in response.content.decode()


def test_cards_and_previews_of_another_account_are_404(client_for, gwen, handoff):
    client = client_for(gwen)
    for name in ("card", "preview"):
        assert client.get(reverse(f"escalations:{name}", args=[handoff.pk])).status_code == 404


def test_cards_and_previews_are_for_seniors(client_for, tess, handoff):
    client = client_for(tess)
    for name in ("card", "preview"):
        assert client.get(reverse(f"escalations:{name}", args=[handoff.pk])).status_code == 403


# --- the handoff screen ----------------------------------------------------------------------


def test_the_handoff_screen_shows_the_escalation_and_a_claim_button(client_for, sky, handoff):
    page = client_for(sky).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()
    assert handoff.session.title in page
    assert "Tess Tran" in page
    assert "Northwind HQ" in page and "LAPTOP-042" in page
    assert handoff.reason in page
    assert "What was tried" in page
    assert "Still prompts after reboot" in page  # an outcome
    assert "Not tried yet" not in page
    assert "Try clearing the credentials." in page  # the last messages
    claim_box = page[page.index('id="claim-box"') :]
    # The claim box claims it (the plain claim button, or the take-over forms built on it).
    assert (
        f'action="{reverse("escalations:claim", args=[handoff.pk])}"' in claim_box
        or f'action="/handoffs/{handoff.pk}/take-over"' in claim_box
    )


def test_the_handoff_screen_says_who_has_it_and_offers_release_to_the_claimer(
    client_for, sam, sky, claimed
):
    url = reverse("escalations:handoff", args=[claimed.pk])
    mine = client_for(sam).get(url).content.decode()
    assert "You have it" in mine
    assert "Release back to the queue" in mine
    assert "Mark resolved" in mine
    theirs = client_for(sky).get(url).content.decode()
    assert "Sam Okafor has it" in theirs
    assert "Release back to the queue" not in theirs
    assert f"/handoffs/{claimed.pk}/claim" not in theirs
    assert f"/handoffs/{claimed.pk}/take-over" not in theirs


def test_the_escalator_reads_the_handoff_but_cannot_act(client_for, tess, handoff):
    response = client_for(tess).get(reverse("escalations:handoff", args=[handoff.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "In the queue" in page
    assert f"/handoffs/{handoff.pk}/claim" not in page
    assert f"/handoffs/{handoff.pk}/take-over" not in page
    assert "Mark resolved" not in page
    assert not HandoffView.objects.exists()


def test_the_handoff_screen_is_404_for_other_accounts(client_for, gwen, gil, handoff):
    url = reverse("escalations:handoff", args=[handoff.pk])
    for user in (gwen, gil):
        assert client_for(user).get(url).status_code == 404
        assert api_body(client_for(user).get(url, **JSON).json()) == {"error": "not_found"}


def test_the_handoff_json_carries_the_package(client_for, sam, handoff):
    body = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk]), **JSON).json()
    assert body["id"] == str(handoff.pk)
    assert body["state"] == "open"
    assert body["escalation_package"]["handoff"] == str(handoff.pk)


def test_the_handoff_screen_makes_a_fixed_number_of_queries(client_for, sam, tess):
    client = client_for(sam)
    small = escalate(make_session(tess, tried=1))
    large = escalate(make_session(tess, tried=3))
    client.get(reverse("escalations:handoff", args=[small.pk]))

    def count(handoff) -> int:
        with CaptureQueriesContext(connection) as queries:
            client.get(reverse("escalations:handoff", args=[handoff.pk]))
        return len(queries)

    assert count(small) == count(large)


def _release_and_reclaim(handoff, *, releasers):
    """Claim and release ``handoff`` once per releaser; the last reopened one, claimed."""
    for releaser in releasers:
        actions.claim_handoff(handoff_id=handoff.pk, user=releaser)
        handoff = actions.release_handoff(handoff_id=handoff.pk, user=releaser)
    return handoff


def test_after_two_releases_the_timeline_still_starts_with_the_first_escalation(
    sam, sky, ada, handoff
):
    third = _release_and_reclaim(handoff, releasers=[sam, sky])
    actions.claim_handoff(handoff_id=third.pk, user=ada)

    from escalations.queries import history

    assert [(event.kind, event.actor.username) for event in history(third)] == [
        ("escalated", "tess"),
        ("claimed", "sam"),
        ("released", "sam"),
        ("escalated", "sam"),
        ("claimed", "sky"),
        ("released", "sky"),
        ("escalated", "sky"),
        ("claimed", "ada"),
    ]
    # An earlier handoff's screen tells its story up to its own end, not what came after.
    assert [event.kind for event in history(handoff)] == ["escalated", "claimed", "released"]


def test_the_handoff_screen_timeline_reads_the_whole_chain_in_fixed_queries(
    client_for, sam, sky, ada, tess
):
    client = client_for(ada)

    def count(releases: int) -> tuple[int, str]:
        handoff = _release_and_reclaim(
            escalate(make_session(tess)), releasers=[sam, sky][:releases]
        )
        url = reverse("escalations:handoff", args=[handoff.pk])
        client.get(url)  # first view: inserts the HandoffView
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        return len(queries), html

    one, _ = count(0)
    many, html = count(2)
    assert one == many
    timeline = html[html.index('id="handoff-timeline"') :]
    assert timeline.count("timeline-item timeline-escalated") == 3
    assert timeline.count("timeline-item timeline-released") == 2
