"""The handoff lifecycle as a state machine: random people escalate, claim, release, resolve
and act, and a small model predicts every outcome. The invariants hold after every step:
at most one live handoff per session, the claimer is never the escalator, and every
transition has its event row.
"""

from collections import Counter

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from escalations import actions
from escalations.models import Handoff, HandoffEvent, Urgency
from flowpilot.models import Session, SessionStatus
from resolutionflow.models import User
from tests.escalations.conftest import make_session

PEOPLE = ["tess", "sam", "sky", "ada", "gwen"]
SENIORS_OF_ACME = {"sam", "sky", "ada"}
SESSION_OWNERS = ["tess", "tess", "sam"]  # sam, an engineer, escalates his own too
# First-action kinds, and activity that never counts ("Get AI analysis", "Open in Tasks panel").
KINDS = ["message", "task_recorded", "task_added", "briefing", "step_opened", "reply"]
COUNTS = {"message", "task_recorded", "task_added"}

people = st.sampled_from(PEOPLE)
picks = st.integers(min_value=0, max_value=1000)


class HandoffLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a transaction rolled back at teardown: a clean slate.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.users = {user.username: user for user in User.objects.filter(username__in=PEOPLE)}
        self.sessions = [make_session(self.users[owner], tried=1) for owner in SESSION_OWNERS]
        # The model: what we expect the database to say.
        self.handoffs: dict = {}  # id → {"session", "state", "escalator", "claimer", "acted"}
        self.order: list = []  # handoff ids, oldest first
        self.resolved_sessions: set[int] = set()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    # --- helpers -----------------------------------------------------------------------------

    def live_of(self, session_id: int):
        for handoff_id, expected in self.handoffs.items():
            if expected["session"] == session_id and expected["state"] in ("open", "claimed"):
                return handoff_id
        return None

    def pick_handoff(self, pick: int):
        return self.order[pick % len(self.order)]

    def add(self, handoff: Handoff, escalator: str) -> None:
        self.handoffs[handoff.pk] = {
            "session": handoff.session_id,
            "state": "open",
            "escalator": escalator,
            "claimer": None,
            "acted": False,
        }
        self.order.append(handoff.pk)

    # --- rules -------------------------------------------------------------------------------

    @rule(pick=picks, person=people, urgency=st.sampled_from(Urgency.values))
    def escalate(self, pick, person, urgency):
        session = self.sessions[pick % len(self.sessions)]
        session = Session.objects.get(pk=session.pk)
        user = self.users[person]
        try:
            escalation = actions.escalate(
                session=session, user=user, reason="Stuck again", urgency=urgency
            )
        except actions.HandoffForbidden as refused:
            assert refused.code == "not_owner"
            assert session.owner_id != user.pk
            return
        except actions.SessionResolved:
            assert session.pk in self.resolved_sessions
            return
        except actions.AlreadyEscalated as refused:
            assert refused.handoff.pk == self.live_of(session.pk)
            return
        assert session.owner_id == user.pk
        assert session.pk not in self.resolved_sessions
        assert self.live_of(session.pk) is None
        self.add(escalation.handoff, person)

    @precondition(lambda self: self.order)
    @rule(pick=picks, person=people)
    def claim(self, pick, person):
        handoff_id = self.pick_handoff(pick)
        expected = self.handoffs[handoff_id]
        try:
            actions.claim_handoff(handoff_id=handoff_id, user=self.users[person])
        except actions.HandoffForbidden as refused:
            expected_code = "role" if person == "tess" else "own_handoff"
            assert refused.code == expected_code
            assert person == "tess" or expected["escalator"] == person
            return
        except Handoff.DoesNotExist:
            assert person == "gwen"
            return
        except actions.AlreadyClaimed as refused:
            assert expected["state"] == "claimed"
            assert refused.handoff.claimed_by.username == expected["claimer"]
            return
        except actions.NotOpen as refused:
            assert expected["state"] in ("released", "resolved")
            assert refused.handoff.state == expected["state"]
            return
        assert person in SENIORS_OF_ACME and person != expected["escalator"]
        assert expected["state"] == "open"
        expected.update(state="claimed", claimer=person)

    @precondition(lambda self: self.order)
    @rule(pick=picks, person=people)
    def release(self, pick, person):
        handoff_id = self.pick_handoff(pick)
        expected = self.handoffs[handoff_id]
        try:
            reopened = actions.release_handoff(handoff_id=handoff_id, user=self.users[person])
        except actions.HandoffForbidden as refused:
            if person == "tess":
                assert refused.code == "role"
            else:
                assert refused.code == "not_claimer"
                assert person != "ada" and person != expected["claimer"]
            return
        except Handoff.DoesNotExist:
            assert person == "gwen"
            return
        except actions.NotClaimed as refused:
            assert expected["state"] != "claimed"
            assert refused.handoff.state == expected["state"]
            return
        assert expected["state"] == "claimed"
        assert person in ("ada", expected["claimer"])
        expected["state"] = "released"
        assert reopened.reopened_from_id == handoff_id
        self.add(reopened, expected["escalator"])

    @precondition(lambda self: self.order)
    @rule(pick=picks, person=people)
    def resolve(self, pick, person):
        handoff_id = self.pick_handoff(pick)
        expected = self.handoffs[handoff_id]
        try:
            actions.resolve_handoff(handoff_id=handoff_id, user=self.users[person], note="done")
        except actions.HandoffForbidden as refused:
            if person == "tess":
                assert refused.code == "role"
            else:
                assert refused.code == "not_claimer"
                assert person != "ada" and person != expected["claimer"]
            return
        except Handoff.DoesNotExist:
            assert person == "gwen"
            return
        except actions.HandoffClosed as refused:
            assert expected["state"] in ("released", "resolved")
            assert refused.handoff.state == expected["state"]
            return
        assert expected["state"] in ("open", "claimed")
        assert person in ("ada", expected["claimer"])
        expected["state"] = "resolved"
        self.resolved_sessions.add(expected["session"])

    @rule(pick=picks, person=people, kind=st.sampled_from(KINDS))
    def act_in_the_chat(self, pick, person, kind):
        session = self.sessions[pick % len(self.sessions)]
        stamped = actions.record_first_action(session=session, user=self.users[person], kind=kind)
        live = self.live_of(session.pk)
        expected = self.handoffs.get(live)
        should = bool(
            kind in COUNTS
            and expected
            and expected["state"] == "claimed"
            and expected["claimer"] == person
            and not expected["acted"]
        )
        assert stamped == should
        if should:
            expected["acted"] = True

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def at_most_one_live_handoff_per_session(self):
        live = Counter(Handoff.objects.live().values_list("session_id", flat=True))
        assert all(count == 1 for count in live.values()), live

    @invariant()
    def the_claimer_is_never_the_escalator(self):
        rows = Handoff.objects.filter(claimed_by__isnull=False).values_list(
            "claimed_by_id", "escalated_by_id"
        )
        assert all(claimer != escalator for claimer, escalator in rows)

    @invariant()
    def the_database_agrees_with_the_model(self):
        rows = {
            row["id"]: row
            for row in Handoff.objects.filter(pk__in=self.order).values(
                "id", "state", "claimed_by__username", "first_action_at"
            )
        }
        for handoff_id, expected in self.handoffs.items():
            row = rows[handoff_id]
            assert row["state"] == expected["state"]
            assert row["claimed_by__username"] == expected["claimer"]
            assert (row["first_action_at"] is not None) == expected["acted"]

    @invariant()
    def every_transition_has_its_event_row(self):
        events = Counter(
            HandoffEvent.objects.filter(handoff_id__in=self.order).values_list("handoff_id", "kind")
        )
        for handoff_id, expected in self.handoffs.items():
            assert events[(handoff_id, "escalated")] == 1
            assert events[(handoff_id, "claimed")] == (1 if expected["claimer"] else 0)
            assert events[(handoff_id, "released")] == (expected["state"] == "released")
            assert events[(handoff_id, "resolved")] == (expected["state"] == "resolved")
            assert events[(handoff_id, "first_action")] == (1 if expected["acted"] else 0)

    @invariant()
    def sessions_carry_their_escalation_state(self):
        for session in Session.objects.filter(pk__in=[s.pk for s in self.sessions]):
            live = self.handoffs.get(self.live_of(session.pk))
            if session.pk in self.resolved_sessions:
                assert session.status == SessionStatus.RESOLVED
            elif live is not None:
                assert session.status == SessionStatus.ESCALATED
                claimer = self.users[live["claimer"]].pk if live["claimer"] else None
                assert session.escalated_to_id == claimer


@pytest.mark.django_db
def test_the_handoff_lifecycle_keeps_its_invariants(personas):
    run_state_machine_as_test(
        HandoffLifecycle,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,  # no example database in the checkout
        ),
    )
