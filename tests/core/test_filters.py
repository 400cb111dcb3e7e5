"""Shared template filters."""

from datetime import UTC, datetime, timedelta

from resolutionflow.templatetags.rf import waited

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_waited_says_under_a_minute_rather_than_zero_minutes():
    assert waited(START, START + timedelta(seconds=59)) == "under a minute"
    assert waited(START, START + timedelta(minutes=4, seconds=10)) == "4\xa0minutes"
    assert waited(START, START + timedelta(hours=2, minutes=5)) == "2\xa0hours, 5\xa0minutes"
    assert waited(None) == ""


def test_ago_says_just_now_rather_than_zero_minutes_ago():
    from resolutionflow.templatetags.rf import ago

    assert ago(START, START + timedelta(seconds=30)) == "just now"
    assert ago(START, START + timedelta(minutes=3)) == "3\xa0minutes ago"
    assert ago(None) == ""
