"""What every app's views share about HTTP: who wants JSON, what a POST body says, and where
to go after a POST. One definition each, so the three kinds of client (a browser posting a
form, htmx, an API client) are told apart, read and answered the same way everywhere.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django_htmx.http import HttpResponseClientRedirect

# What a view can answer: a page, or JSON (docs/API.md).
_OFFERED_TYPES = ["text/html", "application/json"]


def wants_json(request: HttpRequest) -> bool:
    """Whether to answer an API client with JSON rather than a page or a fragment.

    Content negotiation, not a substring test: JSON when the Accept header ranks
    ``application/json`` above ``text/html`` (``Accept: application/json``; not a browser's
    ``text/html, …, */*``, nor ``application/json;q=0``, which refuses JSON). An htmx request
    always gets HTML, whatever it accepts: it swaps fragments into the page.
    """
    if getattr(request, "htmx", False):
        return False
    return request.get_preferred_type(_OFFERED_TYPES) == "application/json"


class BadRequestBody(Exception):
    """A POST body no form can read; ``errors`` has the shape of form errors (a 400)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(message for messages in errors.values() for message in messages))
        self.errors = errors


def request_data(request: HttpRequest) -> QueryDict | dict[str, str]:
    """The POSTed fields: form-encoded, or a JSON object of strings from an API client.

    Raises BadRequestBody for a body that is not JSON, not an object, or with a field that is
    neither a string nor null: ``{"reason": ["x"]}`` is refused, never turned into "['x']".
    Null fields count as absent.
    """
    if request.content_type != "application/json":
        return request.POST
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:  # UnicodeDecodeError included
        raise BadRequestBody({"__all__": ["The body is not valid JSON."]}) from None
    if not isinstance(payload, dict):
        raise BadRequestBody({"__all__": ["Send a JSON object."]})
    errors = {
        key: ["Must be a string."]
        for key, value in payload.items()
        if value is not None and not isinstance(value, str)
    }
    if errors:
        raise BadRequestBody(errors)
    return {key: value for key, value in payload.items() if value is not None}


def see_other(request: HttpRequest, url: str) -> HttpResponse:
    """Go to ``url`` after a POST: ``HX-Redirect`` for htmx (toasts follow to the next page),
    303 See Other for a plain form post (the browser follows with a GET, never a re-POST)."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=303)
