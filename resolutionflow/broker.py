"""The broker: one breaker for Redis, and Celery enqueues that never hold a request.

Redis is both the events' pub/sub (``resolutionflow.eventstream_redis``) and Celery's
broker. When it is down or paused, the first operation fails after one short timeout and
trips the breaker; for ``BREAKER_SECONDS`` the others skip Redis at once (the work is
recorded in the database already: the outbox, a status column) instead of each waiting a
timeout. ``eventstream_redis`` closes the breaker early as soon as Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# After a broker failure, skip Redis for this long; the probe, the drain and the sweeps
# catch up.
BREAKER_SECONDS = 10.0


class _Breaker:
    """Process-wide memory of a recent broker failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until = 0.0

    def is_open(self) -> bool:
        with self._lock:
            return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + BREAKER_SECONDS

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


breaker = _Breaker()


def enqueue_task(task, *args: Any, on_failure: Callable[[], None] | None = None) -> bool:
    """Send a Celery task now; on a broker failure log it, call ``on_failure`` and return False.

    The work itself must already be recorded in the database (a status column or an outbox
    row) so that a sweep finds it later: a dead or paused broker costs one short timeout,
    then the breaker skips the broker for a while.
    """
    from resolutionflow.celery import app
    from resolutionflow.events import tasks_deferred_after_response

    eager = app.conf.task_always_eager
    deferred = tasks_deferred_after_response()
    if eager and deferred is not None:
        # Inline tasks (embedded mode) run after the response and its events: see above.
        deferred.append(lambda: _apply(task, args, on_failure, eager=True))
        return True
    return _apply(task, args, on_failure, eager=eager)


def _apply(task, args: tuple, on_failure: Callable[[], None] | None, *, eager: bool) -> bool:
    if not eager and breaker.is_open():
        if on_failure is not None:
            on_failure()
        return False
    try:
        task.apply_async(args=args)
    except Exception as error:
        if not eager:
            breaker.trip()
        logger.warning("Enqueueing %s failed (%s); the sweep will retry", task.name, error)
        if on_failure is not None:
            on_failure()
        return False
    return True
