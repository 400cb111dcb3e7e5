"""Re-alerts of unclaimed handoffs: per-account thresholds, once per level, race-free.

The check takes its clock as an argument (``now=``): every test runs it at chosen moments
after the escalation instead of waiting.
"""

import threading
from datetime import timedelta

import pytest
from django.core import mail as django_mail
from django.db import connection
from django.urls import reverse

from escalations import actions, mail
from escalations.models import (
    EmailDelivery,
    EmailKind,
    Handoff,
    Notification,
    NotificationKind,
    RealertPolicy,
)
from resolutionflow.models import OutboxEvent
from tests.escalations.conftest import HTMX, escalate, make_session

pytestmark = pytest.mark.django_db

SETTINGS = "/escalations/re-alerts/"


def at(handoff, minutes, seconds=0):
    """The moment ``minutes`` after ``handoff`` was escalated."""
    return handoff.created_at + timedelta(minutes=minutes, seconds=seconds)


def overdue_items(**filters):
    return Notification.objects.filter(kind=NotificationKind.HANDOFF_OVERDUE, **filters)


def test_nothing_happens_before_the_threshold(tess):
    high = escalate(make_session(tess), urgency="high")
    told = actions.realert_overdue_handoffs(now=at(high, 4, 59))
    assert told.seniors == [] and told.admins == []
    assert not overdue_items().exists()


def test_past_the_threshold_the_seniors_are_told_once_with_one_email_each(tess, sam, sky, ada):
    handoff = escalate(make_session(tess, problem="Payroll share unreachable"), urgency="high")
    told = actions.realert_overdue_handoffs(now=at(handoff, 5))
    assert told.seniors == [handoff.pk] and told.admins == []
    items = overdue_items(handoff=handoff)
    assert sorted(items.values_list("recipient__username", flat=True)) == ["ada", "sam", "sky"]
    assert items.first().text == "Still unclaimed after 5\xa0minutes: Payroll share unreachable"
    emails = EmailDelivery.objects.filter(handoff=handoff, kind=EmailKind.OVERDUE)
    assert emails.count() == 3
    django_mail.outbox.clear()
    for delivery in emails:  # what the worker's task does with each row
        mail.deliver(delivery.pk)
    assert sorted(m.to[0] for m in django_mail.outbox) == [
        "ada@acme.example",
        "sam@acme.example",
        "sky@acme.example",
    ]
    assert all("Still unclaimed after 5" in m.subject for m in django_mail.outbox)
    handoff.refresh_from_db()
    assert handoff.overdue_at == at(handoff, 5)
    assert OutboxEvent.objects.filter(event_type="handoff-overdue").count() == 1

    # Idempotent: the next beat (and the one after) finds nothing to do at this level.
    again = actions.realert_overdue_handoffs(now=at(handoff, 6))
    assert again.seniors == [] and again.admins == []
    assert overdue_items(handoff=handoff).count() == 3


def test_past_twice_the_threshold_the_admins_are_told_once(tess, ada):
    handoff = escalate(make_session(tess), urgency="normal")
    actions.realert_overdue_handoffs(now=at(handoff, 15))
    told = actions.realert_overdue_handoffs(now=at(handoff, 30))
    assert told.seniors == [] and told.admins == [handoff.pk]
    assert overdue_items(handoff=handoff, recipient=ada).count() == 2
    admins = EmailDelivery.objects.filter(handoff=handoff, kind=EmailKind.ADMINS)
    assert list(admins.values_list("recipient__username", flat=True)) == ["ada"]
    assert actions.realert_overdue_handoffs(now=at(handoff, 90)).admins == []


def test_a_check_that_ran_late_tells_both_levels_in_one_run_and_each_person_once(tess, ada):
    handoff = escalate(make_session(tess), urgency="low")
    told = actions.realert_overdue_handoffs(now=at(handoff, 200))
    assert told.seniors == [handoff.pk] and told.admins == [handoff.pk]
    # The admins were among the seniors told: one bell item and one email, not two.
    assert overdue_items(handoff=handoff, recipient=ada).count() == 1
    emails = EmailDelivery.objects.filter(handoff=handoff, recipient=ada).exclude(
        kind=EmailKind.ARRIVED
    )
    assert list(emails.values_list("kind", flat=True)) == [EmailKind.OVERDUE]
    handoff.refresh_from_db()
    assert handoff.admins_alerted_at == at(handoff, 200)  # the level is done all the same


def test_a_released_handoff_is_realerted_from_its_release_not_its_first_escalation(tess, sam, sky):
    first = escalate(make_session(tess, problem="Payroll share unreachable"), urgency="high")
    actions.claim_handoff(handoff_id=first.pk, user=sam)
    back = actions.release_handoff(handoff_id=first.pk, user=sam)
    released_at = back.queued_at
    assert back.created_at == first.created_at  # its wait still counts from the start
    # An hour after the first escalation, a minute after the release: nobody is told.
    later = released_at + timedelta(minutes=1)
    told = actions.realert_overdue_handoffs(now=later)
    assert told.seniors == [] and told.admins == []
    # Past the threshold after the release, the seniors are told, in words that are true.
    told = actions.realert_overdue_handoffs(now=released_at + timedelta(minutes=5))
    assert told.seniors == [back.pk]
    item = overdue_items(handoff=back, recipient=sky).get()
    assert item.text == "Unclaimed 5\xa0minutes after a release: Payroll share unreachable"
    delivery = EmailDelivery.objects.get(handoff=back, recipient=sky, kind=EmailKind.OVERDUE)
    message = mail.build_message(delivery)
    assert message.subject.startswith("[Acme IT] Unclaimed 5 minutes after a release:")
    assert "released back to the queue and nobody has claimed it since" in message.body
    assert "Nobody has claimed it yet" not in message.body


def test_claimed_resolved_and_own_handoffs_are_never_realerted(tess, sam, sky, ada):
    claimed = escalate(make_session(tess), urgency="high")
    actions.claim_handoff(handoff_id=claimed.pk, user=sam)
    resolved = escalate(make_session(tess), urgency="high")
    actions.resolve_handoff(handoff_id=resolved.pk, user=ada, note="")
    told = actions.realert_overdue_handoffs(now=at(claimed, 60))
    assert told.seniors == [] and told.admins == []
    # The escalator is never told about their own handoff.
    own = escalate(make_session(sam), urgency="high")
    actions.realert_overdue_handoffs(now=at(own, 5))
    assert not overdue_items(handoff=own, recipient=sam).exists()
    assert overdue_items(handoff=own, recipient=sky).exists()


def test_each_account_uses_its_own_thresholds(tess, gil, ada):
    actions.set_realert_policy(user=ada, high=2, normal=30, low=120)
    acme = escalate(make_session(tess), urgency="normal")
    globex = escalate(make_session(gil), urgency="normal")
    Handoff.objects.filter(pk=globex.pk).update(created_at=acme.created_at)
    told = actions.realert_overdue_handoffs(now=at(acme, 15))
    assert told.seniors == [globex.pk]  # the default 15 minutes; Acme waits for 30
    told = actions.realert_overdue_handoffs(now=at(acme, 30))
    assert told.seniors == [acme.pk]


def test_the_card_says_overdue(client_for, tess, sam):
    handoff = escalate(make_session(tess), urgency="high")
    card = reverse("escalations:card", args=[handoff.pk])
    assert "Overdue" not in client_for(sam).get(card, **HTMX).content.decode()
    actions.realert_overdue_handoffs(now=at(handoff, 5))
    assert "pill-overdue" in client_for(sam).get(card, **HTMX).content.decode()
    # The bell item calls the senior to it, with both ways to take it over.
    bell = client_for(sam).get(reverse("escalations:bell"), **HTMX).content.decode()
    assert "Still unclaimed after 5" in bell
    assert bell.count(f'action="/handoffs/{handoff.pk}/take-over"') == 2  # both items


def test_the_beat_runs_the_check(tess):
    from resolutionflow.tasks import drain_outbox

    handoff = escalate(make_session(tess), urgency="high")
    Handoff.objects.filter(pk=handoff.pk).update(
        created_at=handoff.created_at - timedelta(minutes=6)
    )
    drain_outbox()
    handoff.refresh_from_db()
    assert handoff.overdue_at is not None
    assert overdue_items(handoff=handoff).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_check_at_once_tell_each_level_once(
    postgres_only, tess, sam, sky, ada
):
    handoffs = [escalate(make_session(tess), urgency="high") for _ in range(5)]
    moment = at(handoffs[-1], 11)  # past twice the threshold for all five
    barrier = threading.Barrier(2)
    results, failures = [None, None], []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = actions.realert_overdue_handoffs(now=moment)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    seniors = sorted(str(pk) for result in results for pk in result.seniors)
    admins = sorted(str(pk) for result in results for pk in result.admins)
    assert seniors == sorted(str(h.pk) for h in handoffs)  # each once, whoever told it
    assert admins == sorted(str(h.pk) for h in handoffs)
    for handoff in handoffs:
        # Past both levels at once: sam, sky and ada told once as seniors, whichever run won.
        assert overdue_items(handoff=handoff).count() == 3
        assert EmailDelivery.objects.filter(handoff=handoff, kind=EmailKind.OVERDUE).count() == 3
        assert not EmailDelivery.objects.filter(handoff=handoff, kind=EmailKind.ADMINS).exists()


def test_a_run_that_saw_only_the_seniors_level_leaves_the_admins_level_to_a_later_one(
    tess, sam, sky, ada
):
    handoff = escalate(make_session(tess), urgency="normal")
    # One run's clock was at 29 minutes (seniors due), another's at 31 (both due); the
    # first wins the seniors' level, so the second tells the admins as their own level.
    assert actions.realert_overdue_handoffs(now=at(handoff, 29)).seniors == [handoff.pk]
    told = actions.realert_overdue_handoffs(now=at(handoff, 31))
    assert told.seniors == [] and told.admins == [handoff.pk]
    assert overdue_items(handoff=handoff, recipient=ada).count() == 2
    assert EmailDelivery.objects.filter(handoff=handoff, kind=EmailKind.ADMINS).count() == 1


# --- the admins' settings page ------------------------------------------------------------------


def test_an_admin_sees_the_defaults_and_sets_the_thresholds(client_for, ada):
    client = client_for(ada)
    page = client.get(SETTINGS).content.decode()
    for name, value in (("high", 5), ("normal", 15), ("low", 60)):
        assert f'name="{name}" id="id_{name}" value="{value}"' in page
    response = client.post(SETTINGS, {"high": "3", "normal": "10", "low": "45"})
    assert response.status_code == 303
    policy = RealertPolicy.objects.get(account=ada.account)
    assert policy.minutes() == {"high": 3, "normal": 10, "low": 45}
    assert 'value="3"' in client.get(SETTINGS).content.decode()


def test_bad_thresholds_are_explained_and_what_was_typed_stays(client_for, ada):
    response = client_for(ada).post(SETTINGS, {"high": "0", "normal": "ten", "low": "99999"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "High urgency: at least 1 minute." in page
    assert "Normal urgency: a whole number of minutes." in page
    assert "Low urgency: at most 10,080 minutes (a week)." in page
    assert 'value="ten"' in page and 'value="99999"' in page
    assert not RealertPolicy.objects.exists()


def test_only_admins_set_thresholds(client_for, sam, tess):
    for user in (sam, tess):
        assert client_for(user).get(SETTINGS).status_code == 403
        assert (
            client_for(user).post(SETTINGS, {"high": 1, "normal": 1, "low": 1}).status_code == 403
        )
    assert not RealertPolicy.objects.exists()


def test_an_admin_sets_only_their_own_accounts_thresholds(client_for, ada, gil):
    client_for(ada).post(SETTINGS, {"high": "1", "normal": "2", "low": "3"})
    assert actions.realert_minutes(gil.account_id) == {"high": 5, "normal": 15, "low": 60}


def test_the_settings_page_takes_get_and_post_only(client_for, ada):
    assert client_for(ada).put(SETTINGS).status_code == 405
