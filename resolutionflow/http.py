"""What every app's web layer shares about HTTP: which client is asking, what a POST body
says, how the JSON API answers and refuses, and where to go after a POST.

Three kinds of client share each URL: a browser posting a form, htmx swapping fragments and
an API client asking for JSON. ``page_or_api`` sends each request to one of two views: the
page view (``<app>/views.py``: pages, fragments, redirects) or the API view
(``<app>/api.py``: JSON only, wrapped in ``api_view``). One parser reads every POST body
(``request_data``) and one error shape answers every API refusal (docs/API.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any
from urllib.parse import unquote_to_bytes

from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
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


def is_api_request(request: HttpRequest) -> bool:
    """An API client: it asks for JSON, or it sends a JSON body (no browser form does)."""
    if getattr(request, "htmx", False):
        return False
    return wants_json(request) or request.content_type == "application/json"


# --------------------------------------------------------------------- reading a POST body


class BadRequestBody(SuspiciousOperation):
    """A POST body no form can read; ``errors`` has the shape of form errors (a 400).

    The API answers it in the one error shape (``api_view``); a page view lets it rise,
    and Django answers a SuspiciousOperation with the 400 page (``handler400``).
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(
            "; ".join(
                message if field == "__all__" else f"{field}: {message}"
                for field, messages in errors.items()
                for message in messages
            )
        )
        self.errors = errors


# A JSON API body is an object of strings: anything nested deeper than this is refused
# before Python's parser recurses into it (100,000 levels raised RecursionError, a 500).
MAX_JSON_DEPTH = 32
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"\s*(:)?|[\[{]|[\]}]', re.DOTALL)
_NOT_STRING = "Must be a string."
_INVALID_UNICODE = (
    "Contains characters that are not valid Unicode (a lone surrogate such as \\ud800); "
    "send UTF-8 text."
)
_INVALID_UTF8 = "Is not valid UTF-8 text."
_TOO_BIG = "The body is too large; send less text."


def _too_deep_field(text: str) -> str | None:
    """The top-level field whose value nests deeper than MAX_JSON_DEPTH ("__all__" for the
    body itself), or None: one pass over the strings and brackets, no recursion."""
    depth = 0
    field = "__all__"
    for token in _JSON_TOKENS.finditer(text):
        lexeme = token.group(0)
        if lexeme in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return field
        elif lexeme in "]}":
            depth -= 1
        elif token.group(1) and depth == 1:
            try:
                field = json.loads(lexeme[: lexeme.rindex('"') + 1])
            except ValueError:
                field = "__all__"
    return None


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise BadRequestBody({"__all__": [_TOO_BIG]}) from None


def _json_data(request: HttpRequest) -> dict[str, str]:
    raw = _read_body(request) or b"{}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestBody({"__all__": ["The body is not valid JSON."]}) from None
    too_deep = _too_deep_field(text)
    if too_deep is not None:
        errors = (
            [_NOT_STRING]
            if too_deep != "__all__"
            else [f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep."]
        )
        raise BadRequestBody({too_deep: errors})
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequestBody({"__all__": ["The body is not valid JSON."]}) from None
    if not isinstance(payload, dict):
        raise BadRequestBody({"__all__": ["Send a JSON object."]})
    errors: dict[str, list[str]] = {}
    for key, value in payload.items():
        if not _is_valid_unicode(key):
            errors["__all__"] = ["A field name is not valid Unicode."]
        elif value is not None and not isinstance(value, str):
            errors[key] = [_NOT_STRING]
        elif value is not None and not _is_valid_unicode(value):
            errors[key] = [_INVALID_UNICODE]
    if errors:
        raise BadRequestBody(errors)
    return {key: value for key, value in payload.items() if value is not None}


def _check_form_encoding(request: HttpRequest) -> None:
    """Refuse a form post whose fields are not UTF-8: Django would store them garbled
    (each bad byte turned into U+FFFD) without saying so."""
    if request.content_type != "application/x-www-form-urlencoded":
        return
    errors: dict[str, list[str]] = {}
    for pair in _read_body(request).split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            field = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            errors["__all__"] = ["A field name is not valid UTF-8 text."]
            continue
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            errors[field] = [_INVALID_UTF8]
    if errors:
        raise BadRequestBody(errors)


def request_data(request: HttpRequest) -> QueryDict | dict[str, str]:
    """The POSTed fields: form-encoded, or a JSON object of strings from an API client.

    The one reader of request bodies. Raises BadRequestBody (a 400 naming the field) for a
    body that is too large, not JSON, not an object, nested too deep, with a field that is
    neither a string nor null (``{"reason": ["x"]}`` is refused, never turned into
    "['x']"), text that is not valid Unicode (lone surrogates), or a form post that is not
    UTF-8. Null JSON fields count as absent.
    """
    if request.content_type == "application/json":
        return _json_data(request)
    _check_form_encoding(request)
    try:
        return request.POST
    except RequestDataTooBig:
        raise BadRequestBody({"__all__": [_TOO_BIG]}) from None


# ------------------------------------------------------------------------- the JSON API


def api_error(status: int, code: str, message: str, /, **extra: Any) -> JsonResponse:
    """The one error shape: ``{"error": code, "message": sentence, **extra}``."""
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


def invalid(errors: dict[str, list[str]], *, status: int = 400) -> JsonResponse:
    """Field errors (form errors, or an unreadable body) in the one error shape."""
    return JsonResponse(
        {
            "error": "invalid",
            "message": "Correct the fields named in errors and send again.",
            "errors": errors,
        },
        status=status,
    )


def form_errors(form) -> dict[str, list[str]]:
    """A bound form's errors as JSON: field (or ``__all__``) → messages."""
    return {field: [str(error) for error in errs] for field, errs in form.errors.items()}


def valid_form(form_class: type, request: HttpRequest, **kwargs: Any):
    """``form_class`` bound to the request's body and valid, or BadRequestBody with its
    field errors (``api_view`` answers it ``400 invalid``). For API views."""
    form = form_class(request_data(request), **kwargs)
    if not form.is_valid():
        raise BadRequestBody(form_errors(form))
    return form


class ApiError(Exception):
    """A refusal an API view raises; ``api_view`` answers it in the one error shape."""

    def __init__(self, status: int, code: str, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JsonResponse:
        return api_error(self.status, self.code, self.message, **self.extra)


ROLE_REFUSAL = ApiError(403, "role", "Your role does not allow this.")


def api_view(
    *,
    methods: Iterable[str],
    roles: Iterable[str] | None,
    role_refusal: ApiError = ROLE_REFUSAL,
) -> Callable:
    """The one decorator of the JSON API: method (405), role (403; ``None`` lets every
    signed-in person in), then the view, whose refusals become the one error shape:
    ApiError as raised, an unreadable body or ``BadRequestBody`` a 400, anything not found
    (or in another account) a 404, and a PermissionDenied a 403 ``role``."""
    allowed = sorted(methods)
    members = None if roles is None else frozenset(roles)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in allowed:
                response = api_error(
                    405,
                    "method_not_allowed",
                    f"Use {' or '.join(allowed)} here.",
                )
                response["Allow"] = ", ".join(allowed)
                return response
            user = request.user
            if members is not None and (user.account_id is None or user.role not in members):
                return role_refusal.response()
            try:
                return view(request, *args, **kwargs)
            except ApiError as refusal:
                return refusal.response()
            except BadRequestBody as bad:
                return invalid(bad.errors)
            except (Http404, ObjectDoesNotExist):
                return api_error(404, "not_found", "Nothing here, or not yours to see.")
            except PermissionDenied as denied:
                return api_error(403, "role", str(denied) or ROLE_REFUSAL.message)

        return wrapper

    return decorator


def page_or_api(page: Callable, api: Callable) -> Callable:
    """One URL, two views: ``api`` for an API client (``is_api_request``), ``page`` for
    a browser or htmx. Each keeps its own decorators; URLs stay as they were."""

    @wraps(page)
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        chosen = api if is_api_request(request) else page
        return chosen(request, *args, **kwargs)

    view.page_view = page  # type: ignore[attr-defined]
    view.api_view = api  # type: ignore[attr-defined]
    return view


# --------------------------------------------------------------------------- after a POST


def see_other(request: HttpRequest, url: str) -> HttpResponse:
    """Go to ``url`` after a POST: ``HX-Redirect`` for htmx (toasts follow to the next page),
    303 See Other for a plain form post (the browser follows with a GET, never a re-POST)."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=303)
