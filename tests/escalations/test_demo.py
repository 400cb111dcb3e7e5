"""The demo data: a live queue for Acme and weeks of history, made once."""

import io

import pytest
from django.core.management import call_command

from escalations import actions
from escalations.models import Handoff, HandoffEvent
from escalations.queries import recently_claimed, waiting_queue

pytestmark = pytest.mark.django_db


def test_the_demo_fills_acmes_queue_and_history_once(settings, personas):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    sam = personas["sam"]

    waiting = waiting_queue(sam)
    assert len(waiting) == 2
    assert waiting[0].urgency == "high"
    recent = recently_claimed(sam)
    assert recent[0].claimed_by.username == "sky"
    assert recent[0].first_action_at is not None
    history = Handoff.objects.filter(account_id=sam.account_id, state="resolved")
    assert history.count() >= 20
    # Minute-scale, realistic: claimed within the hour, acted on within minutes.
    for handoff in history:
        assert 0 < (handoff.claimed_at - handoff.created_at).total_seconds() < 3600
        assert 0 < (handoff.first_action_at - handoff.claimed_at).total_seconds() < 1800
    # Every transition has its event, at the rewritten time.
    for handoff in history[:5]:
        claimed = HandoffEvent.objects.get(handoff=handoff, kind="claimed")
        assert claimed.created_at == handoff.claimed_at
    assert Handoff.objects.filter(state="released").exists()
    reopened = Handoff.objects.filter(reopened_from__isnull=False)
    assert all(h.queued_at and h.created_at < h.queued_at <= h.claimed_at for h in reopened)
    # The waiting ones were re-alerted back then: starting the app sends no burst of
    # "still unclaimed" emails, and the card still says "Overdue".
    assert waiting[0].overdue_at is not None
    told = actions.realert_overdue_handoffs()
    assert told.seniors == [] and told.admins == []

    count = Handoff.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    assert Handoff.objects.count() == count
