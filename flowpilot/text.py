"""Which characters belong in text people and engines write: one definition for every app.

Tab, line feed and carriage return are text (browsers send CRLF line breaks, and so may an
engine). Every other C0 control, DEL and the C1 controls are not: NUL cannot be stored by
PostgreSQL in JSON, and none of them belong in display text. Typed input with one is refused
(flowpilot.forms); what an engine writes is cleaned (flowpilot.actions, the assistants) or
refused (escalations.assessment's schema).

Commands are held to more: bidi controls (U+202A-202E, U+2066-2069, the marks U+200E/F,
U+061C) and zero-width characters (U+200B-200D, U+2060, U+FEFF) make a command display one
way and paste another. A typed command with one is refused; an engine's is cleaned
(flowpilot.steps.clean_command) with a visible note.
"""

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INVISIBLE_FORMATTING = re.compile(
    "[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def has_control_characters(text: str) -> bool:
    return CONTROL_CHARACTERS.search(text) is not None


def strip_control_characters(text: str) -> str:
    """``text`` without its control characters (tab and line breaks stay)."""
    return CONTROL_CHARACTERS.sub("", text)


def invisible_formatting(text: str) -> list[str]:
    """The bidi and zero-width characters in ``text``, named as U+XXXX, in order, once each."""
    found = dict.fromkeys(f"U+{ord(match):04X}" for match in INVISIBLE_FORMATTING.findall(text))
    return list(found)
