"""Toasts for htmx requests: Django messages ride in the HX-Trigger header.

Full pages render messages in the base template; an htmx swap never renders the base, so
this moves them into a ``messages`` client event that static/js/app.js shows as toasts.
Redirects (HX-Redirect / HX-Location / 3xx) keep them for the page that follows.
Only requests that change something (not GET or HEAD) take messages: background htmx GETs
(the bell, a queue refresh after a live event) must not swallow a toast meant for the
page the user is about to see.
"""

import json

from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse

from resolutionflow import events


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
