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
    ],
)
def test_refusals_name_the_parameter(params, field):
    with pytest.raises(InvalidWindow) as refused:
        parse_window(params, today=TODAY)
    assert list(refused.value.errors) == [field]
