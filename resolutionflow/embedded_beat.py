"""The beat of embedded mode: without a worker, the web process runs the drain itself.

With ``REDIS_URL`` set, Celery beat runs ``drain_outbox`` every 5 seconds in the worker
(``make worker``). In embedded mode (``make run``: no broker, tasks inline) nothing else
would, so the ASGI entry point starts this daemon thread: the same drain, inline, on the
same period. The drain is safe to run twice or concurrently, so two web processes (or a
reload) running it too are harmless. Off with ``RF_EMBEDDED_BEAT=0`` (the browser tests'
in-process server: tests run the drain themselves, on their own clock).
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import close_old_connections

logger = logging.getLogger(__name__)

PERIOD_SECONDS = 5.0
_started = threading.Event()


def _run(stop: threading.Event) -> None:
    from resolutionflow.tasks import drain_outbox

    while not stop.wait(PERIOD_SECONDS):
        try:
            drain_outbox()
        except Exception:
            logger.exception("Embedded drain failed; the next one runs in %s s", PERIOD_SECONDS)
        finally:
            close_old_connections()


def start_embedded_beat() -> threading.Event | None:
    """Start the drain thread once per process (embedded mode only); its stop event."""
    from django.conf import settings

    if not settings.CELERY_TASK_ALWAYS_EAGER or os.environ.get("RF_EMBEDDED_BEAT") == "0":
        return None
    if _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(target=_run, args=(stop,), name="rf-embedded-beat", daemon=True).start()
    return stop
