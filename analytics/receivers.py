"""Listens to escalations' explicit signal: a changed handoff makes its week's rollup stale.

Inside the handoff action's transaction: one UPDATE at most (none for the current week,
which is never rolled up), then, after commit, a rebuild task (inline after the response in
embedded mode). See ``analytics.rollups``.
"""

import time

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from escalations.signals import handoff_changed

# Besides stale weeks, a refresh builds the weeks that just ended. With a worker the drain
# does that every few seconds; without one (embedded mode) a change triggers it, at most
# this often per account and process.
SWEEP_EVERY_SECONDS = 600
_last_sweep: dict[int, float] = {}


@receiver(handoff_changed, dispatch_uid="analytics.mark_rollup_stale")
def mark_rollup_stale(sender, *, handoff, **kwargs) -> None:
    from analytics import rollups, tasks

    marked = rollups.mark_stale(handoff, now=timezone.now())
    account_id = handoff.account_id
    due = time.monotonic() - _last_sweep.get(account_id, float("-inf")) > SWEEP_EVERY_SECONDS
    if marked or due:
        _last_sweep[account_id] = time.monotonic()
        transaction.on_commit(lambda: tasks.enqueue_refresh(account_id))
