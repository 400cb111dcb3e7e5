"""The handoff manager: escalate, claim, release, resolve, record_first_action."""

from django.db import transaction


@transaction.atomic
def record_first_action(*, session, user, kind: str) -> None:
    """Placeholder replaced by the escalation core."""
