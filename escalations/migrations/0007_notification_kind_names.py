"""Notification kinds are named like the handoff events: handoff_escalated, handoff_claimed,
handoff_released, handoff_resolved (escalation_arrived and escalation_claimed before)."""

from django.db import migrations, models

RENAMED = {
    "escalation_arrived": "handoff_escalated",
    "escalation_claimed": "handoff_claimed",
}


def rename_kinds(apps, schema_editor):
    Notification = apps.get_model("escalations", "Notification")
    for old, new in RENAMED.items():
        Notification.objects.filter(kind=old).update(kind=new)


def restore_kinds(apps, schema_editor):
    Notification = apps.get_model("escalations", "Notification")
    for old, new in RENAMED.items():
        Notification.objects.filter(kind=new).update(kind=old)


class Migration(migrations.Migration):
    dependencies = [
        ("escalations", "0006_first_action_definition"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="kind",
            field=models.CharField(
                choices=[
                    ("handoff_escalated", "An escalation arrived"),
                    ("handoff_claimed", "Your escalation was picked up"),
                    ("handoff_released", "A handoff was released back"),
                    ("handoff_resolved", "Your escalation was resolved"),
                ],
                max_length=30,
            ),
        ),
        migrations.RunPython(rename_kinds, restore_kinds),
    ]
