"""The Django admin of escalations: read-only, except an email delivery's address.

Handoffs, their history, who saw them and the bell are written by the handoff manager only.
"""

import pytest
from django.urls import reverse

from escalations import actions
from escalations.models import (
    EmailDelivery,
    EmailState,
    Handoff,
    HandoffEvent,
    HandoffView,
    Notification,
)

pytestmark = pytest.mark.django_db


def admin_url(model, action: str, *args) -> str:
    return reverse(f"admin:escalations_{model._meta.model_name}_{action}", args=args)


@pytest.fixture
def seen(handoff, sam) -> HandoffView:
    actions.mark_handoff_seen(handoff=handoff, user=sam)
    return HandoffView.objects.get(handoff=handoff, user=sam)


@pytest.mark.parametrize("model", [Notification, HandoffView, HandoffEvent])
def test_notifications_views_and_events_are_read_only(admin_client, handoff, seen, model):
    row = model.objects.filter(handoff=handoff).first()
    assert admin_client.get(admin_url(model, "change", row.pk)).status_code == 200
    assert admin_client.post(admin_url(model, "change", row.pk), {}).status_code == 403
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    delete = admin_url(model, "delete", row.pk)
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=row.pk).exists()


def test_the_handoff_page_cannot_add_events(admin_client, handoff):
    page = admin_client.get(admin_url(Handoff, "change", handoff.pk)).content.decode()
    assert 'name="events-MAX_NUM_FORMS" value="0"' in page
    assert 'name="events-0-kind"' not in page


def test_an_email_deliverys_address_can_be_fixed_and_nothing_else(admin_client, handoff, sam):
    row = EmailDelivery.objects.get(handoff=handoff, recipient=sam)
    EmailDelivery.objects.filter(pk=row.pk).update(state=EmailState.FAILED, attempts=6)
    page = admin_client.get(admin_url(EmailDelivery, "change", row.pk)).content.decode()
    assert 'name="address"' in page
    assert 'name="state"' not in page and 'name="recipient"' not in page

    response = admin_client.post(
        admin_url(EmailDelivery, "change", row.pk),
        {"address": "sam.okafor@acme.example", "state": EmailState.SENT, "attempts": "0"},
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.address == "sam.okafor@acme.example"
    assert (row.state, row.attempts) == (EmailState.FAILED, 6)
    assert admin_client.get(admin_url(EmailDelivery, "add")).status_code == 403
