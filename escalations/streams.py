"""The event streams: what escalations send on them, and who may read them.

Every event escalations sends names its handoff (``data["handoff"]``): the pages apply
events idempotently by that id (replace the card with that id, refetch a count), which is
what makes the core's at-least-once delivery safe. ``send_event_on_commit`` and
``send_events_on_commit`` here enforce it, then hand over to the core's outbox.

Channels come from the signed-in user, never from the client.

A request for a stream the user may not read gets a plain 403 and no events. A
Last-Event-ID that is not of our form (garbage, negative ids) gets a 400; ids of channels
outside the request are ignored by django-eventstream, so they can never reach another
account's events. An id older than what is stored makes the stream send ``stream-reset``,
on which the page fetches itself again.
"""

import math
import re
import time
from urllib.parse import urlencode

import jwt
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_eventstream.views import events

from escalations.channels import (
    can_read_channel,
    handoff_channel,
    notification_channels,
    queue_channel,
)
from escalations.models import Handoff
from resolutionflow import events as outbox
from resolutionflow import eventstore
from resolutionflow.models import OutboxEvent, User


def resuming_url(viewname: str, channels: list[str], *args) -> str:
    """A stream's URL for a page rendered now: the stream resumes where its channels stand
    at the render, so nothing published before it connects is missed (one query)."""
    position = urlencode({"lastEventId": eventstore.position(channels)})
    return f"{reverse(viewname, args=args)}?{position}"


def send_event_on_commit(channel: str, event_type: str, data: dict) -> OutboxEvent:
    """Send one event about a handoff once the transaction commits (see the docstring)."""
    (event,) = send_events_on_commit([(channel, event_type, data)])
    return event


def send_events_on_commit(events: list[tuple[str, str, dict]]) -> list[OutboxEvent]:
    """Several (channel, event_type, data), in one INSERT; each must name its handoff."""
    for _channel, _event_type, data in events:
        if "handoff" not in data:
            raise ValueError("every event's data names its handoff: data['handoff'] is missing")
    return outbox.send_events_on_commit(events)


# "queue-1:12" or several, comma separated, channel names percent-encoded.
LAST_EVENT_ID = re.compile(r"^[A-Za-z0-9%._-]+:\d{1,18}(,[A-Za-z0-9%._-]+:\d{1,18})*$")


# django-eventstream's GRIP parameters: a signed channel list, Pushpin's recovery. Only
# Pushpin's own next-link requests may carry them (see ``_pushpin_next_link``); from anyone
# else they are refused outright: a stream's channels come from the signed-in user only.
GRIP_PARAMETERS = ("es-meta", "recover", "link")
# The signed time at which a stream held by Pushpin is re-authorized (see _pushpin_next_link).
RECHECK_AT = "rf-recheck"
_RECHECK_SALT = "escalations.streams.recheck"
# What ends a stream held by Pushpin at its re-check: the browser reconnects within a
# second, with its Last-Event-ID and its cookies, through the full checks of ``_stream``.
RECONNECT = b"retry: 1000\n\n"


def _stream(request: HttpRequest, *channels: str | None) -> HttpResponse:
    if _through_pushpin(request) and request.GET.get("link") == "next":
        return _pushpin_next_link(request)
    if not channels or not all(
        channel is not None and can_read_channel(request.user, channel) for channel in channels
    ):
        return HttpResponseForbidden("You may not read this event stream.\n")
    if any(name in request.GET for name in GRIP_PARAMETERS):
        return HttpResponseBadRequest("Unsupported stream parameter.\n")
    # The library reads the header, else the last non-empty lastEventId: check them all.
    claimed_ids = [request.headers.get("Last-Event-ID", ""), *request.GET.getlist("lastEventId")]
    if any(value and not LAST_EVENT_ID.match(value) for value in claimed_ids):
        return HttpResponseBadRequest("Last-Event-ID is not valid; reconnect without it.\n")
    if _through_pushpin(request):
        # Pushpin holds the stream: its next link carries when to re-check the session.
        recheck_at = time.time() + settings.RF_STREAM_SESSION_CHECK_SECONDS
        query = request.GET.copy()
        query[RECHECK_AT] = signing.dumps(recheck_at, salt=_RECHECK_SALT)
        request.GET = query
        response = events(request, channels=list(channels))
        _next_link_at(request, recheck_at)
    else:
        response = events(request, channels=list(channels))
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer a stream
    response["Cache-Control"] = "no-cache"
    return response


def _through_pushpin(request: HttpRequest) -> bool:
    """Signed by Pushpin (``Grip-Sig``, checked against GRIP_URL's key by django_grip)."""
    grip = getattr(request, "grip", None)
    return grip is not None and grip.proxied


def _pushpin_next_link(request: HttpRequest) -> HttpResponse:
    """Pushpin asking for a held stream's next link: to recover after a gap in a channel's
    ids (``recover=true``: re-read storage after the stream's last ids), or because the
    stream's re-check time has come.

    Pushpin sends no cookies here. Who and which channels come from django-eventstream's
    ``es-meta``, which this server signed (SECRET_KEY, valid an hour) when the stream was
    opened by a signed-in request; every channel is checked again against that user. The
    session itself can only be checked with the browser's cookie: at the re-check time
    (``RF_STREAM_SESSION_CHECK_SECONDS`` after the stream opened) the stream ends and the
    browser reconnects with its Last-Event-ID, through every check of ``_stream``: a
    signed-out person gets a 403, everyone else misses nothing.
    """
    try:
        recheck_at = signing.loads(request.GET.get(RECHECK_AT, ""), salt=_RECHECK_SALT)
    except signing.BadSignature:
        return HttpResponseBadRequest("Unsupported stream parameter.\n")
    if time.time() >= recheck_at - 0.5:
        return _reconnect()
    try:
        response = events(request)
    except (jwt.PyJWTError, ValueError, User.DoesNotExist):
        # es-meta expired or its user is gone: the browser's reconnect is checked in full.
        return _reconnect()
    _next_link_at(request, recheck_at)
    response["Cache-Control"] = "no-cache"
    return response


def _next_link_at(request: HttpRequest, recheck_at: float) -> None:
    instruct = request.grip.instruct
    if instruct is not None and instruct.hold and instruct.next_link:
        instruct.next_link_timeout = max(1, math.ceil(recheck_at - time.time()))


def _reconnect() -> HttpResponse:
    response = HttpResponse(RECONNECT, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


# Anonymous requests get a 403 from _stream, not a redirect to the sign-in page.
@login_not_required
@require_GET
def queue_events(request: HttpRequest) -> HttpResponse:
    """The account's queue: new escalations, claims, releases."""
    user = request.user
    return _stream(request, queue_channel(user.account_id) if user.is_authenticated else None)


@login_not_required
@require_GET
def notification_events(request: HttpRequest) -> HttpResponse:
    """The signed-in person's bell; a senior's also carries the account's queue, so that a
    claim (which answers every senior's "pick this up" item) recounts every bell."""
    user = request.user
    if not user.is_authenticated or user.account_id is None:
        return _stream(request, None)
    return _stream(request, *notification_channels(user))


@login_not_required
@require_GET
def session_events(request: HttpRequest, session_id: int) -> HttpResponse:
    """The live handoff of a session, for its chat page (which knows no handoff ids).

    No live handoff (resolved, or never escalated): 204, on which a browser's EventSource
    stops for good. Otherwise the same stream, and the same checks, as the handoff's own.
    """
    user = request.user
    if not user.is_authenticated or user.account_id is None:
        return _stream(request, None)
    handoff_id = (
        Handoff.objects.live()
        .filter(session_id=session_id, account_id=user.account_id)
        .values_list("pk", flat=True)
        .first()
    )
    if handoff_id is None:
        return HttpResponse(status=204)
    return _stream(request, handoff_channel(handoff_id))


@login_not_required
@require_GET
def handoff_events(request: HttpRequest, handoff_id) -> HttpResponse:
    """One handoff's updates: claimed, assessment ready, released, resolved."""
    return _stream(request, handoff_channel(handoff_id))
