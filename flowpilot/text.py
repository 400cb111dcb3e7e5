"""Which characters belong in text people and engines write: one definition for every app.

Tab, line feed and carriage return are text (browsers send CRLF line breaks, and so may an
engine). Every other C0 control, DEL and the C1 controls are not: NUL cannot be stored by
PostgreSQL in JSON, and none of them belong in display text. Typed input with one is refused
(flowpilot.forms); what an engine writes is cleaned (flowpilot.actions, the assistants) or
refused (escalations.assessment's schema).
"""

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control_characters(text: str) -> bool:
    return CONTROL_CHARACTERS.search(text) is not None


def strip_control_characters(text: str) -> str:
    """``text`` without its control characters (tab and line breaks stay)."""
    return CONTROL_CHARACTERS.sub("", text)
