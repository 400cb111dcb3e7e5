"""The escalation queue, its cards and previews, and the handoff screen."""

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from escalations import actions, queries
from escalations.models import Handoff, HandoffView
from flowpilot.models import Task
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
    Task.objects.create(session=handoff.session, title="Not for this PC", status="skipped")
    card = client_for(sam).get(QUEUE, **JSON).json()["waiting"][0]
    assert card["id"] == str(handoff.pk)
    assert card["problem"] == handoff.session.title
    assert card["escalated_by"] == {
        "id": handoff.escalated_by_id,
        "username": "tess",
        "name": "Tess Tran",
    }
    assert card["steps_tried"] == 2  # neither the untried nor the skipped task counts
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
    # session, user, the account (top bar), the first page of waiting (all of them: their
    # total is its length), the "Escalated by" choices, recently claimed, my handoffs, the
    # positions of the queue's stream and of the bell's
    assert many == 9


def test_a_queue_longer_than_its_window_counts_its_total_in_one_more_query(client_for, sam, tess):
    client = client_for(sam)
    for _ in range(3):
        escalate(make_session(tess))
    client.get(QUEUE)  # warm the session
    with CaptureQueriesContext(connection) as queries:
        page = client.get(QUEUE, {"size": 2}).content.decode()
    assert page.count('class="handoff-card ') == 2
    assert 'id="waiting-count" aria-label="3 waiting"' in page
    assert len(queries) == 10


def test_the_queue_json_makes_a_fixed_number_of_queries(client_for, sam, tess):
    client = client_for(sam)
    for _ in range(5):
        escalate(make_session(tess))
    with CaptureQueriesContext(connection) as queries:
        client.get(QUEUE, **JSON)
    # session, user, the first page of waiting (all of them: their total is its length),
    # recently claimed
    assert len(queries) == 4


def test_the_htmx_queue_refresh_renders_the_queue_body_only(client_for, sam, handoff):
    body = client_for(sam).get(QUEUE, **HTMX).content.decode()
    assert body.lstrip().startswith('<section class="queue-waiting" id="queue-body"')
    assert f'id="handoff-{handoff.pk}"' in body


def test_the_recent_fragment_lists_claims(client_for, sky, claimed):
    body = client_for(sky).get(reverse("escalations:queue_recent"), **HTMX).content.decode()
    assert body.lstrip().startswith('<section class="card recent-claims" id="recent-list"')
    assert "Sam Okafor" in body


def test_the_queue_page_connects_to_its_event_stream_declaratively(client_for, sam):
    page = client_for(sam).get(QUEUE).content.decode()
    # The htmx SSE extension holds the stream, resuming from the event id of the render.
    stream = f"/escalations/events/?lastEventId=queue-{sam.account_id}%3A"
    assert f'hx-ext="sse"\n     sse-connect="{stream}' in page
    assert "new EventSource" not in (settings.BASE_DIR / "static/js/queue.js").read_text()
    # The waiting section and the recent claims refetch themselves on the queue's events.
    assert 'hx-trigger="sse:handoff-escalated, sse:handoff-released, sse:handoff-claimed' in page
    assert 'hx-get="/escalations/recent/" hx-trigger="sse:handoff-claimed' in page


def test_the_queue_page_has_the_analytics_card_slot_when_analytics_serves_it(client_for, sam):
    page = client_for(sam).get(QUEUE).content.decode()
    try:
        card_url = reverse("analytics:card")
    except NoReverseMatch:
        assert 'id="metric-card"' not in page
    else:
        assert f'hx-get="{card_url}"' in page
        assert 'hx-trigger="load, sse:first-action"' in page


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
    tried = page[page.index('id="handoff-tried"') : page.index('class="tried-lane"')]
    assert "Still prompts after reboot" in tried
    assert "Not tried yet" not in tried  # to-do steps only in the full lane, a click away
    lane = page[page.index('class="tried-lane"') :]
    lane = lane[: lane.index("</details>")]
    assert "Not tried yet" in lane
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


def test_the_handoff_screen_reads_the_top_bars_account_with_the_handoff(client_for, sam, tess):
    client = client_for(sam)
    handoff = escalate(make_session(tess, tried=2))
    url = reverse("escalations:handoff", args=[handoff.pk])
    client.get(url)  # first view: inserts the HandoffView
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url).content.decode()
    # The session and the user (middleware), the handoff with its session, people and
    # account, the HandoffView insert, the lane, the last messages, the history, and where
    # the screen's stream and the bell's stand (they resume from the render).
    assert len(queries) == 9
    assert not [q for q in queries if q["sql"].startswith('SELECT "resolutionflow_account"')]
    assert f'title="Account">{sam.account.name}</span>' in page


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


# --- a queue that costs the same at any size: pages, filters, search, live window --------------


def _same_moment(handoffs, *, minutes_ago=20):
    """Give every handoff one created_at: only the id tells their order apart."""
    moment = handoffs[0].created_at - timedelta(minutes=minutes_ago)
    Handoff.objects.filter(pk__in=[h.pk for h in handoffs]).update(created_at=moment)


def _window(page: str) -> dict[str, str]:
    """The parameters a live refresh sends (the hidden inputs of #queue-window)."""
    block = re.search(r'<div id="queue-window" hidden>(.*?)</div>', page).group(1)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', block))


def _ids(cards):
    return [card["id"] for card in cards]


def test_show_more_pages_through_ties_on_the_sort_key_without_gaps_or_repeats(
    client_for, sam, tess, monkeypatch
):
    monkeypatch.setattr(queries, "QUEUE_PAGE_SIZE", 3)
    tied = [escalate(make_session(tess), urgency="normal") for _ in range(7)]
    _same_moment(tied)
    high = escalate(make_session(tess), urgency="high")
    low = escalate(make_session(tess), urgency="low")
    client = client_for(sam)

    seen, after, pages = [], None, 0
    while True:
        body = client.get(QUEUE, {"after": after} if after else {}, **JSON).json()
        pages += 1
        assert len(body["waiting"]) <= 3
        assert body["total"] == 9
        seen += _ids(body["waiting"])
        after = body["next"]
        if after is None:
            break
    assert pages == 3
    expected = [str(high.pk), *sorted(str(h.pk) for h in tied), str(low.pk)]
    # Every card once, in one total order: urgency, then age, then id for the ties.
    assert [s for s in seen if s in expected] == seen
    assert sorted(seen) == sorted(expected)
    assert seen[0] == str(high.pk) and seen[-1] == str(low.pk)
    tied_order = seen[1:-1]
    assert tied_order == sorted(tied_order, key=lambda pk: uuid.UUID(pk))


def test_the_html_show_more_appends_the_next_cards_and_its_own_button(
    client_for, sam, tess, monkeypatch
):
    monkeypatch.setattr(queries, "QUEUE_PAGE_SIZE", 2)
    handoffs = [escalate(make_session(tess)) for _ in range(5)]
    for minutes, handoff in zip((50, 40, 30, 20, 10), handoffs, strict=True):
        age(handoff, minutes)
    client = client_for(sam)
    page = client.get(QUEUE).content.decode()
    assert page.count('class="handoff-card ') == 2
    assert 'id="waiting-count" aria-label="5 waiting"' in page
    more_url = re.search(r'hx-get="(/escalations/\?after=[^"]+)"', page).group(1)

    fragment = client.get(html.unescape(more_url), **HTMX).content.decode()
    ids = re.findall(r'id="handoff-([0-9a-f-]+)"', fragment)
    assert ids == [str(handoffs[2].pk), str(handoffs[3].pk)]
    assert 'id="queue-more"' in fragment and "Show more" in fragment
    last = re.search(r'hx-get="(/escalations/\?after=[^"]+)"', fragment).group(1)
    end = client.get(html.unescape(last), **HTMX).content.decode()
    assert re.findall(r'id="handoff-([0-9a-f-]+)"', end) == [str(handoffs[4].pk)]
    assert "Show more" not in end


def test_the_page_reads_a_bounded_number_of_rows_however_many_wait(
    client_for, sam, tess, monkeypatch
):
    monkeypatch.setattr(queries, "QUEUE_PAGE_SIZE", 2)
    for _ in range(6):
        escalate(make_session(tess))
    body = client_for(sam).get(QUEUE, **JSON).json()
    assert len(body["waiting"]) == 2
    assert body["total"] == 6
    page = client_for(sam).get(QUEUE).content.decode()
    assert page.count('class="handoff-card ') == 2


def test_filters_by_urgency_customer_and_escalator(client_for, sam, sky, tess, ada):
    northwind = escalate(make_session(tess, customer="Northwind HQ"), urgency="high")
    contoso = escalate(make_session(tess, customer="Contoso Depot"), urgency="normal")
    by_ada = escalate(make_session(ada, customer="Northwind Annex"), urgency="normal")
    client = client_for(sam)

    def ids(**params):
        body = client.get(QUEUE, params, **JSON).json()
        assert body["total"] == len(body["waiting"])
        return set(_ids(body["waiting"]))

    assert ids() == {str(northwind.pk), str(contoso.pk), str(by_ada.pk)}
    assert ids(urgency="high") == {str(northwind.pk)}
    assert ids(customer="northwind") == {str(northwind.pk), str(by_ada.pk)}
    assert ids(escalated_by=ada.pk) == {str(by_ada.pk)}
    assert ids(customer="northwind", urgency="normal") == {str(by_ada.pk)}
    assert ids(escalated_by=sky.pk) == set()

    page = client.get(QUEUE, {"customer": "Contoso"}).content.decode()
    assert f'id="handoff-{contoso.pk}"' in page
    assert f'id="handoff-{northwind.pk}"' not in page
    assert 'value="Contoso"' in page  # what was typed stays
    assert "matching the filters" in page


def test_search_reads_the_problem_and_the_reason(client_for, sam, tess):
    printer = escalate(make_session(tess, problem="Printer on floor 3 jams\nEvery page"))
    vpn = escalate(make_session(tess, problem="Cannot connect"), reason="The VPN client hangs")
    client = client_for(sam)

    def found(text):
        return set(_ids(client.get(QUEUE, {"q": text}, **JSON).json()["waiting"]))

    assert found("printer") == {str(printer.pk)}
    assert found("vpn   CLIENT") == {str(vpn.pk)}  # case and spaces do not matter
    assert found("every page") == {str(printer.pk)}  # beyond the title's first line
    assert found("fax") == set()
    page = client.get(QUEUE, {"q": "fax"}).content.decode()
    assert "Nothing waiting matches" in page


def test_bad_filter_values_say_so_in_the_page_and_keep_what_was_typed(client_for, sam, handoff):
    client = client_for(sam)
    response = client.get(QUEUE, {"urgency": "urgent!!", "q": "x" * 201, "customer": "North"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose low, normal or high." in page
    assert "Search: at most 200 characters." in page
    assert 'value="North"' in page
    assert f'id="handoff-{handoff.pk}"' in page  # the valid filter still applies
    assert client.get(QUEUE, {"customer": "Contoso"}, **JSON).json()["total"] == 0


@pytest.mark.parametrize(
    "cursor", ["garbage", "9.1.abc", "1.-5.00000000000000000000000000000000", "1.99.zz", ""]
)
def test_a_forged_show_more_position_is_a_message_or_a_json_400_never_a_500(
    client_for, sam, handoff, cursor
):
    client = client_for(sam)
    page = client.get(QUEUE, {"after": cursor})
    assert page.status_code == 200
    if cursor:
        assert "That place in the queue is not valid any more" in page.content.decode()
        response = client.get(QUEUE, {"after": cursor}, **JSON)
        assert response.status_code == 400
        assert "after" in response.json()["errors"]
    assert f'id="handoff-{handoff.pk}"' in page.content.decode()


def test_a_live_refresh_keeps_arrivals_beyond_the_window_out_of_view_but_counts_them(
    client_for, sam, tess, monkeypatch
):
    monkeypatch.setattr(queries, "QUEUE_PAGE_SIZE", 2)
    first, second, third = (escalate(make_session(tess)) for _ in range(3))
    for minutes, handoff in zip((30, 20, 10), (first, second, third), strict=True):
        age(handoff, minutes)
    client = client_for(sam)
    page = client.get(QUEUE).content.decode()
    window = _window(page)
    assert set(window) == {"through"}

    late = escalate(make_session(tess), urgency="normal")  # newest: beyond the window
    urgent = escalate(make_session(tess), urgency="high")  # first in line: in view
    fragment = client.get(QUEUE, window, **HTMX).content.decode()
    ids = re.findall(r'id="handoff-([0-9a-f-]+)"', fragment)
    assert ids == [str(urgent.pk), str(first.pk), str(second.pk)]
    assert str(late.pk) not in fragment
    assert 'aria-label="5 waiting"' in fragment
    assert "Show more" in fragment  # where the late one appears


def test_a_live_refresh_of_the_whole_queue_shows_new_arrivals_at_the_end(client_for, sam, tess):
    first = escalate(make_session(tess))
    age(first, 10)
    page = client_for(sam).get(QUEUE).content.decode()
    window = _window(page)
    assert window == {"size": "50"}
    late = escalate(make_session(tess))
    fragment = client_for(sam).get(QUEUE, window, **HTMX).content.decode()
    assert re.findall(r'id="handoff-([0-9a-f-]+)"', fragment) == [str(first.pk), str(late.pk)]


def test_a_live_refresh_shows_a_card_just_picked_up_with_who_took_it(client_for, sam, sky, tess):
    handoff = escalate(make_session(tess))
    actions.claim_handoff(handoff_id=handoff.pk, user=sky)
    fragment = client_for(sam).get(QUEUE, {"size": "50"}, **HTMX).content.decode()
    assert "Picked up by <strong>Sky Lindqvist</strong>" in fragment
    assert 'aria-label="0 waiting"' in fragment
    # After a few seconds it is no longer shown.
    Handoff.objects.filter(pk=handoff.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=queries.JUST_PICKED_UP_SECONDS + 1)
    )
    assert "Picked up by" not in client_for(sam).get(QUEUE, **HTMX).content.decode()


def test_the_live_window_keeps_the_filters(client_for, sam, tess):
    escalate(make_session(tess, customer="Contoso"))
    page = client_for(sam).get(QUEUE, {"customer": "Contoso", "urgency": "normal"}).content
    window = _window(page.decode())
    assert window == {"customer": "Contoso", "urgency": "normal", "size": "50"}


# --- my handoffs -------------------------------------------------------------------------------


def test_my_handoffs_lists_the_seniors_live_claims_first(client_for, sam, sky, tess):
    mine = [escalate(make_session(tess, problem=f"Mine {n}")) for n in range(3)]
    for handoff in mine:
        actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    theirs = escalate(make_session(tess, problem="Sky's one"))
    actions.claim_handoff(handoff_id=theirs.pk, user=sky)
    done = escalate(make_session(tess, problem="Resolved one"))
    actions.claim_handoff(handoff_id=done.pk, user=sam)
    actions.resolve_handoff(handoff_id=done.pk, user=sam, note="")

    page = client_for(sam).get(QUEUE).content.decode()
    section = page[page.index('id="my-handoffs"') : page.index('id="queue-filters"')]
    assert 'aria-label="3 yours"' in section
    for handoff in mine:
        assert f'href="/flowpilot/sessions/{handoff.session_id}/"' in section
    assert "Sky&#x27;s one" not in section and "Resolved one" not in section
    assert section.count("pill-escalated") == 3

    fragment = client_for(sky).get(reverse("escalations:queue_mine"), **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section class="card my-handoffs" id="my-handoffs"')
    assert "Sky&#x27;s one" in fragment and "Mine 0" not in fragment


def test_my_handoffs_is_hidden_without_claims_and_for_seniors_only(client_for, ada, tess):
    page = client_for(ada).get(QUEUE).content.decode()
    assert 'id="my-handoffs" aria-labelledby="mine-title" hidden' in page
    assert client_for(tess).get(reverse("escalations:queue_mine")).status_code == 403


def test_the_bell_carries_the_count_of_my_handoffs_for_the_top_bar(client_for, sam, tess):
    for _ in range(2):
        actions.claim_handoff(handoff_id=escalate(make_session(tess)).pk, user=sam)
    bell = client_for(sam).get(reverse("escalations:bell"), **HTMX).content.decode()
    assert '<span class="nav-count" id="nav-claims" hx-swap-oob="true"' in bell
    # Labelled, so it does not read as the number waiting in the queue.
    assert '2<span class="nav-count-label">yours</span>' in bell
    assert 'title="2 handoffs you hold"' in bell
    # Technicians hold none: no count rides along.
    assert (
        "nav-claims"
        not in client_for(tess).get(reverse("escalations:bell"), **HTMX).content.decode()
    )


def test_the_chat_sidebar_lists_the_sessions_a_senior_took_over(client_for, sam, tess):
    handoff = escalate(make_session(tess, problem="Printer jams on tray 2"))
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    page = client_for(sam).get(reverse("flowpilot:session", args=[handoff.session_id]))
    html_ = page.content.decode()
    claims = html_[html_.index('id="sidebar-claims-title"') : html_.index('id="sidebar-title"')]
    assert "Printer jams on tray 2" in claims
    assert '<span class="pill pill-escalated">Escalated</span>' in claims
    own = client_for(tess).get(reverse("flowpilot:session", args=[handoff.session_id]))
    assert "sidebar-claims-title" not in own.content.decode()
