"""Fixtures of the analytics tests: handoffs and baseline timings made directly."""

import pytest

from tests.analytics import factories
from tests.analytics.factories import at  # noqa: F401 - re-exported for the tests


@pytest.fixture
def make_handoff(personas):
    """make_handoff(created_at, claim=s, first_action=s, ...): tess escalates, sam claims;
    pass technician=gil for a Globex handoff (gwen claims)."""

    def make(created_at, *, technician=None, claimer=None, **durations):
        technician = technician or personas["tess"]
        if claimer is None:
            claimer = personas["gwen"] if technician.username == "gil" else personas["sam"]
        return factories.create_handoff(
            created_at, technician=technician, claimer=claimer, **durations
        )

    return make


@pytest.fixture
def record_timings(personas):
    """record_timings(user, ["12.5", ...]) → baseline timings of the user's account."""
    return factories.record_timings
