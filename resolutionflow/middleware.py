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
from django.utils.csp import CSP, build_policy

from resolutionflow import events, sessions

# Django's DEBUG pages opt out of the CSP; their 404 still gets one: inline style, no script.
DEBUG_PAGE_CSP = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
}


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
    sent it and sends ``request_finished``; the publishing runs then, in the same worker
    thread (``events.run_when_response_closes``).
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
            events.run_when_response_closes(committed)
        return response


class ResponsePolicyMiddleware:
    """What every response gets that Django's own middleware does not give
    (resolutionflow/sessions.py for the session parts).

    For a signed-in person:
    - ``Cache-Control: no-store``: pages, JSON and CSV of an account never stay in a browser's
      or a proxy's cache for the next person at that computer;
    - the idle timeout slides (one session save per five minutes at most);
    - an event stream ends when its session does (sign-out, idle timeout).
    For everyone: Django's DEBUG 404 page, which opts out of the CSP (it styles itself
    inline), gets a policy that allows its inline style and no script: it echoes the path.

    One class for all of it, placed after AuthenticationMiddleware: every middleware costs
    every request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 404 and getattr(response, "_csp_config", None) == {}:
            response.headers[str(CSP.HEADER_ENFORCE)] = build_policy(DEBUG_PAGE_CSP)
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
