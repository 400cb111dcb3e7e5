"""Signed-in sessions beyond Django's: an idle timeout that slides cheaply, and event streams
that end when their session does.

- Idle timeout: a session lives ``SESSION_COOKIE_AGE`` (``RF_IDLE_TIMEOUT_SECONDS``, 8 h)
  after its last save. Instead of ``SESSION_SAVE_EVERY_REQUEST`` (an UPDATE per request),
  a request re-saves the session only when the last save is more than
  ``RF_SESSION_REFRESH_SECONDS`` (5 min) old: one write per person per five minutes, and
  the timeout is exact to within that.
- Streams: an event stream may stay open for hours, long after its session was ended by a
  sign-out (which deletes it) or by the idle timeout. The stream re-checks its session every
  ``RF_STREAM_SESSION_CHECK_SECONDS`` (60 s) and ends with a ``stream-error`` event
  (condition ``session-ended``) when the session is gone, expired, or no longer this user's
  (password changed). The browser's EventSource reconnects and gets a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from functools import wraps
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.db import connection
from django.http import HttpRequest

LAST_SAVED_KEY = "_rf_saved_at"
SESSION_ENDED = (
    b'event: stream-error\ndata: {"condition": "session-ended", '
    b'"text": "Signed out or timed out: sign in again."}\n\n'
)


def not_activity(view: Callable) -> Callable:
    """Mark a view the browser calls by itself (a heartbeat): its requests do not push the
    idle timeout back, so a tab left open does not keep a session alive for ever."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        request.rf_not_activity = True
        return view(request, *args, **kwargs)

    return wrapper


def slide_idle_timeout(request: HttpRequest) -> None:
    """Push the session's expiry back (by saving it) if its last save is old enough."""
    session = getattr(request, "session", None)
    if session is None or session.is_empty() or getattr(request, "rf_not_activity", False):
        return
    now = int(time.time())
    saved_at = session.get(LAST_SAVED_KEY, 0)
    if not isinstance(saved_at, int) or now - saved_at >= settings.RF_SESSION_REFRESH_SECONDS:
        session[LAST_SAVED_KEY] = now  # modified: SessionMiddleware saves it, new expiry


def stamp_at_sign_in(sender, request: HttpRequest, user, **kwargs) -> None:
    """Sign-in saves the session anyway: record that, so the next requests need no save."""
    session = getattr(request, "session", None)
    if session is not None:
        session[LAST_SAVED_KEY] = int(time.time())


def session_still_signed_in(session_key: str, user_pk) -> bool:
    """Whether ``session_key`` still signs in ``user_pk``: it exists, has not expired, and
    its password hash still matches (Django's own checks, through ``get_user``)."""
    try:
        engine = import_module(settings.SESSION_ENGINE)
        probe = HttpRequest()
        probe.session = engine.SessionStore(session_key)
        user = get_user(probe)
        return user.is_authenticated and user.pk == user_pk
    finally:
        # A stream waits for hours: it must not hold a pooled connection meanwhile.
        if not connection.in_atomic_block:
            connection.close()


async def ending_with_session(
    content: AsyncIterator[bytes], *, session_key: str, user_pk, every: float
) -> AsyncIterator[bytes]:
    """``content``, ended (with ``SESSION_ENDED``) once a check every ``every`` seconds finds
    the session gone. The check runs between chunks and while the stream waits for one."""
    loop = asyncio.get_running_loop()
    iterator = aiter(content)
    check = sync_to_async(session_still_signed_in)

    async def next_chunk():
        return await anext(iterator)

    pending: asyncio.Future | None = None
    next_check = loop.time() + every
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(next_chunk())
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, next_check - loop.time()))
            if pending in done:
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield chunk
            if loop.time() >= next_check:
                if not await check(session_key, user_pk):
                    yield SESSION_ENDED
                    return
                next_check = loop.time() + every
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
