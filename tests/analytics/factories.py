"""Handoffs and baseline timings with explicit timestamps, written straight to the database.

The handoff manager (escalate, claim, first action) belongs to escalations; analytics tests
pin numbers, so they create rows directly and never depend on those actions.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from analytics.models import BaselineMeasurement
from escalations.models import Handoff, HandoffState
from flowpilot.models import Session


def at(text: str) -> datetime:
    """at("2026-03-02 09:00") → an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def create_handoff(
    created_at: datetime,
    *,
    technician,
    claimer,
    claim: float | None = None,
    first_action: float | None = None,
    released: float | None = None,
    resolved: float | None = None,
) -> Handoff:
    """A handoff escalated at ``created_at``; each duration is seconds after the step before
    (claim after the escalation, first action after the claim, release or resolution after
    the first action or the claim). The state follows the last step given."""
    session = Session.objects.create(
        account_id=technician.account_id, owner=technician, problem="Printer queue stuck"
    )
    handoff = unsaved_handoff(
        session,
        created_at,
        technician=technician,
        claimer=claimer,
        claim=claim,
        first_action=first_action,
        released=released,
        resolved=resolved,
    )
    handoff.save(force_insert=True)
    return handoff


def create_handoffs(specs: list[dict], *, technician) -> list[Handoff]:
    """Many handoffs at once (two INSERTs): each spec holds ``create_handoff``'s arguments
    (``created_at``, ``claimer`` and the durations) and optionally ``takeover_mode``."""
    sessions = Session.objects.bulk_create(
        Session(account_id=technician.account_id, owner=technician, problem="Printer queue stuck")
        for _ in specs
    )
    handoffs = []
    for session, spec in zip(sessions, specs, strict=True):
        spec = dict(spec)
        mode = spec.pop("takeover_mode", None)
        handoff = unsaved_handoff(session, spec.pop("created_at"), technician=technician, **spec)
        if mode:
            handoff.takeover_mode = mode
        handoffs.append(handoff)
    return Handoff.objects.bulk_create(handoffs)


def unsaved_handoff(
    session: Session,
    created_at: datetime,
    *,
    technician,
    claimer,
    claim: float | None = None,
    first_action: float | None = None,
    released: float | None = None,
    resolved: float | None = None,
) -> Handoff:
    claimed_at = None if claim is None else created_at + timedelta(seconds=claim)
    first_action_at = None if first_action is None else claimed_at + timedelta(seconds=first_action)
    after_claim = first_action_at or claimed_at
    state = HandoffState.OPEN if claimed_at is None else HandoffState.CLAIMED
    released_at = resolved_at = None
    if released is not None:
        released_at, state = after_claim + timedelta(seconds=released), HandoffState.RELEASED
    if resolved is not None:
        resolved_at, state = after_claim + timedelta(seconds=resolved), HandoffState.RESOLVED
    return Handoff(
        account_id=technician.account_id,
        session=session,
        escalated_by=technician,
        reason="Tried the spooler restart",
        created_at=created_at,
        claimed_by=None if claimed_at is None else claimer,
        claimed_at=claimed_at,
        first_action_at=first_action_at,
        first_action_kind="" if first_action_at is None else "message",
        released_at=released_at,
        resolved_at=resolved_at,
        state=state,
    )


def record_timings(
    user, minutes: list[str | float], *, measured_on: date | None = None
) -> list[BaselineMeasurement]:
    """Baseline timings of the user's account, timed by that user."""
    return [
        BaselineMeasurement.objects.create(
            account_id=user.account_id,
            minutes=Decimal(str(value)),
            measured_on=measured_on or date(2026, 1, 15),
            timed_by=user,
            note=f"timing {index}",
        )
        for index, value in enumerate(minutes)
    ]
