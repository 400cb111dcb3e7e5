"""parse_window: from/to of the query string into a window, or the reasons it is refused."""

from datetime import date

import pytest

from analytics.forms import InvalidWindow, parse_window
from analytics.metrics import Window

TODAY = date(2026, 3, 31)


@pytest.mark.parametrize(
    ("params", "window"),
    [
        ({}, Window(date(2026, 3, 2), date(2026, 3, 31))),
        ({"from": "", "to": ""}, Window(date(2026, 3, 2), date(2026, 3, 31))),
        ({"from": "2026-03-10"}, Window(date(2026, 3, 10), date(2026, 3, 31))),
        ({"to": "2026-02-28"}, Window(date(2026, 1, 30), date(2026, 2, 28))),
        (
            {"from": " 2026-03-10 ", "to": "2026-03-10"},
            Window(date(2026, 3, 10), date(2026, 3, 10)),
        ),
        ({"from": "2024-03-31", "to": "2026-03-31"}, Window(date(2024, 3, 31), date(2026, 3, 31))),
    ],
)
def test_windows(params, window):
    assert parse_window(params, today=TODAY) == window


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-11", "to": "2026-03-10"}, "from"),
        ({"from": "31/03/2026"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2024-03-30", "to": "2026-03-31"}, "window"),  # 732 days
        # Days whose window arithmetic would leave date's range (an OverflowError, a 500).
        ({"from": "9999-12-31"}, "from"),
        ({"to": "0001-01-05"}, "to"),
        ({"from": "0001-01-01", "to": "2026-03-01"}, "from"),
        ({"from": "1999-12-31"}, "from"),
        ({"to": "2027-04-01"}, "to"),  # more than a year after today
    ],
)
def test_refusals_name_the_parameter(params, field):
    with pytest.raises(InvalidWindow) as refused:
        parse_window(params, today=TODAY)
    assert list(refused.value.errors) == [field]


def test_the_sane_range_runs_from_2000_to_a_year_ahead():
    assert parse_window({"from": "2000-01-01", "to": "2000-01-31"}, today=TODAY) == Window(
        date(2000, 1, 1), date(2000, 1, 31)
    )
    assert parse_window({"from": "2027-03-01", "to": "2027-03-31"}, today=TODAY) == Window(
        date(2027, 3, 1), date(2027, 3, 31)
    )


def test_both_days_out_of_range_are_both_named():
    with pytest.raises(InvalidWindow) as refused:
        parse_window({"from": "0001-01-01", "to": "9999-12-31"}, today=TODAY)
    assert list(refused.value.errors) == ["from", "to"]
    assert "between 2000-01-01 and 2027-03-31" in refused.value.errors["to"][0]
