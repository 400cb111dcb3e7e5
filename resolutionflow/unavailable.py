"""When the database is unreachable: a fast 503 with Retry-After, never a 500.

A PostgreSQL restart, a failover or an operator terminating backends makes requests fail
on the database for a few seconds. The pool checks a connection before handing it out
(``resolutionflow.env``) and waits at most ``DATABASE_POOL_TIMEOUT`` for one, so such a
request ends quickly with a database error. Django turns any uncaught exception into its
``handler500`` view; ours (``resolutionflow.views.server_error``) asks ``is_unavailable``
and answers this module's 503 instead: a page that says nothing was saved (for a plain
form post it shows what was typed, ready to send again), or ``{"error": "unavailable"}``
for an API client. htmx leaves the form in place on an error status, so a technician's
escalate form keeps its text there too.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from resolutionflow.http import wants_json

RETRY_AFTER_SECONDS = 5

# SQLSTATE classes that mean "the server is not there for you right now", not "your query
# is wrong": connection exceptions, insufficient resources (too many connections), operator
# intervention (admin shutdown, pg_terminate_backend, crash recovery, cannot connect now).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")

# Fields never echoed back into a page.
_SECRET_FIELD_WORDS = ("password", "token", "secret")


def is_unavailable(error: BaseException | None) -> bool:
    """Whether ``error`` says the database cannot be reached (as opposed to a bug)."""
    if isinstance(error, InterfaceError):
        return True  # "connection already closed": the server dropped it under us
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # SQLite-only installs
        PoolTimeout = ()  # noqa: N806
    if PoolTimeout and isinstance(cause, PoolTimeout):
        return True
    sqlstate = getattr(getattr(cause, "diag", None), "sqlstate", None) or getattr(
        cause, "sqlstate", None
    )
    if sqlstate is None:
        # psycopg raises connection-level failures (refused, reset, closed by the server)
        # without a SQLSTATE; SQLite's "database is locked" is not an outage.
        return type(cause).__module__.startswith("psycopg")
    return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 + Retry-After: JSON for API clients, a page (with the typed fields) otherwise."""
    if wants_json(request):
        response: HttpResponse = JsonResponse({"error": "unavailable"}, status=503)
    else:
        fields = _typed_fields(request)
        html = render_to_string(
            "503.html",
            {
                "retry_after": RETRY_AFTER_SECONDS,
                "fields": fields,
                "action": request.get_full_path() if fields else "",
            },
            request=request,
        )
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _typed_fields(request: HttpRequest) -> list[tuple[str, str]]:
    """The fields of a plain form post, to offer them again (never secrets or the token)."""
    if request.method != "POST" or getattr(request, "htmx", False):
        return []
    try:
        post = request.POST
    except Exception:  # an unreadable body: nothing to offer
        return []
    return [
        (name, value)
        for name, values in post.lists()
        for value in values
        if name != "csrfmiddlewaretoken"
        and not any(word in name.lower() for word in _SECRET_FIELD_WORDS)
    ]
