"""What every page's chrome needs from escalations."""

from django.http import HttpRequest

from escalations.channels import notification_channels
from escalations.streams import resuming_url


def bell(request: HttpRequest) -> dict:
    """The bell's stream (includes/bell.html), resuming where the person's channels stand
    at the render. Called by the template, so a page without the bell makes no query."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.account_id is None:
        return {}
    return {
        "bell_stream_url": lambda: resuming_url(
            "escalations:notification_events", notification_channels(user)
        )
    }
