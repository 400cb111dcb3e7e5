"""How a person appears outside the database: one JSON shape for the API, events and the
escalation package, so a client reads ``{"id", "username", "name"}`` wherever a person is."""

from __future__ import annotations

from resolutionflow.models import User


def person_json(user: User | None) -> dict | None:
    """``{"id", "username", "name"}`` of ``user``; None for nobody."""
    if user is None:
        return None
    return {"id": user.pk, "username": user.username, "name": user.name}
