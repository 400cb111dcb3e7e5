"""GET /analytics/export.csv: the window's handoffs with their timings."""

import csv

import pytest
from django.urls import reverse

from resolutionflow.models import Role, User
from tests.analytics.factories import at

URL = reverse("analytics:export_csv")
MARCH = {"from": "2026-03-02", "to": "2026-03-15"}


def rows(response) -> list[dict]:
    lines = response.content.decode().splitlines(keepends=True)
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def notes(response) -> list[str]:
    return [line for line in response.content.decode().splitlines() if line.startswith("#")]


def test_handoffs_of_the_window_with_their_timings(client_for, ada, make_handoff, gil):
    first = make_handoff(at("2026-03-02 09:00"), claim=60, first_action=90.5, resolved=600)
    make_handoff(at("2026-03-10 09:00"))
    make_handoff(at("2026-03-16 00:00"), claim=1, first_action=1)  # after the window
    make_handoff(at("2026-03-04 09:00"), claim=5, first_action=5, technician=gil)  # Globex
    response = client_for(ada).get(URL, MARCH)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="handoffs-2026-03-02-to-2026-03-15.csv"' in response["Content-Disposition"]
    exported = rows(response)
    assert len(exported) == 2
    assert exported[0] == {
        "handoff_id": str(first.pk),
        "escalated_at": "2026-03-02T09:00:00+00:00",
        "urgency": "normal",
        "state": "resolved",
        "escalated_by": "tess",
        "claimed_by": "sam",
        "claimed_at": "2026-03-02T09:01:00+00:00",
        "first_action_at": "2026-03-02T09:02:30.500000+00:00",
        "first_action_kind": "message",
        "takeover_mode": "self",
        "released_at": "",
        "resolved_at": "2026-03-02T09:12:30.500000+00:00",
        "seconds_to_claim": "60.0",
        "seconds_to_first_action": "90.5",
    }
    assert exported[1]["state"] == "open"
    assert exported[1]["claimed_by"] == exported[1]["seconds_to_claim"] == ""


def test_cells_a_spreadsheet_would_run_are_made_literal(client_for, ada, make_handoff, sam):
    sneaky = User.objects.create(username="-2+3", account=ada.account, role=Role.TECHNICIAN)
    make_handoff(at("2026-03-03 09:00"), technician=sneaky, claimer=sam)
    assert rows(client_for(ada).get(URL, MARCH))[0]["escalated_by"] == "'-2+3"


def test_bad_window_is_400(client_for, ada):
    response = client_for(ada).get(URL, {"from": "2026-03-15", "to": "2026-03-01"})
    assert response.status_code == 400
    assert "from" in response.json()["errors"]


@pytest.mark.parametrize(
    ("params", "field"), [({"from": "9999-12-31"}, "from"), ({"to": "0001-01-05"}, "to")]
)
def test_extreme_days_are_400_with_a_reason_not_a_500(client_for, ada, params, field):
    response = client_for(ada).get(URL, params)
    assert response.status_code == 400
    assert "must be between 2000-01-01 and" in response.json()["errors"][field][0]


@pytest.mark.parametrize("persona", ["tess", "sam"])
def test_only_admins(client_for, personas, persona):
    assert client_for(personas[persona]).get(URL).status_code == 403


def test_post_is_405(client_for, ada):
    assert client_for(ada).post(URL).status_code == 405


def test_the_notes_above_the_header_define_the_numbers(client_for, ada):
    response = client_for(ada).get(URL, MARCH)
    lines = notes(response)
    assert lines[0].startswith("# Time to first action runs from a senior's claim")
    assert '"Get AI analysis"' in lines[0]
    assert any(
        "keeps it, so seconds_to_claim (the queue wait) counts from then" in line for line in lines
    )
    assert any("task_recorded = recorded a step's status or outcome" in line for line in lines)
    assert any("analysis = Get AI analysis" in line for line in lines)
