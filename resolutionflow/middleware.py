"""Toasts for htmx requests: Django messages ride in the HX-Trigger header.

Full pages render messages in the base template; an htmx swap never renders the base, so
this moves them into a ``messages`` client event that static/js/app.js shows as toasts.
Redirects (HX-Redirect / HX-Location / 3xx) keep them for the page that follows.
Only requests that change something (not GET or HEAD) take messages: background htmx GETs
(the bell, a queue refresh after a live event) must not swallow a toast meant for the
page the user is about to see.
"""

import json

from django.conf import settings
from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from resolutionflow import events, sessions


class HtmxMessagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or response.streaming:
            return response
        if request.method in ("GET", "HEAD"):
            return response
        if 300 <= response.status_code < 400:
            return response
        if "HX-Redirect" in response or "HX-Location" in response or "HX-Refresh" in response:
            return response
        pending = [
            {"message": str(message), "tags": message.tags} for message in get_messages(request)
        ]
        if not pending:
            return response
        triggers = {}
        if "HX-Trigger" in response:
            existing = response["HX-Trigger"]
            try:
                triggers = json.loads(existing)
            except ValueError:
                triggers = {name.strip(): None for name in existing.split(",")}
        triggers["messages"] = triggers.get("messages", []) + pending
        response["HX-Trigger"] = json.dumps(triggers)
        return response


class PublishEventsAfterResponseMiddleware:
    """Events committed while handling a request are published after the response is sent.

    They are stored in the outbox already (``resolutionflow.events``); storing them for
    replay and announcing them takes several statements and a Redis round trip, which the
    person who clicked should not wait for. Django closes a response once the server has
    sent it; the publishing runs then, in the same worker thread.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with events.publishing_after_response() as committed:
            try:
                response = self.get_response(request)
            except BaseException:
                committed.run()
                raise
        if committed:
            # Django's own hook for work at close (FileResponse closes its file there).
            response._resource_closers.append(committed.run)
        return response


class SignedInResponseMiddleware:
    """What every response to a signed-in person gets (resolutionflow/sessions.py).

    - ``Cache-Control: no-store``: pages, JSON and CSV of an account never stay in a browser's
      or a proxy's cache for the next person at that computer.
    - The idle timeout slides (one session save per five minutes at most).
    - An event stream ends when its session does (sign-out, idle timeout).

    One class for the three, placed after AuthenticationMiddleware: one more middleware costs
    every request, three would cost it three times.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return response
        patch_cache_control(response, no_store=True)
        if response.streaming and response.get("Content-Type", "").startswith("text/event-stream"):
            if response.is_async and request.session.session_key:
                response.streaming_content = sessions.ending_with_session(
                    response.streaming_content,
                    session_key=request.session.session_key,
                    user_pk=user.pk,
                    every=settings.RF_STREAM_SESSION_CHECK_SECONDS,
                )
        else:
            sessions.slide_idle_timeout(request)
        return response
