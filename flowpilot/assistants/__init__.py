"""FlowPilot's assistant engines behind one interface; ``get_assistant`` picks the engine."""

from flowpilot.assistants.base import (
    BRIEFING_PREFIX,
    Assessment,
    Assistant,
    ChatLine,
    Confidence,
    Conversation,
    LikelyCause,
    ProposedStep,
    Reply,
    Shell,
    TaskStatus,
    TriedStep,
)

__all__ = [
    "BRIEFING_PREFIX",
    "Assessment",
    "Assistant",
    "ChatLine",
    "Confidence",
    "Conversation",
    "LikelyCause",
    "ProposedStep",
    "Reply",
    "Shell",
    "TaskStatus",
    "TriedStep",
    "get_assistant",
]


def get_assistant() -> Assistant:
    """Claude when an Anthropic API key is configured, else the offline engine."""
    # Imported here: settings are read per call, and engines may import this package.
    from django.conf import settings

    if getattr(settings, "ANTHROPIC_API_KEY", ""):
        from flowpilot.assistants.claude import ClaudeAssistant

        return ClaudeAssistant()
    from flowpilot.assistants.offline import OfflineAssistant

    return OfflineAssistant()
