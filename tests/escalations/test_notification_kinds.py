"""Notification kinds carry the handoff event names; the migration renames stored rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from escalations.models import NotificationKind

BEFORE = [("escalations", "0006_first_action_definition")]
AFTER = [("escalations", "0007_notification_kind_names")]


def test_every_kind_is_named_for_a_handoff_event():
    assert all(kind.startswith("handoff_") for kind in NotificationKind.values)
    assert all(name.startswith("HANDOFF_") for name in NotificationKind.names)


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_stored_kinds_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    seeded = _seed(old_apps, ["escalation_arrived", "escalation_claimed", "handoff_released"])

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    assert _kinds(new_apps, seeded) == ["handoff_escalated", "handoff_claimed", "handoff_released"]

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    assert _kinds(old_apps, seeded) == [
        "escalation_arrived",
        "escalation_claimed",
        "handoff_released",
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _seed(apps, kinds: list[str]) -> list[int]:
    Account = apps.get_model("resolutionflow", "Account")
    User = apps.get_model("resolutionflow", "User")
    Session = apps.get_model("flowpilot", "Session")
    Handoff = apps.get_model("escalations", "Handoff")
    Notification = apps.get_model("escalations", "Notification")
    account = Account.objects.create(name="Migrated")
    user = User.objects.create(username="migrated", account=account)
    session = Session.objects.create(account=account, owner=user, problem="p")
    handoff = Handoff.objects.create(account=account, session=session, escalated_by=user)
    return [
        Notification.objects.create(
            account=account, recipient=user, handoff=handoff, kind=kind, text=kind
        ).pk
        for kind in kinds
    ]


def _kinds(apps, ids: list[int]) -> list[str]:
    Notification = apps.get_model("escalations", "Notification")
    by_id = dict(Notification.objects.filter(pk__in=ids).values_list("pk", "kind"))
    return [by_id[pk] for pk in ids]
