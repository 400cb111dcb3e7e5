"""Pushpin in front: open streams held by the proxy, events published to its control port.

With ``GRIP_URL`` set (``http://pushpin:5561/?iss=pushpin&key=<Pushpin's sig_key>``), a
stream request that comes through Pushpin (its ``Grip-Sig`` verified with that key by
``django_grip.GripMiddleware``) is answered at once by django-eventstream with what the
client missed (read from storage after its Last-Event-ID) and GRIP instructions: hold the
stream open, subscribed to the request's channels from the last id it has. The web process
is done with it: an open stream costs a Pushpin connection, not a web-process thread.

After commit the outbox (``resolutionflow.events``) stores each event and hands it here:
one ``POST /publish/`` per batch to Pushpin's control port, each event with its id and the
id before it in its channel. Every web process and every worker may publish; they share
nothing but PostgreSQL, Redis and Pushpin over TCP. Pushpin fills the stream's
``Last-Event-ID`` in from the ids (django-eventstream's ``build-id`` filter), so a browser
reconnecting to any web process through Pushpin resumes where it was.

Nothing is skipped: Pushpin passes an event on only if its previous id is the stream's
last one. Otherwise (a publish lost, or two publishers' batches crossing) it asks the web
process for the stream's next link (``recover``), which re-reads storage after the last
id. A publish that fails (Pushpin down or slow: one short timeout, then a breaker) is
caught up by the channel's next event that way, or at the stream's next re-check
(``escalations.streams``): every stream reconnects through a full sign-in check at least
every ``RF_STREAM_SESSION_CHECK_SECONDS``, and the browser resumes from its Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import quote

from django.conf import settings

from resolutionflow.broker import _Breaker

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0  # seconds: a publish runs after the response, but holds its thread

breaker = _Breaker()


def enabled() -> bool:
    return bool(getattr(settings, "GRIP_URL", ""))


def control_uri() -> str:
    from gripcontrol import parse_grip_uri

    return parse_grip_uri(settings.GRIP_URL)["control_uri"]


def grip_channel(channel: str) -> str:
    """Pushpin's name for one of our channels (django-eventstream's: ``events-<channel>``)."""
    return f"events-{quote(channel)}"


def publish_items(stored: list) -> list[dict]:
    """Pushpin publish items for stored events, as django-eventstream's ``publish_event``
    builds them: SSE text with ``%I`` for the id (the ``build-id`` filter fills in the
    stream's combined id), ``%`` escaped in the data."""
    from django_eventstream.utils import sse_encode_event

    items = []
    for event in stored:
        content = sse_encode_event(event.type, event.data, event_id="%I", escape=True)
        items.append(
            {
                "channel": grip_channel(event.channel),
                "id": str(event.id),
                "prev-id": str(int(event.id) - 1),
                "formats": {"http-stream": {"content": content, "content-filters": ["build-id"]}},
            }
        )
    return items


def publish(stored: list) -> bool:
    """Publish stored events to Pushpin in one request; never raises (returns success).

    A failure trips the breaker for a few seconds (later batches skip Pushpin at once);
    the streams catch up as the module docstring says.
    """
    if not stored or not enabled():
        return True
    if breaker.is_open():
        return False
    body = json.dumps({"items": publish_items(stored)}).encode()
    # GRIP_URL is checked to be http(s) at start-up (resolutionflow.env).
    request = urllib.request.Request(  # noqa: S310
        control_uri() + "/publish/",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=PUBLISH_TIMEOUT) as response:  # noqa: S310
            response.read()
    except (OSError, urllib.error.URLError) as error:
        breaker.trip()
        logger.warning(
            "Publishing %d events to Pushpin failed (%s); its streams catch up from storage",
            len(stored),
            error,
        )
        return False
    return True
