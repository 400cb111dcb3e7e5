"""flowpilot.text: the one definition of the control characters refused or cleaned everywhere."""

import pytest

from flowpilot.assistants.claude import clean_text
from flowpilot.forms import MessageForm
from flowpilot.text import has_control_characters, strip_control_characters

TEXT = "Line one\r\nLine two\n\tindented"


@pytest.mark.parametrize(
    "character", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f"]
)
def test_c0_del_and_c1_controls_are_not_text(character):
    assert has_control_characters(f"a{character}b")
    assert strip_control_characters(f"a{character}b") == "ab"


def test_tab_line_feed_and_carriage_return_are_text():
    assert not has_control_characters(TEXT)
    assert strip_control_characters(TEXT) == TEXT


def test_typed_text_and_engine_text_follow_the_same_rule():
    assert MessageForm({"body": TEXT}).is_valid()
    assert not MessageForm({"body": "a\x85b"}).is_valid()
    # What Claude writes is cleaned by the same rule: CRLF stays, a C1 control goes.
    assert clean_text("Step:\r\nrun it\x85", 100) == "Step:\r\nrun it"
