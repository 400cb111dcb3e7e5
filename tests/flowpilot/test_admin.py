"""The Django admin of FlowPilot: it reads sessions, messages and tasks, never reassigns them.

Who owns a session, its status and who it is escalated to belong to FlowPilot and the handoff
manager; an edit here would skip the queue and its checks (a claimer of another account).
"""

import pytest
from django.urls import reverse

from flowpilot.models import Message, MessageRole, Session, SessionStatus, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(tess):
    session = Session.objects.create(account=tess.account, owner=tess, problem="Printer jams")
    Task.objects.create(session=session, position=1, title="Open tray 2", created_by=tess)
    Message.objects.create(session=session, role=MessageRole.USER, author=tess, body="Help")
    return session


def change_url(obj) -> str:
    return reverse(f"admin:flowpilot_{obj._meta.model_name}_change", args=[obj.pk])


def test_a_session_edit_keeps_its_account_owner_status_and_claimer(
    admin_client, session, sam, gwen
):
    page = admin_client.get(change_url(session)).content.decode()
    for field in ("account", "owner", "status", "escalated_to"):
        assert f'name="{field}"' not in page, field
    assert 'name="problem"' in page  # the wording may still be corrected

    response = admin_client.post(
        change_url(session),
        {
            "problem": "Printer jams on tray 2",
            "customer": "",
            "device": "",
            "account": gwen.account_id,
            "owner": sam.pk,
            "status": SessionStatus.ESCALATED,
            "escalated_to": gwen.pk,
            "tasks-TOTAL_FORMS": "1",
            "tasks-INITIAL_FORMS": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    session.refresh_from_db()
    assert session.problem == "Printer jams on tray 2"
    assert (session.account_id, session.owner_id) == (session.owner.account_id, session.owner.pk)
    assert (session.status, session.escalated_to) == (SessionStatus.ACTIVE, None)


def test_the_task_inline_is_read_only(admin_client, session):
    page = admin_client.get(change_url(session)).content.decode()
    assert "Open tray 2" in page
    assert 'name="tasks-0-title"' not in page
    assert 'name="tasks-0-DELETE"' not in page
    assert 'name="tasks-MAX_NUM_FORMS" value="0"' in page  # nothing can be added


def test_sessions_are_not_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:flowpilot_session_add")).status_code == 403


@pytest.mark.parametrize("model", [Message, Task])
def test_messages_and_tasks_are_read_only(admin_client, session, model):
    row = model.objects.get(session=session)
    name = model._meta.model_name
    assert admin_client.get(change_url(row)).status_code == 200  # readable
    response = admin_client.post(change_url(row), {"title": "Hacked", "body": "Hacked"})
    assert response.status_code == 403
    assert admin_client.get(reverse(f"admin:flowpilot_{name}_add")).status_code == 403
    delete = reverse(f"admin:flowpilot_{name}_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=row.pk).exists()
