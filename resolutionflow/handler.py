"""The ASGI handler: Django's, with every request's database connections given back.

Django runs a request's synchronous code (sync middleware, views, session loading) on one
worker thread per request, and database connections live in that thread. When the client
disconnects early, Django cancels the request and sends ``request_finished`` (which closes
the connections) while the thread may still be running or about to open one; the thread then
ends holding a pooled connection that nothing returns. A few hundred cut-off requests took
every connection of the pool and the whole app answered 500 until it was restarted
(tests/core/test_disconnects.py drives that pattern against a real uvicorn and PostgreSQL).

The fix is at the mechanism, for every view and stream alike: each request gets its own
single-thread executor (asgiref's ``ThreadSensitiveContext(executor=...)``), and when the
request is over, however it ended, one last job on that same thread closes whatever
connections it still holds. The executor runs jobs in order, so the job runs after all the
request's work; a task that outlives the request cannot queue more there (asgiref refuses
thread-sensitive calls after the context has exited).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.db import connections


def close_thread_connections() -> None:
    """Close (give back to the pool) every database connection the current thread holds."""
    for connection in connections.all(initialized_only=True):
        connection.close()


class ConnectionReleasingASGIHandler(ASGIHandler):
    """``ASGIHandler`` whose requests never keep a database connection after they end."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # Queued behind everything the request ran on its thread, so it runs last there.
            released = executor.submit(close_thread_connections)
            executor.shutdown(wait=False)
            await asyncio.wrap_future(released)
