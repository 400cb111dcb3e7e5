"""What every page's chrome needs from escalations.

Lazy, like Django's own ``auth`` processor: a context processor runs for every template
rendered with a request (the 503 page too, when the database is away), so nothing here
reads the user or the database until a template asks.
"""

from django.http import HttpRequest

from escalations.channels import notification_channels
from escalations.streams import resuming_url


def bell(request: HttpRequest) -> dict:
    """The bell's stream (includes/bell.html, shown to a signed-in member of an account),
    resuming where the person's channels stand at the render: one query, made only when
    the template shows the bell."""

    def bell_stream_url() -> str:
        return resuming_url("escalations:notification_events", notification_channels(request.user))

    return {"bell_stream_url": bell_stream_url}
