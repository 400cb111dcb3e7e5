"""FlowPilot's one explicit signal up the dependency line.

flowpilot never imports escalations. When someone acts in a session (posts a message,
changes a task, asks for an analysis), flowpilot's action sends ``session_activity`` and the
handoff manager decides whether that is a claimer's first action.
"""

from django.dispatch import Signal

# Sent inside the action's transaction with: session, user, kind ("message", "task",
# "ai_analysis"; "reply" when FlowPilot answered, with the user it answered, or None).
session_activity = Signal()
