"""Fixtures of the analytics tests: handoffs and baseline timings made directly."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

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


@pytest.fixture
def generated(personas):
    """~700 Acme handoffs over the last ten weeks (random waits, first actions, take-over
    modes, two seniors, some released or resolved), and a few of Globex's."""
    rng = random.Random(15)
    now = timezone.now()
    seniors = [personas["sam"], personas["sky"]]
    specs = []
    for _ in range(700):
        escalated = now - timedelta(seconds=rng.uniform(0, 70 * 86400))
        claimed = rng.random() < 0.9
        acted = claimed and rng.random() < 0.85
        spec = {
            "created_at": escalated,
            "claimer": rng.choice(seniors),
            "claim": rng.expovariate(1 / 240) if claimed else None,
            "first_action": rng.expovariate(1 / 300) if acted else None,
            "resolved": rng.uniform(60, 3600) if claimed and rng.random() < 0.7 else None,
        }
        if claimed and rng.random() < 0.3:
            spec["takeover_mode"] = "analysis"
        specs.append(spec)
    made = factories.create_handoffs(specs, technician=personas["tess"])
    for day in range(3):
        factories.create_handoff(
            now - timedelta(days=day * 9),
            technician=personas["gil"],
            claimer=personas["gwen"],
            claim=5,
            first_action=5,
        )
    return {"now": now, "account": personas["ada"].account_id, "handoffs": made}
