"""Loaded by pytest before Django (``-p tests.bootstrap``): the test environment's defaults.

Tests run on the development defaults (DEBUG=1: no SECRET_KEY needed, static files from
the finders); pytest-django still runs each test with settings.DEBUG False.

Under pytest-xdist (``make test`` runs two workers) each worker has its own test database
(pytest-django adds ``_gw0``, ``_gw1``) and here gets its own Redis database number, so
that queues, rate-limit counters and caches of one worker never meet the other's. The
events' pub/sub channel is named after the database (resolutionflow/eventstream_redis.py),
so it is apart too.
"""

import os
import re

os.environ.setdefault("DEBUG", "1")


def _redis_url_for_worker(url: str, worker: str) -> str:
    """``redis://host:port/N`` → the same server, database N + 1 + the worker's number."""
    number = int(worker.removeprefix("gw"))
    match = re.fullmatch(r"(rediss?://[^/]+)(?:/(\d*))?", url)
    if not match:
        return url
    base = int(match.group(2) or 0)
    return f"{match.group(1)}/{(base + 1 + number) % 16}"


_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _redis_url_for_worker(os.environ["REDIS_URL"], _worker)
