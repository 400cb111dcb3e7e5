"""Races on real PostgreSQL: threads released together by a Barrier, each on its own
connection (closed when the thread ends), in transaction=True tests so commits are real.

The threads live for all the rounds: one connection each, one Barrier wait per round.
"""

import sys
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from escalations import actions
from escalations.models import Handoff, HandoffEvent, HandoffState
from flowpilot.models import Session, SessionStatus
from resolutionflow.models import Role, User

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16
CLAIM_ROUNDS = 200
ESCALATION_ROUNDS = 25
HTTP_ROUNDS = 5


def run_rounds(rounds: int, work) -> tuple[list[list], list[BaseException]]:
    """Run ``work(thread_index, round_index)`` in THREADS threads, all released together
    each round; return results[round][thread] and the unexpected exceptions."""
    barrier = threading.Barrier(THREADS)
    results = [[None] * THREADS for _ in range(rounds)]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for round_index in range(rounds):
                barrier.wait(timeout=30)
                results[round_index][index] = work(index, round_index)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            failures.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results, failures


@pytest.fixture(autouse=True)
def quick_thread_switches():
    """Sixteen threads take turns on one GIL: switch often so a thread whose query answered
    does not wait out another's 5 ms time slice (the race is in the database, not here)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(interval)


@pytest.fixture
def engineers(personas) -> list[User]:
    account = personas["sam"].account
    return [
        User.objects.create_user(
            username=f"racer{index}", account=account, role=Role.ENGINEER, display_name=f"R{index}"
        )
        for index in range(THREADS)
    ]


def open_handoffs(tess, count: int) -> list[Handoff]:
    """``count`` open handoffs of tess, one per session, written in bulk: the race is the claim."""
    sessions = Session.objects.bulk_create(
        [
            Session(
                account_id=tess.account_id,
                owner=tess,
                problem=f"Race {index}",
                status=SessionStatus.ESCALATED,
            )
            for index in range(count)
        ]
    )
    return Handoff.objects.bulk_create(
        [
            Handoff(
                id=uuid.uuid4(),
                account_id=tess.account_id,
                session=session,
                escalated_by=tess,
                reason="Racing",
            )
            for session in sessions
        ]
    )


def test_sixteen_concurrent_claimers_exactly_one_wins_200_rounds_in_a_row(
    postgres_only, tess, engineers, monkeypatch
):
    # The events of each round's winner are recorded (outbox rows) but not published: who
    # wins is decided before commit, and publishing is covered by the HTTP races below.
    monkeypatch.setattr("resolutionflow.events.publish_outbox_events", lambda *a, **k: 0)
    handoffs = open_handoffs(tess, CLAIM_ROUNDS)

    def claim(index: int, round_index: int):
        try:
            actions.claim_handoff(handoff_id=handoffs[round_index].pk, user=engineers[index])
        except actions.AlreadyClaimed as lost:
            return ("lost", lost.handoff.claimed_by_id)
        return ("won", engineers[index].pk)

    results, failures = run_rounds(CLAIM_ROUNDS, claim)

    assert failures == []
    claimed = {h.pk: h for h in Handoff.objects.filter(pk__in=[h.pk for h in handoffs])}
    events = Counter(
        HandoffEvent.objects.filter(handoff__in=handoffs).values_list("handoff_id", "kind")
    )
    for round_index, outcomes in enumerate(results):
        winners = [who for verdict, who in outcomes if verdict == "won"]
        assert len(winners) == 1, f"round {round_index}: {outcomes}"
        # Every loser was told the one real winner.
        assert {who for _verdict, who in outcomes} == {winners[0]}
        handoff = claimed[handoffs[round_index].pk]
        assert (handoff.state, handoff.claimed_by_id) == (HandoffState.CLAIMED, winners[0])
        assert events[(handoff.pk, "claimed")] == 1
        assert events[(handoff.pk, "claim_lost")] == THREADS - 1
    sessions = Session.objects.filter(handoffs__in=handoffs).values_list("escalated_to", flat=True)
    assert None not in set(sessions)


def test_sixteen_concurrent_escalations_of_one_session_make_one_handoff(postgres_only, tess):
    sessions = Session.objects.bulk_create(
        [
            Session(account_id=tess.account_id, owner=tess, problem=f"Escalate race {index}")
            for index in range(ESCALATION_ROUNDS)
        ]
    )

    def escalate(index: int, round_index: int):
        try:
            escalation = actions.escalate(
                session=sessions[round_index], user=tess, reason=f"try {index}"
            )
        except actions.AlreadyEscalated as refused:
            return ("refused", refused.handoff.pk)
        return ("escalated", escalation.handoff.pk)

    results, failures = run_rounds(ESCALATION_ROUNDS, escalate)

    assert failures == []
    for round_index, outcomes in enumerate(results):
        made = [handoff for verdict, handoff in outcomes if verdict == "escalated"]
        assert len(made) == 1, f"round {round_index}: {outcomes}"
        assert {handoff for _verdict, handoff in outcomes} == {made[0]}
        live = Handoff.objects.live().filter(session=sessions[round_index])
        assert list(live.values_list("pk", flat=True)) == [made[0]]
        assert HandoffEvent.objects.filter(handoff_id=made[0], kind="escalated").count() == 1


def signed_in_clients(user, count: int) -> list[Client]:
    clients = []
    for _ in range(count):
        client = Client()
        client.force_login(user)
        clients.append(client)
    return clients


def test_concurrent_http_escalations_answer_one_201_and_409s_never_a_500(
    postgres_only, tess, settings
):
    # One person sends every request here: the race is the subject, not the per-person limit
    # (tests/core/test_security_rate_limits.py covers that).
    settings.RF_RATE_LIMITS = {**settings.RF_RATE_LIMITS, "escalations": None}
    clients = signed_in_clients(tess, THREADS)
    sessions = Session.objects.bulk_create(
        [
            Session(account_id=tess.account_id, owner=tess, problem=f"HTTP race {index}")
            for index in range(HTTP_ROUNDS)
        ]
    )

    def post(index: int, round_index: int):
        url = reverse("escalate", args=[sessions[round_index].pk])
        response = clients[index].post(url, {"reason": "Stuck"}, HTTP_ACCEPT="application/json")
        return response.status_code, response.json().get("handoff")

    results, failures = run_rounds(HTTP_ROUNDS, post)

    assert failures == []
    for outcomes in results:
        assert Counter(status for status, _ in outcomes) == {201: 1, 409: THREADS - 1}
        assert len({handoff for _, handoff in outcomes}) == 1


def test_concurrent_http_claims_answer_one_200_and_409s_naming_the_winner(
    postgres_only, tess, engineers
):
    clients = [signed_in_clients(engineer, 1)[0] for engineer in engineers]
    handoffs = open_handoffs(tess, HTTP_ROUNDS)

    def post(index: int, round_index: int):
        url = reverse("escalations:claim", args=[handoffs[round_index].pk])
        response = clients[index].post(url, HTTP_ACCEPT="application/json")
        return response.status_code, response.json()["claimed_by"]["username"]

    results, failures = run_rounds(HTTP_ROUNDS, post)

    assert failures == []
    for outcomes in results:
        assert Counter(status for status, _ in outcomes) == {200: 1, 409: THREADS - 1}
        assert len({winner for _, winner in outcomes}) == 1
