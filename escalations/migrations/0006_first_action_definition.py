"""Time to first action that cannot flatter, and waits that survive a release (issue 15).

Schema: how the claimer took the handoff over (``takeover_mode``) and the first action's
kinds. Data, from what is stored:

1. A handoff re-queued by a release gets its chain's first escalation time as
   ``created_at``: its wait counts from the first escalation (the history keeps each hand).
2. ``takeover_mode`` is "analysis" where the claimer used "Get AI analysis": the old first
   action kind ``ai_analysis``, or the briefing message they posted after the claim.
3. ``first_action_at``/``first_action_kind`` are recomputed as the claimer's own first work
   between the claim and the release or resolution:
   - a message they wrote (not the "Get AI analysis" briefing) → "message";
   - a step they added by hand, unless its title is one of the assessment's suggested steps
     ("Open in Tasks panel" added those in their name) → "task_added";
   - the old stamp of kind "task", when a step of the session was changed (status or
     outcome) at that moment: tasks do not record who changed them, so this is the only
     stored trace of a step result recorded by the claimer → "task_recorded".
   Rows with none of these go back to "no action yet". The FIRST_ACTION history events are
   rewritten to match (detail ``recomputed``). Moves of a step never counted here.
"""

import re
from datetime import timedelta

from django.db import migrations, models

BRIEFING_PREFIX = "Handoff briefing: I have taken over this escalation."
SAME_MOMENT = timedelta(seconds=2)
CHUNK = 1000
_TITLE_NOISE = re.compile(r"[\W_]+")


def _title_key(title):
    return " ".join(_TITLE_NOISE.sub(" ", (title or "").casefold()).split())


def keep_first_escalation_time(apps, schema_editor):
    Handoff = apps.get_model("escalations", "Handoff")
    first_escalated = {}
    reopened = (
        Handoff.objects.filter(reopened_from__isnull=False)
        .order_by("created_at", "pk")
        .values_list("pk", "reopened_from_id", "reopened_from__created_at")
    )
    for pk, previous_id, previous_created_at in reopened.iterator(chunk_size=CHUNK):
        first = first_escalated.get(previous_id, previous_created_at)
        first_escalated[pk] = first
        Handoff.objects.filter(pk=pk).update(created_at=first)


def recompute_first_actions(apps, schema_editor):
    Handoff = apps.get_model("escalations", "Handoff")
    HandoffEvent = apps.get_model("escalations", "HandoffEvent")
    Message = apps.get_model("flowpilot", "Message")
    Task = apps.get_model("flowpilot", "Task")

    claimed = Handoff.objects.filter(claimed_at__isnull=False).order_by("pk")
    fields = (
        "pk",
        "session_id",
        "claimed_by_id",
        "claimed_at",
        "released_at",
        "resolved_at",
        "first_action_at",
        "first_action_kind",
        "assessment",
    )
    chunk = []
    for row in claimed.values_list(*fields).iterator(chunk_size=CHUNK):
        chunk.append(dict(zip(fields, row, strict=True)))
        if len(chunk) == CHUNK:
            _recompute_chunk(chunk, Handoff, HandoffEvent, Message, Task)
            chunk = []
    if chunk:
        _recompute_chunk(chunk, Handoff, HandoffEvent, Message, Task)


def _recompute_chunk(chunk, Handoff, HandoffEvent, Message, Task):
    sessions = {row["session_id"] for row in chunk}
    messages = {}
    for session_id, author_id, created_at, body in (
        Message.objects.filter(session_id__in=sessions, role="user", author__isnull=False)
        .order_by("created_at", "pk")
        .values_list("session_id", "author_id", "created_at", "body")
    ):
        messages.setdefault(session_id, []).append((author_id, created_at, body))
    tasks = {}
    for session_id, created_by_id, source, title, created_at, updated_at, status, outcome in (
        Task.objects.filter(session_id__in=sessions)
        .order_by("created_at", "pk")
        .values_list(
            "session_id",
            "created_by_id",
            "source",
            "title",
            "created_at",
            "updated_at",
            "status",
            "outcome",
        )
    ):
        tasks.setdefault(session_id, []).append(
            (created_by_id, source, title, created_at, updated_at, status, outcome)
        )

    for row in chunk:
        claimer, start = row["claimed_by_id"], row["claimed_at"]
        ends = [at for at in (row["released_at"], row["resolved_at"]) if at is not None]
        end = min(ends) if ends else None

        def in_hold(at, start=start, end=end):
            return at >= start and (end is None or at <= end)

        old_kind, old_at = row["first_action_kind"], row["first_action_at"]
        analysis = old_kind == "ai_analysis"
        candidates = []
        for author_id, created_at, body in messages.get(row["session_id"], []):
            if author_id != claimer or not in_hold(created_at):
                continue
            if body.startswith(BRIEFING_PREFIX):
                analysis = True
                continue
            candidates.append((created_at, "message"))
            break
        suggested = {
            _title_key(step.get("title"))
            for step in (row["assessment"] or {}).get("next_steps", [])
            if isinstance(step, dict)
        }
        session_tasks = tasks.get(row["session_id"], [])
        for created_by_id, source, title, created_at, *_ in session_tasks:
            if created_by_id != claimer or source != "manual" or not in_hold(created_at):
                continue
            if _title_key(title) in suggested:
                continue
            candidates.append((created_at, "task_added"))
            break
        if old_kind == "task" and old_at is not None:
            for *_, created_at, updated_at, status, outcome in session_tasks:
                changed_then = abs(updated_at - old_at) <= SAME_MOMENT
                if changed_then and updated_at - created_at > SAME_MOMENT:
                    if status != "todo" or outcome:
                        candidates.append((old_at, "task_recorded"))
                        break
        first_at, kind = min(candidates) if candidates else (None, "")
        mode = "analysis" if analysis else "self"
        if (first_at, kind, mode) == (old_at, old_kind, "self"):
            continue  # already right: no write
        Handoff.objects.filter(pk=row["pk"]).update(
            first_action_at=first_at,
            first_action_kind=kind,
            takeover_mode=mode,
        )
        if (first_at, kind) != (old_at, old_kind):
            HandoffEvent.objects.filter(handoff_id=row["pk"], kind="first_action").delete()
            if first_at is not None:
                HandoffEvent.objects.create(
                    handoff_id=row["pk"],
                    kind="first_action",
                    actor_id=claimer,
                    created_at=first_at,
                    detail={"kind": kind, "recomputed": True},
                )


class Migration(migrations.Migration):
    dependencies = [
        ("escalations", "0005_notification_resolved_kind"),
        ("flowpilot", "0002_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="handoff",
            name="takeover_mode",
            field=models.CharField(
                choices=[("self", "I'll take it from here"), ("analysis", "Get AI analysis")],
                db_default="self",
                default="self",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="handoff",
            name="first_action_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("message", "wrote in the chat"),
                    ("task_recorded", "recorded a step's status or outcome"),
                    ("task_added", "added a step by hand"),
                ],
                max_length=30,
            ),
        ),
        migrations.RunPython(keep_first_escalation_time, migrations.RunPython.noop),
        migrations.RunPython(recompute_first_actions, migrations.RunPython.noop),
    ]
