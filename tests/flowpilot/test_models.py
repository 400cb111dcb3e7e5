"""FlowPilot's models: what "tried" means for a task lane, in SQL and on a row."""

import pytest
from django.core.management import call_command

from flowpilot.models import Session, Task, TaskStatus

pytestmark = pytest.mark.django_db


def test_tried_tasks_are_every_status_but_to_do(tess):
    session = Session.objects.create(account=tess.account, owner=tess, problem="VPN drops")
    for position, status in enumerate(TaskStatus.values):
        Task.objects.create(session=session, position=position, title=status, status=status)

    tried = list(Task.objects.filter(session=session).tried().values_list("status", flat=True))

    assert tried == ["doing", "done", "failed", "skipped"]
    assert [task.status for task in session.tasks.all() if task.was_tried] == tried


def test_the_task_manager_needs_no_migration():
    call_command("makemigrations", "flowpilot", check=True, dry_run=True, verbosity=0)


@pytest.mark.parametrize(
    ("problem", "title"),
    [
        ("Printer offline", "Printer offline"),
        ("a" * 90, "a" * 90),
        ("The scanner stopped emailing scans this afternoon. " + "x" * 60,
         "The scanner stopped emailing scans this afternoon…"),
        ("Word " * 30, ("Word " * 17).strip() + "…"),
        ("x" * 120, "x" * 89 + "…"),
    ],
)  # fmt: skip
def test_a_title_is_cut_at_a_word_without_doubled_punctuation(problem, title):
    assert Session(problem=problem).title == title
