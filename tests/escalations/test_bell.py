"""The bell: unread count, recent notifications, open and mark read; fragment and JSON."""

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from escalations import actions
from escalations.models import Notification, NotificationKind
from flowpilot.models import Session
from resolutionflow.models import User

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
JSON = {"HTTP_ACCEPT": "application/json"}


def escalate(user, problem="Printers: every job stays queued"):
    session = Session.objects.create(account=user.account, owner=user, problem=problem)
    return actions.escalate(session=session, user=user, reason="Spooler restarted").handoff


def bell_json(client) -> dict:
    response = client.get(reverse("escalations:bell"), **JSON)
    assert response.status_code == 200
    return response.json()


def test_every_page_loads_the_bell_after_itself(client_for, sam):
    page = client_for(sam).get(reverse("flowpilot:sessions"))
    html = page.content.decode()
    assert 'hx-get="/notifications/"' in html
    # The stream is the htmx SSE extension's, and the bell refetches itself on its events.
    # It resumes where the person's channels stood at the render: nothing is missed.
    position = f"user-{sam.pk}%3A0%2Cqueue-{sam.account_id}%3A0"
    assert f'hx-ext="sse" sse-connect="/notifications/events/?lastEventId={position}"' in html
    assert 'hx-trigger="load, sse:notification, sse:handoff-claimed' in html
    assert "js/bell.js" in html
    assert "new EventSource" not in (settings.BASE_DIR / "static/js/bell.js").read_text()


def test_loading_the_bell_never_takes_the_toast_meant_for_the_next_page(client_for, tess):
    session = Session.objects.create(account=tess.account, owner=tess, problem="Scanner offline")
    client = client_for(tess)
    response = client.post(f"/flowpilot/sessions/{session.pk}/escalate", {"reason": "Stuck"})
    assert response.status_code == 303  # "Escalated — 3 seniors notified" waits for the next page

    # The bell of the page being left reloads in the background, an htmx GET.
    assert client.get(reverse("escalations:bell"), **HTMX).status_code == 200
    page = client.get(response["Location"])
    assert any(str(m).startswith("Escalated") for m in page.context["messages"])


def test_the_bell_shows_the_unread_count_and_the_recent_items(client_for, tess, sam):
    first = escalate(tess, "VPN drops every hour")
    escalate(tess, "Outlook asks for a password again")

    response = client_for(sam).get(reverse("escalations:bell"), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="bell-count" data-count="2"' in html
    assert "Tess Tran escalated: VPN drops every hour" in html
    assert "Tess Tran escalated: Outlook asks for a password again" in html
    notification = Notification.objects.get(recipient=sam, handoff=first)
    assert f'action="/notifications/{notification.pk}/read/"' in html
    assert f'data-url="/handoffs/{first.pk}/"' in html
    assert "Mark all read" in html


def test_the_bell_as_json(client_for, tess, sam):
    handoff = escalate(tess, "Scanner offline")
    data = bell_json(client_for(sam))
    assert data["unread"] == 1
    (item,) = data["notifications"]
    assert item["kind"] == NotificationKind.HANDOFF_ESCALATED
    assert item["handoff"] == str(handoff.pk)
    assert item["url"] == f"/handoffs/{handoff.pk}/"
    assert item["read"] is False
    assert item["text"] == "Tess Tran escalated: Scanner offline"


def test_an_empty_bell_says_so(client_for, sam):
    html = client_for(sam).get(reverse("escalations:bell"), **HTMX).content.decode()
    assert "No notifications yet." in html
    assert "bell-count" not in html


def test_the_bell_costs_the_same_queries_for_one_or_many_notifications(client_for, tess, sam):
    client = client_for(sam)
    escalate(tess, "one")
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("escalations:bell"), **HTMX)
    for n in range(12):
        escalate(tess, f"problem {n}")
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("escalations:bell"), **HTMX)
    # session, user, unread count, recent items, the handoffs a senior holds (top bar)
    assert len(one) == len(many) <= 5


def test_opening_an_item_marks_it_read_and_goes_to_the_handoff(client_for, tess, sam):
    handoff = escalate(tess)
    notification = Notification.objects.get(recipient=sam)
    url = reverse("escalations:notification_read", args=[notification.pk])

    response = client_for(sam).post(url, {"open": "1"})
    assert response.status_code == 303
    assert response["Location"] == f"/handoffs/{handoff.pk}/"
    notification.refresh_from_db()
    assert notification.read_at is not None

    htmx = client_for(sam).post(url, {"open": "1"}, **HTMX)
    assert htmx["HX-Redirect"] == f"/handoffs/{handoff.pk}/"


def test_the_escalator_hears_of_the_claim_and_can_open_the_read_only_handoff(client_for, tess, sam):
    handoff = escalate(tess)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    tess_client = client_for(tess)
    (item,) = bell_json(tess_client)["notifications"]
    assert item["kind"] == NotificationKind.HANDOFF_CLAIMED
    assert item["text"].startswith("Sam Okafor picked up your escalation")

    notification = Notification.objects.get(recipient=tess)
    url = reverse("escalations:notification_read", args=[notification.pk])
    response = tess_client.post(url, {"open": "1"}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain == [(f"/handoffs/{handoff.pk}/", 303)]


def test_a_release_rings_the_other_seniors(client_for, tess, sam, sky, ada):
    handoff = escalate(tess)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    actions.release_handoff(handoff_id=handoff.pk, user=sam)

    kinds = {
        user.username: [n["kind"] for n in bell_json(client_for(user))["notifications"]]
        for user in (sam, sky, ada)
    }
    assert kinds["sam"] == [NotificationKind.HANDOFF_ESCALATED]
    assert kinds["sky"] == [NotificationKind.HANDOFF_RELEASED, NotificationKind.HANDOFF_ESCALATED]
    assert kinds["ada"] == kinds["sky"]


def test_a_claim_answers_every_seniors_call_to_pick_it_up(client_for, tess, sam, sky, ada):
    handoff = escalate(tess)
    other = escalate(tess, "Another one, still waiting")
    assert bell_json(client_for(sky))["unread"] == 2

    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    sky_bell = bell_json(client_for(sky))
    assert sky_bell["unread"] == 1  # only the handoff nobody has yet
    outcomes = {
        item["handoff"]: (item["read"], item["outcome"]) for item in sky_bell["notifications"]
    }
    assert outcomes == {str(handoff.pk): (True, "Sam Okafor has it"), str(other.pk): (False, "")}
    sam_items = bell_json(client_for(sam))["notifications"]
    assert {item["handoff"]: item["outcome"] for item in sam_items}[
        str(handoff.pk)
    ] == "You have it"
    assert (
        'class="bell-outcome">Sam Okafor has it<'
        in client_for(ada).get(reverse("escalations:bell")).content.decode()
    )
    # The escalator's own item (who picked it up) is news, not answered by the claim.
    assert bell_json(client_for(tess))["unread"] == 1


def test_a_released_handoff_calls_again_until_someone_takes_it(client_for, tess, sam, sky):
    handoff = escalate(tess)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    back = actions.release_handoff(handoff_id=handoff.pk, user=sam)

    sky_bell = bell_json(client_for(sky))
    assert sky_bell["unread"] == 1
    latest, first = sky_bell["notifications"]
    assert (latest["kind"], latest["read"], latest["outcome"]) == ("handoff_released", False, "")
    assert (first["kind"], first["outcome"]) == ("handoff_escalated", "Released back to the queue")

    actions.claim_handoff(handoff_id=back.pk, user=sky)
    assert bell_json(client_for(sky))["unread"] == 0
    # tess was told it went back to the queue, and then who picked it up: both unread.
    assert bell_json(client_for(tess))["unread"] == 3


def test_mark_one_read_with_htmx_returns_the_fresh_bell(client_for, tess, sam):
    escalate(tess, "one")
    escalate(tess, "two")
    notification = Notification.objects.filter(recipient=sam).first()
    url = reverse("escalations:notification_read", args=[notification.pk])

    response = client_for(sam).post(url, **HTMX)
    assert response.status_code == 200
    assert 'data-count="1"' in response.content.decode()
    assert client_for(sam).post(url, **JSON).json()["unread"] == 1  # twice is fine


def test_mark_all_read(client_for, tess, sam, sky):
    escalate(tess, "one")
    escalate(tess, "two")
    response = client_for(sam).post(reverse("escalations:notifications_read_all"), **JSON)
    assert response.status_code == 200
    assert response.json()["unread"] == 0
    assert Notification.objects.filter(recipient=sam).unread().count() == 0
    # Only mine.
    assert Notification.objects.filter(recipient=sky).unread().count() == 2


def test_nobody_marks_someone_elses_notification(client_for, tess, sam, sky, gwen):
    escalate(tess)
    notification = Notification.objects.get(recipient=sam)
    url = reverse("escalations:notification_read", args=[notification.pk])
    for intruder in (sky, gwen, tess):
        assert client_for(intruder).post(url, {"open": "1"}).status_code == 404
    notification.refresh_from_db()
    assert notification.read_at is None


def test_wrong_methods_are_refused(client_for, tess, sam):
    escalate(tess)
    notification = Notification.objects.get(recipient=sam)
    client = client_for(sam)
    assert (
        client.get(reverse("escalations:notification_read", args=[notification.pk])).status_code
        == 405
    )
    assert client.get(reverse("escalations:notifications_read_all")).status_code == 405
    assert client.post(reverse("escalations:bell")).status_code == 405


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("escalations:bell"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_superuser_without_an_account_gets_an_empty_bell(client):
    root = User.objects.create_superuser("root", "root@example.com", "x")
    client.force_login(root)
    assert bell_json(client) == {"unread": 0, "notifications": []}


@pytest.mark.parametrize(
    "accept", ["text/html, application/json;q=0.5", "application/json;q=0, text/html"]
)
def test_the_bell_negotiates_json_like_every_other_view(client_for, sam, accept):
    response = client_for(sam).get(reverse("escalations:bell"), HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("text/html")
